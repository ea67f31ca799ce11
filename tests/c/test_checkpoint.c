// checkpoint and tokens: checkpoint round trip (identical parameters), training state round trip
// (moments, step, tokens seen, log), adapter round trip, and one clear error line for a checkpoint
// whose shapes disagree with its config, an adapter for another base (other shape, or same shape
// but other weights), a file of the wrong schema, and a resume with other settings. Tokens: a
// synthetic tokens.h5, its batches (a pure function of seed, step, micro-step and row), the
// validation windows and the unigram entropy. Errors are checked in child processes, since they exit.
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "test_util.h"
#include "tokens.h"

static ModelConfig tiny_config(void) {
    return (ModelConfig){.vocab_size = 61, .dim = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                         .ffn_dim = 24, .max_seq_len = 12, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
}

static void fill_random(float *x, size_t n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
}

// ---------------------------------------------------------------------------------------------
// checkpoints

static void test_checkpoint_round_trip(void) {
    ModelConfig c = tiny_config();
    Model a, b;
    model_init(&a, &c, &backend_cpu);
    model_init_random(&a, 5);
    const char *path = test_path("ckpt.h5");
    checkpoint_save(path, &a, NULL);
    checkpoint_load(path, &b, &backend_cpu);
    double x, y;
    CHECK(model_config_diff(&a.cfg, &b.cfg, &x, &y) == NULL, "config round trip");
    CHECK(a.num_params == b.num_params &&
          memcmp(a.params_memory, b.params_memory, a.num_params * sizeof(float)) == 0,
          "parameters identical after a round trip");
    char ha[65], hb[65];
    model_params_sha256(&a, ha);
    model_params_sha256(&b, hb);
    CHECK(strcmp(ha, hb) == 0, "parameter hash identical after a round trip");
    b.params.wq[3] += 1.0f;
    model_params_sha256(&b, hb);
    CHECK(strcmp(ha, hb) != 0, "parameter hash changes with a weight");
    model_free(&a);
    model_free(&b);
}

static TrainSettings tiny_settings(void) {
    OptimConfig oc = optim_defaults();
    oc.lr = 1e-3f; oc.lr_min = 1e-4f; oc.warmup = 3; oc.total_steps = 20;
    return (TrainSettings){.mode = "pretrain", .seed = 9, .batch = 2, .seq_len = 8, .accum = 1,
                           .train_split = "train", .optim = oc};
}

static void test_train_state_round_trip(void) {
    ModelConfig c = tiny_config();
    Model m;
    model_init(&m, &c, &backend_cpu);
    model_init_random(&m, 1);
    TrainSettings s = tiny_settings();
    AdamW opt;
    adamw_init(&opt, &s.optim, m.num_params);
    fill_random(opt.m, opt.n, 2);
    fill_random(opt.v, opt.n, 3);
    opt.step = 7;
    TrainLog log = {0};
    for (int i = 1; i <= 7; i++)
        trainlog_append(&log, i, 16 * i, 4.0 / i, i == 5 ? 3.5 : NAN, 1e-3 * i, 0.5 + i, 1000.0 * i);
    TrainState st = {.settings = s, .tokens_seen = 112, .opt = &opt, .log = &log};
    const char *path = test_path("state.h5");
    checkpoint_save(path, &m, &st);

    AdamW opt2;
    adamw_init(&opt2, &s.optim, m.num_params);
    TrainLog log2 = {0};
    TrainState st2 = {.settings = s, .opt = &opt2, .log = &log2};
    train_state_load(path, SCHEMA_CHECKPOINT, &st2);
    CHECK(opt2.step == 7 && st2.tokens_seen == 112, "step %lld and tokens seen %lld restored",
          (long long)opt2.step, (long long)st2.tokens_seen);
    CHECK(memcmp(opt.m, opt2.m, opt.n * sizeof(float)) == 0 && memcmp(opt.v, opt2.v, opt.n * sizeof(float)) == 0,
          "moments restored bit for bit");
    CHECK(log2.rows == 7, "log rows: expected 7, found %lld", (long long)log2.rows);
    int same = log2.rows == 7;
    for (int i = 0; same && i < 7; i++)
        same = log2.step[i] == log.step[i] && log2.tokens_seen[i] == log.tokens_seen[i] &&
               log2.train_loss[i] == log.train_loss[i] && log2.lr[i] == log.lr[i] &&
               log2.grad_norm[i] == log.grad_norm[i] &&
               (isnan(log.val_loss[i]) ? isnan(log2.val_loss[i]) : log2.val_loss[i] == log.val_loss[i]) &&
               isnan(log2.tokens_per_s[i]);  // wall-clock speeds are not in a checkpoint
    CHECK(same, "log restored (speeds left NaN)");
    // ... and come back from the log file when there is one
    const char *logpath = test_path("log.h5");
    trainlog_save(logpath, &log);
    trainlog_merge_speeds(&log2, logpath);
    CHECK(log2.tokens_per_s[4] == 5000.0, "speeds merged from log.h5: found %g", log2.tokens_per_s[4]);

    trainlog_free(&log);
    trainlog_free(&log2);
    adamw_free(&opt);
    adamw_free(&opt2);
    model_free(&m);
}

// The shapes stored in a checkpoint disagree with its config: wq written for dim 16 under a
// config that says dim 32 (a file made by hand, as a buggy writer or a mix-up would make it).
static void load_checkpoint(const char *path) {
    Model m;
    checkpoint_load(path, &m, &backend_cpu);
}

static void make_mismatched_checkpoint(const char *path, const char *good) {
    ModelConfig small = tiny_config(), big = tiny_config();
    big.dim = 32;
    big.ffn_dim = 48;
    Model m;
    model_init(&m, &small, &backend_cpu);
    checkpoint_load(good, &m, &backend_cpu);
    H5Writer w = h5_create(path, SCHEMA_CHECKPOINT);
    model_config_write(w.file, &big);
    hid_t g = h5_group_create(w.file, "params");
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        int rank;
        uint64_t dims[3];
        model_param_shape(&small, i, &rank, dims);
        h5_write(g, param_tensor_names[i], LAB_F32, ((float *const *)&m.params)[i], rank, dims, NULL);
    }
    H5Gclose(g);
    h5_finish(&w);
    model_free(&m);
}

