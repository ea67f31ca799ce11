// checkpoint: models, adapters, training state and train logs in HDF5 (see checkpoint.h).
#include "checkpoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "h5io.h"

// ---------------------------------------------------------------------------------------------
// train log

void trainlog_append(TrainLog *log, int64_t step, int64_t tokens_seen, double train_loss,
                     double val_loss, double lr, double grad_norm, double tokens_per_s) {
    if (log->rows == log->cap) {
        log->cap = log->cap ? 2 * log->cap : 64;
        size_t n = (size_t)log->cap;
        log->step = lab_realloc(log->step, n * sizeof(int64_t));
        log->tokens_seen = lab_realloc(log->tokens_seen, n * sizeof(int64_t));
        log->train_loss = lab_realloc(log->train_loss, n * sizeof(double));
        log->val_loss = lab_realloc(log->val_loss, n * sizeof(double));
        log->lr = lab_realloc(log->lr, n * sizeof(double));
        log->grad_norm = lab_realloc(log->grad_norm, n * sizeof(double));
        log->tokens_per_s = lab_realloc(log->tokens_per_s, n * sizeof(double));
    }
    int64_t r = log->rows++;
    log->step[r] = step;
    log->tokens_seen[r] = tokens_seen;
    log->train_loss[r] = train_loss;
    log->val_loss[r] = val_loss;
    log->lr[r] = lr;
    log->grad_norm[r] = grad_norm;
    log->tokens_per_s[r] = tokens_per_s;
}

void trainlog_free(TrainLog *log) {
    free(log->step); free(log->tokens_seen); free(log->train_loss); free(log->val_loss);
    free(log->lr); free(log->grad_norm); free(log->tokens_per_s);
    memset(log, 0, sizeof *log);
}

// with_speed: the wall-clock column too (log.h5), or not (checkpoints, which must not depend on it)
static void trainlog_write(hid_t loc, const TrainLog *log, int with_speed) {
    H5Column cols[7] = {
        {"step", LAB_I64, log->step, NULL},
        {"tokens_seen", LAB_I64, log->tokens_seen, "tokens"},
        {"train_loss", LAB_F64, log->train_loss, "nats/token"},
        {"val_loss", LAB_F64, log->val_loss, "nats/token"},
        {"lr", LAB_F64, log->lr, NULL},
        {"grad_norm", LAB_F64, log->grad_norm, NULL},
        {"tokens_per_s", LAB_F64, log->tokens_per_s, "tokens/s"},
    };
    h5_table_write(loc, "train_log", (uint64_t)log->rows, with_speed ? 7 : 6, cols);
}

void trainlog_save(const char *path, const TrainLog *log) {
    H5Writer w = h5_create(path, SCHEMA_TRAINLOG);
    trainlog_write(w.file, log, 1);
    h5_finish(&w);
}

static double *read_column_f64(hid_t g, const char *name, uint64_t rows) {
    uint64_t dims[1] = {rows};
    return h5_read(g, name, LAB_F64, 1, dims);
}

static int64_t *read_column_i64(hid_t g, const char *name, uint64_t rows) {
    uint64_t dims[1] = {rows};
    return h5_read(g, name, LAB_I64, 1, dims);
}

void trainlog_merge_speeds(TrainLog *log, const char *path) {
    if (access(path, F_OK) != 0) return;
    hid_t f = h5_open(path, SCHEMA_TRAINLOG);
    hid_t g = h5_group_open(f, "train_log");
    uint64_t rows = h5_length(g, "step");
    int64_t *step = read_column_i64(g, "step", rows);
    double *speed = read_column_f64(g, "tokens_per_s", rows);
    for (int64_t r = 0; r < log->rows; r++)
        for (uint64_t k = 0; k < rows; k++)
            if (step[k] == log->step[r]) { log->tokens_per_s[r] = speed[k]; break; }
    free(step);
    free(speed);
    H5Gclose(g);
    h5_close(f);
}

// ---------------------------------------------------------------------------------------------
// model config