// A copy of `good` with one byte of a weight changed inside the file: HDF5 reads it back without
// complaint (the small datasets are stored raw), so only the recorded sha256 can notice.
static void make_corrupt_copy(const char *path, const char *good) {
    Model m;
    checkpoint_load(good, &m, &backend_cpu);
    size_t n;
    char *buf = test_read_file(good, &n);
    char *at = memmem(buf, n, m.params.wq + 5, 4 * sizeof(float));
    CHECK(at != NULL, "found wq's bytes in the file");
    if (at) at[1] ^= 0x40;
    FILE *f = lab_fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
    model_free(&m);
}

static void test_checkpoint_errors(void) {
    const char *good = test_path("ckpt.h5"), *bad = test_path("mismatch.h5"), *corrupt = test_path("corrupt.h5");
    make_corrupt_copy(corrupt, good);
    test_expect_error(load_checkpoint, corrupt, "expected parameters with sha256", "a weight changed inside the file");
    make_mismatched_checkpoint(bad, good);
    test_expect_error(load_checkpoint, bad, "dataset 'tok_emb': expected shape (61, 32), found (61, 16)",
                      "shape mismatch");
    const char *tokens = test_path("tokens.h5");
    test_expect_error(load_checkpoint, tokens, "expected schema 'codelm-lab/checkpoint/1', found 'codelm-lab/tokens/1'",
                      "tokens file as a model");
}

// ---------------------------------------------------------------------------------------------
// adapters

static LoraConfig tiny_lora(void) {
    return (LoraConfig){.rank = 3, .alpha = 6.0f, .dropout = 0.1f,
                        .targets = (1u << LORA_Q) | (1u << LORA_V) | (1u << LORA_DOWN)};
}

static void make_adapter(const char *path, const char *base) {
    Model m;
    checkpoint_load(base, &m, &backend_cpu);
    LoraConfig lc = tiny_lora();
    lora_attach(&m, &lc, 11);
    fill_random(m.lora->params_memory, m.lora->num_params, 12);  // B is zero at attach
    char sha[65];
    model_params_sha256(&m, sha);
    adapter_save(path, &m, sha, NULL);
    model_free(&m);
}

static void test_adapter_round_trip(void) {
    const char *base = test_path("ckpt.h5"), *adapter = test_path("adapter.h5");
    make_adapter(adapter, base);
    Model a, b;
    checkpoint_load(base, &a, &backend_cpu);
    LoraConfig lc = tiny_lora();
    lora_attach(&a, &lc, 11);
    fill_random(a.lora->params_memory, a.lora->num_params, 12);
    checkpoint_load(base, &b, &backend_cpu);
    adapter_load(adapter, &b, base);
    LoraConfig got = adapter_read_config(adapter);
    CHECK(got.rank == lc.rank && got.alpha == lc.alpha && got.dropout == lc.dropout && got.targets == lc.targets,
          "adapter config round trip");
    CHECK(b.lora && b.lora->num_params == a.lora->num_params &&
          memcmp(a.lora->params_memory, b.lora->params_memory, a.lora->num_params * sizeof(float)) == 0,
          "adapter parameters identical after a round trip");
    model_free(&a);
    model_free(&b);
}

static const char *g_base;  // the base the child loads an adapter onto

static void load_adapter_onto_base(const char *adapter) {
    Model m;
    checkpoint_load(g_base, &m, &backend_cpu);
    adapter_load(adapter, &m, g_base);
}

// A random model of config c saved as NAME in the scratch directory; returns its path.
static const char *save_random_model(const char *name, const ModelConfig *c, uint64_t seed) {
    Model m;
    model_init(&m, c, &backend_cpu);
    model_init_random(&m, seed);
    const char *path = test_path(name);
    checkpoint_save(path, &m, NULL);
    model_free(&m);
    return path;
}

static void test_adapter_errors(void) {
    const char *base = test_path("ckpt.h5"), *adapter = test_path("adapter.h5");
    // another base of another shape
    ModelConfig c = tiny_config();
    c.dim = 32;
    c.ffn_dim = 40;
    g_base = save_random_model("other_base.h5", &c, 5);
    test_expect_error(load_adapter_onto_base, adapter, "expected an adapter for", "adapter for another shape");
    // same shape, other weights
    c = tiny_config();
    g_base = save_random_model("twin_base.h5", &c, 6);
    test_expect_error(load_adapter_onto_base, adapter, "trained on another base", "adapter for another base");
    // a checkpoint given as an adapter
    g_base = base;
    test_expect_error(load_adapter_onto_base, base,
                      "expected schema 'codelm-lab/adapter/1', found 'codelm-lab/checkpoint/1'",
                      "checkpoint as an adapter");
}

// ---------------------------------------------------------------------------------------------
// resuming with other settings

// Loads PATH's training state for a run of tiny_settings() with this batch size and n trainable.
static void resume_as(const char *path, int batch, size_t n) {
    TrainSettings s = tiny_settings();
    s.batch = batch;
    AdamW opt;
    adamw_init(&opt, &s.optim, n);
    TrainLog log = {0};
    TrainState st = {.settings = s, .opt = &opt, .log = &log};
    train_state_load(path, SCHEMA_CHECKPOINT, &st);
}

static void resume_with_other_batch(const char *path) {
    ModelConfig c = tiny_config();
    resume_as(path, 4, model_num_params(&c));
}

static void resume_from_weights_only(const char *path) { resume_as(path, 2, 1); }

static void test_resume_errors(void) {
    test_expect_error(resume_with_other_batch, test_path("state.h5"),
                      "cannot resume: it was trained with --batch 2, this run asks for 4",
                      "resume with another batch size");
    test_expect_error(resume_from_weights_only, test_path("ckpt.h5"), "expected training state to resume from",
                      "resume from a weights-only checkpoint");
}

// ---------------------------------------------------------------------------------------------
// tokens

// Two packages, three documents in the train split; tokens cycle through 0..9 with eot 10.
static void write_tokens(const char *path) {
    H5Writer w = h5_create(path, "codelm-lab/tokens/1");
    h5_attr_i64(w.file, "vocab_size", 11);
    h5_attr_i64(w.file, "eot_token", 10);
    const char *packages[2] = {"alpha", "beta"};
    h5_write_strings(w.file, "packages", packages, 2);
    uint32_t token_bytes[11] = {1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 0};
    uint64_t v = 11;
    h5_write(w.file, "token_bytes", LAB_U32, token_bytes, 1, &v, NULL);
    hid_t g = h5_group_create(w.file, "train");
    uint64_t n = 1000, docs = 3;
    uint16_t *tok = lab_malloc(n * sizeof *tok);
    uint64_t off[4] = {0, 300, 700, 1000};
    for (uint64_t i = 0; i < n; i++) tok[i] = (uint16_t)(i % 10);
    for (int d = 1; d <= 3; d++) tok[off[d] - 1] = 10;
    h5_write(g, "tokens", LAB_U16, tok, 1, &n, NULL);
    uint64_t four = 4;
    h5_write(g, "doc_offsets", LAB_U64, off, 1, &four, NULL);
    int32_t pkg[3] = {0, 1, 0};
    h5_write(g, "doc_package", LAB_I32, pkg, 1, &docs, NULL);
    uint64_t bytes[3] = {400, 500, 400};
    h5_write(g, "doc_bytes", LAB_U64, bytes, 1, &docs, "bytes");
    H5Gclose(g);
    h5_finish(&w);
    free(tok);
}