void model_config_write(hid_t obj, const ModelConfig *c) {
    h5_attr_i64(obj, "vocab_size", c->vocab_size);
    h5_attr_i64(obj, "dim", c->dim);
    h5_attr_i64(obj, "n_layers", c->n_layers);
    h5_attr_i64(obj, "n_heads", c->n_heads);
    h5_attr_i64(obj, "n_kv_heads", c->n_kv_heads);
    h5_attr_i64(obj, "ffn_dim", c->ffn_dim);
    h5_attr_i64(obj, "max_seq_len", c->max_seq_len);
    h5_attr_f64(obj, "norm_eps", c->norm_eps);
    h5_attr_f64(obj, "rope_theta", c->rope_theta);
}

static int config_attr_int(hid_t obj, const char *name) {
    int64_t v = h5_get_attr_i64(obj, name);
    if (v <= 0 || v > (1 << 30))
        lab_die("%s: attribute '%s': expected a positive size, found %lld", h5_path_of(obj), name, (long long)v);
    return (int)v;
}

ModelConfig model_config_read(hid_t obj) {
    ModelConfig c;
    c.vocab_size = config_attr_int(obj, "vocab_size");
    c.dim = config_attr_int(obj, "dim");
    c.n_layers = config_attr_int(obj, "n_layers");
    c.n_heads = config_attr_int(obj, "n_heads");
    c.n_kv_heads = config_attr_int(obj, "n_kv_heads");
    c.ffn_dim = config_attr_int(obj, "ffn_dim");
    c.max_seq_len = config_attr_int(obj, "max_seq_len");
    c.norm_eps = (float)h5_get_attr_f64(obj, "norm_eps");
    c.rope_theta = (float)h5_get_attr_f64(obj, "rope_theta");
    return c;
}