static void load_missing_split(const char *path) {
    TokenSplit ts;
    tokens_load(&ts, path, "val");
}

static void test_tokens(void) {
    const char *path = test_path("tokens.h5");
    write_tokens(path);
    TokenSplit ts;
    tokens_load(&ts, path, "train");
    CHECK(ts.n_tokens == 1000 && ts.n_docs == 3 && ts.n_packages == 2 && ts.vocab_size == 11 &&
          ts.eot_token == 10 && ts.doc_package[1] == 1 && ts.token_bytes[8] == 3 &&
          strcmp(ts.packages[1], "beta") == 0, "tokens file read back");
    enum { B = 3, T = 16 };
    int32_t in[B * T], tgt[B * T], in2[B * T], tgt2[B * T];
    tokens_train_batch(&ts, 42, 17, 2, B, T, in, tgt);
    tokens_train_batch(&ts, 42, 17, 2, B, T, in2, tgt2);
    CHECK(memcmp(in, in2, sizeof in) == 0 && memcmp(tgt, tgt2, sizeof tgt) == 0,
          "the same (seed, step, micro-step) gives the same batch");
    int shifted = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t + 1 < T; t++) shifted &= tgt[b * T + t] == in[b * T + t + 1];
    CHECK(shifted, "targets are the inputs shifted by one");
    int differ_step = 0, differ_micro = 0, differ_seed = 0;
    tokens_train_batch(&ts, 42, 18, 2, B, T, in2, tgt2);
    differ_step = memcmp(in, in2, sizeof in) != 0;
    tokens_train_batch(&ts, 42, 17, 3, B, T, in2, tgt2);
    differ_micro = memcmp(in, in2, sizeof in) != 0;
    tokens_train_batch(&ts, 43, 17, 2, B, T, in2, tgt2);
    differ_seed = memcmp(in, in2, sizeof in) != 0;
    CHECK(differ_step && differ_micro && differ_seed, "another step, micro-step or seed gives another batch");
    // validation windows: evenly spread from the start to the last valid position
    int32_t vin[2 * T], vtgt[2 * T];
    tokens_val_batch(&ts, 0, 2, 2, T, vin, vtgt);
    CHECK(memcmp(vin, ts.tokens, T * sizeof(int32_t)) == 0, "validation window 0 starts at token 0");
    tokens_val_batch(&ts, 1, 2, 2, T, vin, vtgt);
    CHECK(memcmp(vtgt + T, ts.tokens + 1000 - T, T * sizeof(int32_t)) == 0,
          "the last validation window ends at the last token");
    // unigram entropy by hand: 997 tokens spread over 0..9 and 3 eot
    int count[11] = {0};
    for (uint64_t i = 0; i < ts.n_tokens; i++) count[ts.tokens[i]]++;
    double h = 0;
    for (int t = 0; t < 11; t++) h -= count[t] / 1000.0 * log(count[t] / 1000.0);
    CHECK(fabs(tokens_unigram_entropy(&ts) - h) < 1e-12, "unigram entropy: expected %.12f, found %.12f", h,
          tokens_unigram_entropy(&ts));
    CHECK(h > log(10.0) - 0.01 && h < log(11.0), "unigram entropy near ln 10: %f", h);
    tokens_free(&ts);
    test_expect_error(load_missing_split, path, "expected split 'val', found only: train", "missing split");
}

int main(int argc, char **argv) {
    lab_init("test_checkpoint", argc, argv);
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1);

    test_tokens();
    test_checkpoint_round_trip();
    test_train_state_round_trip();
    test_checkpoint_errors();
    test_adapter_round_trip();
    test_adapter_errors();
    test_resume_errors();
    return test_summary();
}