const char *model_config_diff(const ModelConfig *a, const ModelConfig *b, double *x, double *y) {
    const struct { const char *name; double x, y; } f[] = {
        {"vocab_size", a->vocab_size, b->vocab_size}, {"dim", a->dim, b->dim},
        {"n_layers", a->n_layers, b->n_layers}, {"n_heads", a->n_heads, b->n_heads},
        {"n_kv_heads", a->n_kv_heads, b->n_kv_heads}, {"ffn_dim", a->ffn_dim, b->ffn_dim},
        {"max_seq_len", a->max_seq_len, b->max_seq_len}, {"norm_eps", a->norm_eps, b->norm_eps},
        {"rope_theta", a->rope_theta, b->rope_theta}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (f[i].x != f[i].y) {
            *x = f[i].x;
            *y = f[i].y;
            return f[i].name;
        }
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// tensors between the model's (backend) memory and a file

static float *tensor_ptr(const ParamTensors *t, int i) { return ((float *const *)t)[i]; }

static size_t dims_count(int rank, const uint64_t *dims) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}

static void write_tensor(hid_t loc, const char *name, const Backend *be, const float *src, int rank,
                         const uint64_t *dims) {
    size_t n = dims_count(rank, dims);
    float *host = lab_malloc(n * sizeof(float));
    be->download(host, src, n * sizeof(float));
    h5_write(loc, name, LAB_F32, host, rank, dims, NULL);
    free(host);
}

// Reads dataset `name` with exactly the shape dims (h5_read dies naming the file otherwise).
static void read_tensor(hid_t loc, const char *name, const Backend *be, float *dst, int rank,
                        const uint64_t *dims) {
    uint64_t want[3];
    memcpy(want, dims, (size_t)rank * sizeof *dims);
    float *host = h5_read(loc, name, LAB_F32, rank, want);
    be->upload(dst, host, dims_count(rank, dims) * sizeof(float));
    free(host);
}

static void hash_tensor(Sha256 *s, const Backend *be, const float *src, size_t n) {
    float *host = lab_malloc(n * sizeof(float));
    be->download(host, src, n * sizeof(float));
    sha256_update(s, host, n * sizeof(float));  // x86-64 and arm64 are little-endian
    free(host);
}

void model_params_sha256(const Model *m, char hex[65]) {
    Sha256 s;
    sha256_init(&s);
    for (int i = 0; i < N_PARAM_TENSORS; i++) hash_tensor(&s, m->be, tensor_ptr(&m->params, i), m->param_sizes[i]);
    sha256_final(&s, hex);
}

// The adapter's tensors in file order: k = 2 * target + (0 for A, 1 for B). Gives the dataset name
// ("q_A"), the tensor and its shape, A (L, r, in) and B (L, out, r); returns 0 for a target the
// adapter does not have.
static int adapter_tensor(const Model *m, int k, char name[32], float **p, uint64_t dims[3]) {
    const LoraState *ls = m->lora;
    int t = k / 2, is_b = k % 2, in, out;
    if (!(ls->cfg.targets & (1u << t))) return 0;
    lora_target_shape(&m->cfg, t, &in, &out);
    snprintf(name, 32, "%s_%s", lora_target_names[t], is_b ? "B" : "A");
    *p = is_b ? ls->B[t] : ls->A[t];
    dims[0] = (uint64_t)m->cfg.n_layers;
    dims[1] = (uint64_t)(is_b ? out : ls->cfg.rank);
    dims[2] = (uint64_t)(is_b ? ls->cfg.rank : in);
    return 1;
}

// The adapter's A and B, target by target: its identity, and a check that the file was read intact.
static void adapter_sha256(const Model *m, char hex[65]) {
    Sha256 s;
    sha256_init(&s);
    char name[32];
    float *p;
    uint64_t d[3];
    for (int k = 0; k < 2 * LORA_N_TARGETS; k++)
        if (adapter_tensor(m, k, name, &p, d)) hash_tensor(&s, m->be, p, d[0] * d[1] * d[2]);
    sha256_final(&s, hex);
}

// Data damaged inside a dataset can read back without any HDF5 error: the sha256 recorded at
// write time catches it.
static void check_sha256(const char *path, hid_t f, const char *attr, const char *what, const char *found) {
    char *want = h5_get_attr_str(f, attr);
    if (strcmp(want, found) != 0)
        lab_die("%s: expected %s with sha256 %.12s... (recorded when it was written), found %.12s...: "
                "the file is corrupt", path, what, want, found);
    free(want);
}

// ---------------------------------------------------------------------------------------------
// training state

static const char *moments_sha256(const AdamW *opt) {
    static char hex[65];
    Sha256 s;
    sha256_init(&s);
    sha256_update(&s, opt->m, opt->n * sizeof(float));
    sha256_update(&s, opt->v, opt->n * sizeof(float));
    sha256_final(&s, hex);
    return hex;
}

static void train_state_write(hid_t file, const TrainState *st) {
    const TrainSettings *s = &st->settings;
    h5_attr_i64(file, "step", st->opt->step);
    h5_attr_i64(file, "tokens_seen", st->tokens_seen);
    hid_t g = h5_group_create(file, "optim");
    uint64_t n = st->opt->n;
    h5_write(g, "m", LAB_F32, st->opt->m, 1, &n, NULL);
    h5_write(g, "v", LAB_F32, st->opt->v, 1, &n, NULL);
    h5_attr_str(g, "moments_sha256", moments_sha256(st->opt));
    h5_attr_str(g, "mode", s->mode);
    h5_attr_i64(g, "seed", (int64_t)s->seed);
    h5_attr_i64(g, "batch", s->batch);
    h5_attr_i64(g, "seq_len", s->seq_len);
    h5_attr_i64(g, "accum", s->accum);
    h5_attr_str(g, "train_split", s->train_split);
    h5_attr_f64(g, "lr", s->optim.lr);
    h5_attr_f64(g, "lr_min", s->optim.lr_min);
    h5_attr_i64(g, "warmup", s->optim.warmup);
    h5_attr_i64(g, "total_steps", s->optim.total_steps);
    h5_attr_f64(g, "beta1", s->optim.beta1);
    h5_attr_f64(g, "beta2", s->optim.beta2);
    h5_attr_f64(g, "eps", s->optim.eps);
    h5_attr_f64(g, "weight_decay", s->optim.weight_decay);
    h5_attr_f64(g, "grad_clip", s->optim.grad_clip);
    H5Gclose(g);
    trainlog_write(file, st->log, 0);
}

static void same_number(const char *path, hid_t g, const char *attr, const char *flag, double want) {
    double found = h5_get_attr_f64(g, attr);
    if ((float)found != (float)want)
        lab_die("%s: cannot resume: it was trained with %s %g, this run asks for %g", path, flag, found, want);
}

static void same_string(const char *path, hid_t g, const char *attr, const char *flag, const char *want) {
    char *found = h5_get_attr_str(g, attr);
    if (strcmp(found, want) != 0)
        lab_die("%s: cannot resume: it was trained with %s %s, this run asks for %s", path, flag, found, want);
    free(found);
}

void train_state_load(const char *path, const char *schema, TrainState *st) {
    hid_t f = h5_open(path, schema);
    if (!h5_has_attr(f, "step") || !h5_exists(f, "optim"))
        lab_die("%s: expected training state to resume from (attribute 'step', group /optim), found "
                "none (a merged or final-only file?)", path);
    hid_t g = h5_group_open(f, "optim");
    const TrainSettings *s = &st->settings;
    same_string(path, g, "mode", "--mode", s->mode);
    same_number(path, g, "seed", "--seed", (double)s->seed);
    same_number(path, g, "batch", "--batch", s->batch);
    same_number(path, g, "seq_len", "--seq", s->seq_len);
    same_number(path, g, "accum", "--accum", s->accum);
    same_string(path, g, "train_split", "--train-split", s->train_split);
    same_number(path, g, "lr", "--lr", s->optim.lr);
    same_number(path, g, "lr_min", "--lr-min", s->optim.lr_min);
    same_number(path, g, "warmup", "--warmup", (double)s->optim.warmup);
    same_number(path, g, "beta1", "--beta1", s->optim.beta1);
    same_number(path, g, "beta2", "--beta2", s->optim.beta2);
    same_number(path, g, "eps", "--eps", s->optim.eps);
    same_number(path, g, "weight_decay", "--weight-decay", s->optim.weight_decay);
    same_number(path, g, "grad_clip", "--grad-clip", s->optim.grad_clip);
    uint64_t dims[1] = {st->opt->n};
    float *m = h5_read(g, "m", LAB_F32, 1, dims);
    float *v = h5_read(g, "v", LAB_F32, 1, dims);
    memcpy(st->opt->m, m, st->opt->n * sizeof(float));
    memcpy(st->opt->v, v, st->opt->n * sizeof(float));
    free(m);
    free(v);
    check_sha256(path, g, "moments_sha256", "optimizer moments", moments_sha256(st->opt));
    H5Gclose(g);
    st->opt->step = h5_get_attr_i64(f, "step");
    st->tokens_seen = h5_get_attr_i64(f, "tokens_seen");

    hid_t lg = h5_group_open(f, "train_log");
    uint64_t rows = h5_length(lg, "step");
    int64_t *step = read_column_i64(lg, "step", rows);
    int64_t *tokens = read_column_i64(lg, "tokens_seen", rows);
    double *cols[4] = {read_column_f64(lg, "train_loss", rows), read_column_f64(lg, "val_loss", rows),
                       read_column_f64(lg, "lr", rows), read_column_f64(lg, "grad_norm", rows)};
    H5Gclose(lg);
    h5_close(f);
    st->log->rows = 0;
    for (uint64_t r = 0; r < rows; r++)
        trainlog_append(st->log, step[r], tokens[r], cols[0][r], cols[1][r], cols[2][r], cols[3][r], NAN);
    free(step);
    free(tokens);
    for (int i = 0; i < 4; i++) free(cols[i]);
}

// ---------------------------------------------------------------------------------------------
// full checkpoints

void checkpoint_save(const char *path, const Model *m, const TrainState *st) {
    H5Writer w = h5_create(path, SCHEMA_CHECKPOINT);
    model_config_write(w.file, &m->cfg);
    hid_t g = h5_group_create(w.file, "params");
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        int rank;
        uint64_t dims[3];
        model_param_shape(&m->cfg, i, &rank, dims);
        write_tensor(g, param_tensor_names[i], m->be, tensor_ptr(&m->params, i), rank, dims);
    }
    H5Gclose(g);
    char sha[65];
    model_params_sha256(m, sha);
    h5_attr_str(w.file, "params_sha256", sha);
    if (st) train_state_write(w.file, st);
    h5_finish(&w);
}

void checkpoint_load(const char *path, Model *m, const Backend *be) {
    hid_t f = h5_open(path, SCHEMA_CHECKPOINT);
    ModelConfig cfg = model_config_read(f);
    model_config_check(&cfg);
    model_init(m, &cfg, be);
    hid_t g = h5_group_open(f, "params");
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        int rank;
        uint64_t dims[3];
        model_param_shape(&cfg, i, &rank, dims);
        read_tensor(g, param_tensor_names[i], be, tensor_ptr(&m->params, i), rank, dims);
    }
    H5Gclose(g);
    char sha[65];
    model_params_sha256(m, sha);
    check_sha256(path, f, "params_sha256", "parameters", sha);
    h5_close(f);
}

// ---------------------------------------------------------------------------------------------
// adapters


void adapter_save(const char *path, const Model *m, const char *base_sha256, const TrainState *st) {
    const LoraState *ls = m->lora;
    H5Writer w = h5_create(path, SCHEMA_ADAPTER);
    h5_attr_i64(w.file, "rank", ls->cfg.rank);
    h5_attr_f64(w.file, "alpha", ls->cfg.alpha);
    h5_attr_f64(w.file, "dropout", ls->cfg.dropout);
    h5_attr_str(w.file, "targets", lora_format_targets(ls->cfg.targets));
    model_config_write(w.file, &m->cfg);
    h5_attr_str(w.file, "base_sha256", base_sha256);
    hid_t g = h5_group_create(w.file, "lora");
    char name[32];
    float *p;
    uint64_t d[3];
    for (int k = 0; k < 2 * LORA_N_TARGETS; k++)
        if (adapter_tensor(m, k, name, &p, d)) write_tensor(g, name, m->be, p, 3, d);
    H5Gclose(g);
    char sha[65];
    adapter_sha256(m, sha);
    h5_attr_str(w.file, "adapter_sha256", sha);
    if (st) train_state_write(w.file, st);
    h5_finish(&w);
}

static LoraConfig adapter_config_of(hid_t f, const char *path) {
    LoraConfig lc;
    int64_t rank = h5_get_attr_i64(f, "rank");
    if (rank <= 0 || rank > 65536) lab_die("%s: attribute 'rank': expected 1..65536, found %lld", path, (long long)rank);
    lc.rank = (int)rank;
    lc.alpha = (float)h5_get_attr_f64(f, "alpha");
    lc.dropout = (float)h5_get_attr_f64(f, "dropout");
    char *targets = h5_get_attr_str(f, "targets");
    lc.targets = lora_parse_targets(targets);
    free(targets);
    return lc;
}

LoraConfig adapter_read_config(const char *path) {
    hid_t f = h5_open(path, SCHEMA_ADAPTER);
    LoraConfig lc = adapter_config_of(f, path);
    h5_close(f);
    return lc;
}

void adapter_load(const char *path, Model *m, const char *base_path) {
    hid_t f = h5_open(path, SCHEMA_ADAPTER);
    ModelConfig made_for = model_config_read(f);
    double made, have;
    const char *field = model_config_diff(&made_for, &m->cfg, &made, &have);
    if (field)
        lab_die("%s: expected an adapter for %s (%s %g), found one made for a base with %s %g", path,
                base_path, field, have, field, made);
    char *want_sha = h5_get_attr_str(f, "base_sha256");
    char have_sha[65];
    model_params_sha256(m, have_sha);
    if (strcmp(want_sha, have_sha) != 0)
        lab_die("%s: expected an adapter for %s (parameters sha256 %.12s...), found one trained on "
                "another base (sha256 %.12s...)", path, base_path, have_sha, want_sha);
    free(want_sha);
    LoraConfig lc = adapter_config_of(f, path);
    lora_attach(m, &lc, 0);
    hid_t g = h5_group_open(f, "lora");
    char name[32];
    float *p;
    uint64_t d[3];
    for (int k = 0; k < 2 * LORA_N_TARGETS; k++)
        if (adapter_tensor(m, k, name, &p, d)) read_tensor(g, name, m->be, p, 3, d);
    H5Gclose(g);
    char sha[65];
    adapter_sha256(m, sha);
    check_sha256(path, f, "adapter_sha256", "adapter weights", sha);
    h5_close(f);
}

void model_load_for_inference(Model *m, const char *model_path, const char *adapter_path) {
    checkpoint_load(model_path, m, &backend_cpu);
    lab_add_input(model_path);
    if (adapter_path) {
        adapter_load(adapter_path, m, model_path);
        lab_add_input(adapter_path);
        lora_merge(m);
    }
    m->training = 0;
}
