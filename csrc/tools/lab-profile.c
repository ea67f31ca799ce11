// lab-profile: inference profiling on the CPU. `bench` sweeps formats, batch sizes, prompt and
// generation lengths, KV modes, threads and model shapes, timing prefill (pp) and decode (tg) as
// llama-bench does, with every repetition kept, the memory of each configuration measured next to
// its formula, and the machine's bandwidth and sgemm rate measured in the same run. `serve` runs a
// Poisson arrival trace through static and continuous batching and records vLLM's metrics.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "infer.h"
#include "machine.h"
#include "quant.h"
#include "serve.h"

static void usage(void) {
    printf(
        "usage: lab-profile bench --model BASE.h5 --out BENCH.h5 [sweeps] [--reps 5] [--warmup 1] [--seed 1]\n"
        "       lab-profile serve --model BASE.h5 --out SERVE.h5 [flags]\n"
        "\n"
        "bench runs every combination of the sweeps (comma lists) and writes codelm-lab/profile/1:\n"
        "  --formats f32        weight formats: f32, bf16, f16, q8_0, q4_0 (quantized from BASE)\n"
        "  --batch 1            rows decoded together\n"
        "  --prompt 128         prompt tokens per row: test pp<P> times their prefill (one forward)\n"
        "  --gen 128            test tg<G> times G decode steps right after that prefill (0: none)\n"
        "  --kv contiguous      KV cache: none (recompute), contiguous, paged\n"
        "  --kv-dtype f32       KV elements: f32, f16\n"
        "  --threads 2          OpenMP threads\n"
        "  --dim D  --layers L  random-init models of this width and depth (heads = D/64, the\n"
        "                       vocabulary of BASE) instead of BASE's weights\n"
        "Each configuration runs in a process of its own: --warmup unrecorded repetitions, then\n"
        "--reps recorded ones (every one kept in /trials/), and its peak resident memory is measured\n"
        "against the formula weight bytes + 2 * layers * kv_heads * head_dim * (prompt + gen) *\n"
        "batch * KV element bytes. Before the trials, the read bandwidth (a buffer far beyond the L3\n"
        "cache) and the sgemm rate are measured, so each result is also a fraction of its bound:\n"
        "decode (weights and KV read once per step) / bandwidth; prefill FLOPs / sgemm rate.\n"
        "\n"
        "serve runs a trace of --requests requests with Poisson arrivals through each combination of\n"
        "  --scheduler static,continuous  --kv contiguous,paged  --rate 4,16 (requests/s; inf: all at 0)\n"
        "and writes codelm-lab/serve/1 with vLLM's metrics (TTFT, TPOT, ITL, E2E; p50/p90/p95/p99):\n"
        "  --format f32  --batch 8  --requests 64  --prompt-min 16 --prompt-max 96  --block-size 16\n"
        "  --output-min 16 --output-max 96  --kv-dtype f32  --threads 2  --seed 1\n"
        "Requests decode greedily to exactly their output length (no stop rule), as vLLM's\n"
        "benchmark_serving with ignore_eos.\n");
}

// ---------------------------------------------------------------------------------------------
// lists

#define MAXV 32
typedef struct { int n; long long v[MAXV]; } IntList;
typedef struct { int n; char *v[MAXV]; } StrList;

static void parse_strs(const char *flag, const char *s, StrList *out) {
    out->n = 0;
    char *copy = lab_strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (out->n == MAXV) lab_die("%s: expected at most %d values, found more", flag, MAXV);
        out->v[out->n++] = lab_strdup(tok);
    }
    free(copy);
    if (!out->n) lab_die("%s: expected a comma list, found '%s'", flag, s);
}

static void parse_ints(const char *flag, const char *s, long long lo, long long hi, IntList *out) {
    StrList l;
    parse_strs(flag, s, &l);
    out->n = l.n;
    for (int i = 0; i < l.n; i++) {
        out->v[i] = lab_parse_int(flag, l.v[i], lo, hi);
        free(l.v[i]);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(const double *x, int n) {
    double *s = lab_malloc((size_t)n * sizeof(double));
    memcpy(s, x, (size_t)n * sizeof(double));
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

// ---------------------------------------------------------------------------------------------
// models

static ModelConfig read_config(const char *path) {
    hid_t f = h5_open(path, "codelm-lab/checkpoint/1");
    ModelConfig c = model_config_read(f);
    h5_close(f);
    return c;
}

// BASE's configuration, or a random-init model of another width/depth with BASE's vocabulary
static ModelConfig shape_config(const ModelConfig *base, int dim, int layers, int T) {
    ModelConfig c = *base;
    if (dim) {
        c.dim = dim;
        c.n_heads = dim >= 64 ? dim / 64 : 1;
        c.n_kv_heads = c.n_heads;
        c.ffn_dim = (8 * dim / 3 + 31) / 32 * 32;
    }
    if (layers) c.n_layers = layers;
    if (T > c.max_seq_len) c.max_seq_len = T;
    return c;
}

static void build_model(Model *m, const char *path, const ModelConfig *base, int dim, int layers, int T,
                        uint64_t seed) {
    if (!dim && !layers) {
        model_load_for_inference(m, path, NULL);
        return;
    }
    ModelConfig c = shape_config(base, dim, layers, T);
    model_config_check(&c);
    model_init(m, &c, &backend_cpu);
    model_init_random(m, seed);
}

// matrices: wq wk wv wo w_gate w_up w_down per layer, and the tied output head
static double weight_bytes(const ModelConfig *c, QType t) {
    int HD = c->dim / c->n_heads, KV = c->n_kv_heads * HD;
    double per_layer = qmat_row_bytes(t, c->dim) * (double)(2 * c->dim + 2 * KV + 2 * c->ffn_dim) +
                       qmat_row_bytes(t, c->ffn_dim) * (double)c->dim;
    double norms = 4.0 * c->dim * (2 * c->n_layers + 1);
    return c->n_layers * per_layer + qmat_row_bytes(t, c->dim) * (double)c->vocab_size + norms;
}

static double matmul_weights(const ModelConfig *c) {
    int HD = c->dim / c->n_heads, KV = c->n_kv_heads * HD;
    return (double)c->n_layers * ((double)c->dim * (2 * c->dim + 2 * KV) + 3.0 * c->dim * c->ffn_dim) +
           (double)c->vocab_size * c->dim;
}

// ---------------------------------------------------------------------------------------------
// bench

typedef struct {
    QType fmt;
    KvMode kv;
    KvDtype kvd;
    int batch, prompt, gen, threads, dim, layers;
} Config;

#define MAXREP 64
typedef struct {
    double pp_s[MAXREP], tg_s[MAXREP];
    int64_t kv_allocated, rss_base, rss_peak;
    int ok;
} ChildResult;

static void token_stream(int32_t *t, size_t n, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)rng_below(&r, (uint32_t)V);
}

// One configuration in this (child) process: builds the weights and the cache, times the tests.
static void run_config(const char *model_path, const ModelConfig *base, const Config *c, int warmup, int reps,
                       uint64_t seed, ChildResult *res) {
    lab_set_threads(c->threads);
    int T = c->prompt + (c->gen > 0 ? c->gen : 0);
    // Memory: from the process before any weight, to its peak once the engine holds its weights in
    // their format (the fp32 source of a quantized format handed back, as a server loading a
    // quantized file never holds it) and has run: weights + KV cache + scratch. The conversion's
    // transient peak (source and copy both resident) is left out by resetting the peak after it.
    res->rss_base = (int64_t)machine_rss_bytes();
    Model m;
    build_model(&m, model_path, base, c->dim, c->layers, T, seed);
    InferOptions opt = {.mode = c->kv, .dtype = c->kvd, .weights = c->fmt};
    InferState st;
    infer_init_ex(&st, &m, c->batch, T, &opt);
    infer_release_source_weights(&st);
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (!cr || fputs("5", cr) < 0 || fclose(cr)) lab_die("/proc/self/clear_refs: expected to reset the peak memory, found an error");
    int V = m.cfg.vocab_size;
    size_t np = (size_t)c->batch * c->prompt;
    int32_t *prompt = lab_malloc(np * sizeof(int32_t)), *step = lab_malloc((size_t)c->batch * sizeof(int32_t));
    int *rows = lab_malloc(np * sizeof(int));
    for (int b = 0; b < c->batch; b++)
        for (int p = 0; p < c->prompt; p++) rows[(size_t)b * c->prompt + p] = b;
    token_stream(prompt, np, V, seed);
    for (int r = -warmup; r < reps; r++) {
        infer_reset(&st);
        double t0 = lab_now();
        infer_forward(&st, (int)np, rows, prompt);
        double t1 = lab_now();
        for (int g = 0; g < c->gen; g++) {
            for (int b = 0; b < c->batch; b++) {
                rows[b] = b;
                step[b] = (int32_t)((uint32_t)(g * 7919 + b * 104729 + 17) % (uint32_t)V);
            }
            infer_forward(&st, c->batch, rows, step);
        }
        double t2 = lab_now();
        for (int b = 0; b < c->batch; b++)
            for (int p = 0; p < c->prompt; p++) rows[(size_t)b * c->prompt + p] = b;
        if (r >= 0) {
            res->pp_s[r] = t1 - t0;
            res->tg_s[r] = t2 - t1;
        }
    }
    res->kv_allocated = (int64_t)infer_kv_capacity_bytes(&st);
    res->rss_peak = (int64_t)machine_peak_rss_bytes();
    res->ok = 1;
    infer_free(&st);
    model_free(&m);
    free(prompt); free(step); free(rows);
}

static void write_all(int fd, const void *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) lab_die("writing a result to the parent: %s", strerror(errno));
        p = (const char *)p + k;
        n -= (size_t)k;
    }
}

// Reads exactly n bytes from fd (0) or fewer at end of file (-1).
static int read_all(int fd, void *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)p + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

// Runs `lab-profile argv...` as a fresh process (fork + exec: libgomp's threads do not survive a
// fork, so a child that merely forked would hang in its first parallel region) and reads n bytes
// of result from the pipe whose write end it gets as its last argument.
static void run_child(char **argv, int argc, void *result, size_t n, const char *what) {
    int fds[2];
    if (pipe(fds)) lab_die("pipe: %s", strerror(errno));
    char fd[16];
    snprintf(fd, sizeof fd, "%d", fds[1]);
    argv[argc] = fd;
    argv[argc + 1] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) lab_die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    int ok = read_all(fds[0], result, n) == 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status))
        lab_die("%s: expected a result from its process, found %s", what,
                WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "an exit without one (see the line above)");
}

static ChildResult run_isolated(const char *model_path, const Config *c, int warmup, int reps, uint64_t seed) {
    char a[12][32];
    snprintf(a[0], 32, "%d", (int)c->fmt); snprintf(a[1], 32, "%d", (int)c->kv); snprintf(a[2], 32, "%d", (int)c->kvd);
    snprintf(a[3], 32, "%d", c->batch); snprintf(a[4], 32, "%d", c->prompt); snprintf(a[5], 32, "%d", c->gen);
    snprintf(a[6], 32, "%d", c->threads); snprintf(a[7], 32, "%d", c->dim); snprintf(a[8], 32, "%d", c->layers);
    snprintf(a[9], 32, "%d", warmup); snprintf(a[10], 32, "%d", reps); snprintf(a[11], 32, "%llu", (unsigned long long)seed);
    char *argv[17] = {"lab-profile", "_trial", (char *)model_path};
    for (int i = 0; i < 12; i++) argv[3 + i] = a[i];
    ChildResult r = {0};
    char what[160];
    snprintf(what, sizeof what, "configuration %s kv %s batch %d prompt %d gen %d", qtype_name(c->fmt),
             kv_mode_name(c->kv), c->batch, c->prompt, c->gen);
    run_child(argv, 15, &r, sizeof r, what);
    if (!r.ok) lab_die("%s: expected a complete result, found none", what);
    return r;
}

// the hidden command of a trial process: lab-profile _trial MODEL fmt kv kvd batch prompt gen threads dim layers warmup reps seed FD
static int cmd_trial(int argc, char **argv) {
    if (argc != 16) lab_die("_trial: expected 14 arguments, found %d (an internal command of lab-profile bench)", argc - 2);
    long long v[12];
    for (int i = 0; i < 12; i++) v[i] = lab_parse_int("_trial", argv[3 + i], 0, 1ll << 62);
    Config c = {(QType)v[0], (KvMode)v[1], (KvDtype)v[2], (int)v[3], (int)v[4], (int)v[5], (int)v[6], (int)v[7], (int)v[8]};
    int fd = (int)lab_parse_int("_trial", argv[15], 0, 1 << 20);
    ModelConfig base = read_config(argv[2]);
    ChildResult r = {0};
    run_config(argv[2], &base, &c, (int)v[9], (int)v[10], (uint64_t)v[11], &r);
    write_all(fd, &r, sizeof r);
    return 0;
}

typedef struct { MachineStat bw; double sgemm; size_t bw_bytes; } MachineResult;

// lab-profile _machine THREADS M N K FD: the bandwidth and sgemm measurements, in their own process
static int cmd_machine(int argc, char **argv) {
    if (argc != 7) lab_die("_machine: expected 5 arguments, found %d (an internal command of lab-profile bench)", argc - 2);
    lab_set_threads((int)lab_parse_int("_machine", argv[2], 1, 4096));
    int M = (int)lab_parse_int("_machine", argv[3], 1, 1 << 30), N = (int)lab_parse_int("_machine", argv[4], 1, 1 << 30);
    int K = (int)lab_parse_int("_machine", argv[5], 1, 1 << 30), fd = (int)lab_parse_int("_machine", argv[6], 0, 1 << 20);
    MachineResult r = {.bw_bytes = machine_bandwidth_buffer_bytes()};
    r.bw = machine_read_bandwidth(r.bw_bytes, 5);
    r.sgemm = machine_sgemm_gflops(M, N, K, 1.0);
    write_all(fd, &r, sizeof r);
    return 0;
}

typedef struct {  // the growing output tables
    size_t n, cap;
    int64_t *config, *rep, *tokens;
    const char **test;
    double *seconds, *tps;
} Trials;

static void trials_add(Trials *t, int64_t config, const char *test, int64_t rep, double s, int64_t tokens) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->config = lab_realloc(t->config, t->cap * sizeof(int64_t));
        t->rep = lab_realloc(t->rep, t->cap * sizeof(int64_t));
        t->tokens = lab_realloc(t->tokens, t->cap * sizeof(int64_t));
        t->test = lab_realloc(t->test, t->cap * sizeof(char *));
        t->seconds = lab_realloc(t->seconds, t->cap * sizeof(double));
        t->tps = lab_realloc(t->tps, t->cap * sizeof(double));
    }
    t->config[t->n] = config;
    t->test[t->n] = lab_strdup(test);
    t->rep[t->n] = rep;
    t->seconds[t->n] = s;
    t->tokens[t->n] = tokens;
    t->tps[t->n] = tokens / s;
    t->n++;
}

enum { C_CONFIG, C_BATCH, C_PROMPT, C_GEN, C_THREADS, C_DIM, C_LAYERS, C_HEADS, C_VOCAB, C_NPARAMS, C_WBYTES,
       C_KVF, C_KVA, C_RSSPEAK, C_MEAS, C_MFORM, N_ICOLS };
static const char *const ICOL[N_ICOLS] = {
    "config", "batch", "prompt", "gen", "threads", "dim", "layers", "heads", "vocab", "n_params", "weight_bytes",
    "kv_bytes_formula", "kv_allocated_bytes", "rss_peak_bytes", "mem_measured_bytes", "mem_formula_bytes"};
static const char *const IUNIT[N_ICOLS] = {NULL, NULL, "tokens", "tokens", NULL, NULL, NULL, NULL, NULL, NULL,
                                           "bytes", "bytes", "bytes", "bytes", "bytes", "bytes"};
enum { D_BPW, D_MED, D_MEAN, D_STD, D_MIN, D_MAX, D_MS, D_MSSTEP, D_BOUND, D_FRAC, N_DCOLS };
static const char *const DCOL[N_DCOLS] = {"bits_per_weight", "median_tokens_per_s", "mean_tokens_per_s",
                                          "std_tokens_per_s", "min_tokens_per_s", "max_tokens_per_s", "median_ms",
                                          "ms_per_step", "bound_tokens_per_s", "fraction_of_bound"};
static const char *const DUNIT[N_DCOLS] = {"bits", "tokens/s", "tokens/s", "tokens/s", "tokens/s", "tokens/s",
                                           "ms", "ms", "tokens/s", NULL};
enum { S_TEST, S_KIND, S_FORMAT, S_KV, S_KVD, N_SCOLS };
static const char *const SCOL[N_SCOLS] = {"test", "kind", "format", "kv_mode", "kv_dtype"};

typedef struct {
    size_t n, cap;
    int64_t *i[N_ICOLS];
    double *d[N_DCOLS];
    const char **s[N_SCOLS];
} Rows;

static size_t rows_add(Rows *r) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        for (int k = 0; k < N_ICOLS; k++) r->i[k] = lab_realloc(r->i[k], r->cap * sizeof(int64_t));
        for (int k = 0; k < N_DCOLS; k++) r->d[k] = lab_realloc(r->d[k], r->cap * sizeof(double));
        for (int k = 0; k < N_SCOLS; k++) r->s[k] = lab_realloc(r->s[k], r->cap * sizeof(char *));
    }
    return r->n++;
}

static int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    StrList formats, kvs, kvds;
    IntList batch, prompt, gen, threads, dims = {1, {0}}, layers = {1, {0}};
    parse_strs("--formats", "f32", &formats);
    parse_strs("--kv", "contiguous", &kvs);
    parse_strs("--kv-dtype", "f32", &kvds);
    parse_ints("--batch", "1", 1, 4096, &batch);
    parse_ints("--prompt", "128", 1, 1 << 20, &prompt);
    parse_ints("--gen", "128", 0, 1 << 20, &gen);
    parse_ints("--threads", "2", 1, 4096, &threads);
    int reps = 5, warmup = 1;
    uint64_t seed = 1;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--model")) model = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--formats")) parse_strs(f, v, &formats);
        else if (!strcmp(f, "--kv")) parse_strs(f, v, &kvs);
        else if (!strcmp(f, "--kv-dtype")) parse_strs(f, v, &kvds);
        else if (!strcmp(f, "--batch")) parse_ints(f, v, 1, 4096, &batch);
        else if (!strcmp(f, "--prompt")) parse_ints(f, v, 1, 1 << 20, &prompt);
        else if (!strcmp(f, "--gen")) parse_ints(f, v, 0, 1 << 20, &gen);
        else if (!strcmp(f, "--threads")) parse_ints(f, v, 1, 4096, &threads);
        else if (!strcmp(f, "--dim")) parse_ints(f, v, 8, 1 << 16, &dims);
        else if (!strcmp(f, "--layers")) parse_ints(f, v, 1, 1024, &layers);
        else if (!strcmp(f, "--reps")) reps = (int)lab_parse_int(f, v, 1, MAXREP);
        else if (!strcmp(f, "--warmup")) warmup = (int)lab_parse_int(f, v, 0, 100);
        else if (!strcmp(f, "--seed")) seed = (uint64_t)lab_parse_int(f, v, 0, 1ll << 62);
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!model || !out) lab_die("bench: expected --model and --out (see --help)");
    lab_set_seed(seed);
    // every value is checked before any trial runs
    QType fmt[MAXV];
    KvMode kv[MAXV];
    KvDtype kvd[MAXV];
    for (int i = 0; i < formats.n; i++)
        if (qtype_parse(formats.v[i], &fmt[i])) lab_die("--formats: expected f32, bf16, f16, q8_0 or q4_0, found '%s'", formats.v[i]);
    for (int i = 0; i < kvs.n; i++)
        if (kv_mode_parse(kvs.v[i], &kv[i])) lab_die("--kv: expected none, contiguous or paged, found '%s'", kvs.v[i]);
    for (int i = 0; i < kvds.n; i++)
        if (kv_dtype_parse(kvds.v[i], &kvd[i])) lab_die("--kv-dtype: expected f32 or f16, found '%s'", kvds.v[i]);
    ModelConfig base = read_config(model);
    lab_add_input(model);
    for (int d = 0; d < dims.n; d++)
        for (int l = 0; l < layers.n; l++) {
            ModelConfig c = shape_config(&base, (int)dims.v[d], (int)layers.v[l], 0);
            for (int f = 0; f < formats.n; f++)
                if (qtype_is_grouped(fmt[f]) && (c.dim % QK || c.ffn_dim % QK))
                    lab_die("--formats %s: expected dim and ffn multiples of %d, found dim %d, ffn %d", formats.v[f], QK,
                            c.dim, c.ffn_dim);
            for (int p = 0; p < prompt.n; p++)
                for (int g = 0; g < gen.n; g++)
                    if (!dims.v[d] && !layers.v[l] && prompt.v[p] + gen.v[g] > base.max_seq_len)
                        lab_die("--prompt %lld --gen %lld: expected at most %s's context of %d tokens", prompt.v[p],
                                gen.v[g], model, base.max_seq_len);
        }

    // the provenance's thread count: the sweep's largest (the machine's limits are measured with it)
    lab_set_threads((int)threads.v[threads.n - 1]);
    double load_start = lab_load_average();
    // the limits at the largest prefill of the sweep, in a process of their own like every trial
    int M = (int)(batch.v[batch.n - 1] * prompt.v[prompt.n - 1]);
    ModelConfig c0 = shape_config(&base, (int)dims.v[0], (int)layers.v[0], 0);
    char ma[4][32];
    snprintf(ma[0], 32, "%lld", threads.v[threads.n - 1]);
    snprintf(ma[1], 32, "%d", M); snprintf(ma[2], 32, "%d", c0.ffn_dim); snprintf(ma[3], 32, "%d", c0.dim);
    char *margv[9] = {"lab-profile", "_machine", ma[0], ma[1], ma[2], ma[3]};
    MachineResult mr;
    run_child(margv, 6, &mr, sizeof mr, "the bandwidth and sgemm measurement");
    MachineStat bw = mr.bw;
    double sgemm = mr.sgemm;
    size_t bw_bytes = mr.bw_bytes;
    printf("machine: read bandwidth %.2f GB/s (%.2f..%.2f, %zu MiB buffer); sgemm %dx%dx%d %.1f GFLOP/s; kernel %s; BLAS %s\n",
           bw.median, bw.min, bw.max, bw_bytes >> 20, M, c0.ffn_dim, c0.dim, sgemm, qkernel_name(qkernel_active()),
           lab_blas_core());

    int n_configs = formats.n * kvs.n * kvds.n * (int)(batch.n * prompt.n * gen.n * threads.n * dims.n * layers.n);
    Trials tr = {0};
    Rows rw = {0};
    Progress prog;
    progress_start(&prog, "bench", (uint64_t)n_configs);
    int ci = 0;
    for (int d = 0; d < dims.n; d++) for (int l = 0; l < layers.n; l++) for (int f = 0; f < formats.n; f++)
    for (int k = 0; k < kvs.n; k++) for (int kd = 0; kd < kvds.n; kd++) for (int th = 0; th < threads.n; th++)
    for (int b = 0; b < batch.n; b++) for (int p = 0; p < prompt.n; p++) for (int g = 0; g < gen.n; g++, ci++) {
        Config c = {fmt[f], kv[k], kvd[kd], (int)batch.v[b], (int)prompt.v[p], (int)gen.v[g], (int)threads.v[th],
                    (int)dims.v[d], (int)layers.v[l]};
        ChildResult r = run_isolated(model, &c, warmup, reps, seed);
        ModelConfig mc = shape_config(&base, c.dim, c.layers, c.prompt + c.gen);
        int HD = mc.dim / mc.n_heads;
        double elem = c.kvd == KV_F16 ? 2 : 4;
        double wbytes = weight_bytes(&mc, c.fmt);
        double kv_formula = 2.0 * mc.n_layers * mc.n_kv_heads * HD * (double)(c.prompt + c.gen) * c.batch * elem;
        double kv_token = 2.0 * mc.n_layers * mc.n_kv_heads * HD * elem;
        for (int t = 0; t < (c.gen > 0 ? 2 : 1); t++) {
            int tg = t == 1;
            char test[32];
            snprintf(test, sizeof test, "%s%d", tg ? "tg" : "pp", tg ? c.gen : c.prompt);
            double tps[MAXREP];
            int64_t tokens = (int64_t)c.batch * (tg ? c.gen : c.prompt);
            for (int rep = 0; rep < reps; rep++) {
                double s = tg ? r.tg_s[rep] : r.pp_s[rep];
                trials_add(&tr, ci, test, rep, s, tokens);
                tps[rep] = tokens / s;
            }
            double mean = 0, var = 0, mn = 1e300, mx = 0;
            for (int i = 0; i < reps; i++) mean += tps[i] / reps;
            for (int i = 0; i < reps; i++) {
                var += (tps[i] - mean) * (tps[i] - mean) / reps;
                mn = tps[i] < mn ? tps[i] : mn;
                mx = tps[i] > mx ? tps[i] : mx;
            }
            double med = median_of(tps, reps);
            double bound;
            if (tg) {
                // each step streams every weight once and each row's keys and values so far
                double ctx = c.prompt + (c.gen + 1) / 2.0;
                bound = c.batch * bw.median * 1e9 / (wbytes + c.batch * kv_token * ctx);
            } else {
                double flops = 2.0 * matmul_weights(&mc) + 2.0 * mc.n_layers * mc.dim * (double)c.prompt;
                bound = sgemm * 1e9 / flops;
            }
            size_t row = rows_add(&rw);
            int64_t iv[N_ICOLS] = {ci, c.batch, c.prompt, c.gen, c.threads, mc.dim, mc.n_layers, mc.n_heads,
                                   mc.vocab_size, (int64_t)model_num_params(&mc), (int64_t)wbytes, (int64_t)kv_formula,
                                   r.kv_allocated, r.rss_peak, r.rss_peak - r.rss_base, (int64_t)(wbytes + kv_formula)};
            double med_ms = 1000.0 * tokens / med;
            double dv[N_DCOLS] = {qtype_bits_per_weight(c.fmt), med, mean, sqrt(var), mn, mx, med_ms,
                                  tg ? med_ms / c.gen : med_ms, bound, med / bound};
            const char *sv[N_SCOLS] = {lab_strdup(test), tg ? "tg" : "pp", qtype_name(c.fmt), kv_mode_name(c.kv),
                                       kv_dtype_name(c.kvd)};
            for (int i = 0; i < N_ICOLS; i++) rw.i[i][row] = iv[i];
            for (int i = 0; i < N_DCOLS; i++) rw.d[i][row] = dv[i];
            for (int i = 0; i < N_SCOLS; i++) rw.s[i][row] = sv[i];
            printf("%-5s %-10s %-3s B %-3d %-6s %9.1f tok/s (%7.1f..%7.1f) %8.3f ms/step  %5.1f%% of bound  mem %.1f MiB (formula %.1f)\n",
                   qtype_name(c.fmt), kv_mode_name(c.kv), kv_dtype_name(c.kvd), c.batch, test, med, mn, mx,
                   dv[D_MSSTEP], 100 * med / bound, (r.rss_peak - r.rss_base) / 1048576.0, (wbytes + kv_formula) / 1048576.0);
        }
        progress_update(&prog, (uint64_t)ci + 1, NULL);
    }
    double load_end = lab_load_average();
    progress_end(&prog, NULL);

    H5Writer w = h5_create(out, "codelm-lab/profile/1");
    H5Column tc[] = {{"config", LAB_I64, tr.config, NULL}, {"test", LAB_STR, tr.test, NULL},
                     {"rep", LAB_I64, tr.rep, NULL},       {"seconds", LAB_F64, tr.seconds, "s"},
                     {"tokens", LAB_I64, tr.tokens, "tokens"}, {"tokens_per_s", LAB_F64, tr.tps, "tokens/s"}};
    h5_table_write(w.file, "trials", tr.n, 6, tc);
    H5Column cc[N_ICOLS + N_DCOLS + N_SCOLS];
    int nc = 0;
    cc[nc++] = (H5Column){ICOL[C_CONFIG], LAB_I64, rw.i[C_CONFIG], NULL};
    for (int i = 0; i < N_SCOLS; i++) cc[nc++] = (H5Column){SCOL[i], LAB_STR, rw.s[i], NULL};
    for (int i = 1; i < N_ICOLS; i++) cc[nc++] = (H5Column){ICOL[i], LAB_I64, rw.i[i], IUNIT[i]};
    for (int i = 0; i < N_DCOLS; i++) cc[nc++] = (H5Column){DCOL[i], LAB_F64, rw.d[i], DUNIT[i]};
    h5_table_write(w.file, "configs", rw.n, nc, cc);
    h5_attr_f64(w.file, "bandwidth_gbs", bw.median);
    h5_attr_f64(w.file, "bandwidth_gbs_min", bw.min);
    h5_attr_f64(w.file, "bandwidth_gbs_max", bw.max);
    h5_attr_i64(w.file, "bandwidth_buffer_bytes", (int64_t)bw_bytes);
    h5_attr_f64(w.file, "sgemm_gflops", sgemm);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d", M, c0.ffn_dim, c0.dim);
    h5_attr_str(w.file, "sgemm_shape", shape);
    h5_attr_f64(w.file, "load_start", load_start);
    h5_attr_f64(w.file, "load_end", load_end);
    h5_attr_str(w.file, "qkernel", qkernel_name(qkernel_active()));
    h5_attr_str(w.file, "model", model);
    h5_attr_i64(w.file, "reps", reps);
    h5_attr_i64(w.file, "warmup", warmup);
    h5_finish(&w);
    printf("wrote %s (%d configurations, %zu trials; load %.2f -> %.2f)\n", out, n_configs, tr.n, load_start, load_end);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// serve

#define N_METRICS 4
static const char *const METRIC[N_METRICS] = {"ttft", "tpot", "itl", "e2el"};
#define N_STATS 5
static const char *const STAT[N_STATS] = {"mean", "p50", "p90", "p95", "p99"};

static double stat_value(const ServeStat *s, int k) {
    double v[N_STATS] = {s->mean, s->p50, s->p90, s->p95, s->p99};
    return v[k];
}

typedef struct { size_t n, cap; int64_t **i; double **d; int ni, nd; } Table;

static void table_init(Table *t, int ni, int nd) {
    memset(t, 0, sizeof *t);
    t->ni = ni;
    t->nd = nd;
    t->i = lab_calloc((size_t)ni, sizeof(int64_t *));
    t->d = lab_calloc((size_t)nd, sizeof(double *));
}

static size_t table_add(Table *t) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        for (int k = 0; k < t->ni; k++) t->i[k] = lab_realloc(t->i[k], t->cap * sizeof(int64_t));
        for (int k = 0; k < t->nd; k++) t->d[k] = lab_realloc(t->d[k], t->cap * sizeof(double));
    }
    return t->n++;
}

static int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *format = "f32", *kv_dtype = "f32";
    StrList scheds, kvs, rates;
    parse_strs("--scheduler", "static,continuous", &scheds);
    parse_strs("--kv", "contiguous,paged", &kvs);
    parse_strs("--rate", "4,16", &rates);
    int batch = 8, requests = 64, pmin = 16, pmax = 96, omin = 16, omax = 96, threads = 2, block = 16;
    uint64_t seed = 1;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--model")) model = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--format")) format = v;
        else if (!strcmp(f, "--kv-dtype")) kv_dtype = v;
        else if (!strcmp(f, "--scheduler")) parse_strs(f, v, &scheds);
        else if (!strcmp(f, "--kv")) parse_strs(f, v, &kvs);
        else if (!strcmp(f, "--rate")) parse_strs(f, v, &rates);
        else if (!strcmp(f, "--batch")) batch = (int)lab_parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--block-size")) block = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--requests")) requests = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--prompt-min")) pmin = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--prompt-max")) pmax = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--output-min")) omin = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--output-max")) omax = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--threads")) threads = (int)lab_parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--seed")) seed = (uint64_t)lab_parse_int(f, v, 0, 1ll << 62);
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!model || !out) lab_die("serve: expected --model and --out (see --help)");
    if (pmin > pmax) lab_die("--prompt-min %d: expected at most --prompt-max %d", pmin, pmax);
    if (omin > omax) lab_die("--output-min %d: expected at most --output-max %d", omin, omax);
    QType fmt;
    KvDtype kvd;
    if (qtype_parse(format, &fmt)) lab_die("--format: expected f32, bf16, f16, q8_0 or q4_0, found '%s'", format);
    if (kv_dtype_parse(kv_dtype, &kvd)) lab_die("--kv-dtype: expected f32 or f16, found '%s'", kv_dtype);
    ServeScheduler sched[MAXV];
    KvMode kv[MAXV];
    double rate[MAXV];
    for (int i = 0; i < scheds.n; i++)
        if (serve_scheduler_parse(scheds.v[i], &sched[i])) lab_die("--scheduler: expected static or continuous, found '%s'", scheds.v[i]);
    for (int i = 0; i < kvs.n; i++)
        if (kv_mode_parse(kvs.v[i], &kv[i]) || kv[i] == KV_NONE)
            lab_die("--kv: expected contiguous or paged, found '%s'", kvs.v[i]);
    for (int i = 0; i < rates.n; i++)
        rate[i] = !strcmp(rates.v[i], "inf") ? INFINITY : lab_parse_double("--rate", rates.v[i], 1e-6, 1e9);
    lab_set_threads(threads);
    lab_set_seed(seed);
    Model m;
    model_load_for_inference(&m, model, NULL);  // records the model as an input
    if (pmax + omax - 1 > m.cfg.max_seq_len)
        lab_die("--prompt-max %d + --output-max %d: expected at most %s's context of %d tokens plus one", pmax, omax,
                model, m.cfg.max_seq_len);
    double load_start = lab_load_average();

    enum { R_RUN, R_BATCH, R_NREQ, R_KVCAP, R_KVPEAKA, R_KVPEAKU, N_RI };
    enum { R_RATE, R_DUR, R_RTP, R_OTP, R_WASTE, N_RD0 };
    Table runs, reqs, itl, steps;
    table_init(&runs, N_RI, N_RD0 + N_METRICS * N_STATS);
    table_init(&reqs, 4, 4);   // run, request, prompt_len, output_len | arrival, ttft, tpot, e2el
    table_init(&itl, 1, 1);    // run | gap
    table_init(&steps, 5, 2);  // run, n_entries, n_running, kv_allocated, kv_used | start, end
    const char **r_sched = lab_malloc(MAXV * MAXV * MAXV * sizeof(char *)), **r_kv = lab_malloc(MAXV * MAXV * MAXV * sizeof(char *));
    int run = 0;
    for (int k = 0; k < kvs.n; k++) {
        int T = pmax + omax;
        InferOptions opt = {.mode = kv[k], .dtype = kvd, .block_size = block < T ? block : T, .weights = fmt};
        InferState st;
        infer_init_ex(&st, &m, batch, T, &opt);
        for (int ri = 0; ri < rates.n; ri++) {
            ServeTrace trace;
            serve_trace_random(&trace, requests, rate[ri], pmin, pmax, omin, omax, m.cfg.vocab_size,
                               lab_hash64(seed ^ (uint64_t)ri));
            for (int s = 0; s < scheds.n; s++, run++) {
                ServeRun sr;
                serve_run(&st, &trace, sched[s], &sr);
                ServeMetrics mt;
                serve_metrics(sr.rec, sr.n, &mt);
                size_t row = table_add(&runs);
                r_sched[row] = serve_scheduler_name(sched[s]);
                r_kv[row] = kv_mode_name(kv[k]);
                int64_t iv[N_RI] = {run, batch, sr.n, (int64_t)sr.kv_capacity, (int64_t)sr.kv_peak_allocated,
                                    (int64_t)sr.kv_peak_used};
                for (int i = 0; i < N_RI; i++) runs.i[i][row] = iv[i];
                double dv0[N_RD0] = {rate[ri], mt.duration, mt.request_throughput, mt.output_throughput, sr.kv_mean_waste};
                for (int i = 0; i < N_RD0; i++) runs.d[i][row] = dv0[i];
                const ServeStat *st4[N_METRICS] = {&mt.ttft, &mt.tpot, &mt.itl, &mt.e2el};
                for (int q = 0; q < N_METRICS; q++)
                    for (int z = 0; z < N_STATS; z++) runs.d[N_RD0 + q * N_STATS + z][row] = stat_value(st4[q], z);
                double *ttft = lab_malloc((size_t)sr.n * sizeof(double)), *tpot = lab_malloc((size_t)sr.n * sizeof(double));
                double *e2el = lab_malloc((size_t)sr.n * sizeof(double));
                int n_itl = serve_itl_count(sr.rec, sr.n);
                double *gaps = lab_malloc((size_t)(n_itl ? n_itl : 1) * sizeof(double));
                serve_samples(sr.rec, sr.n, ttft, tpot, e2el, gaps);
                for (int q = 0; q < sr.n; q++) {
                    size_t r = table_add(&reqs);
                    reqs.i[0][r] = run; reqs.i[1][r] = q;
                    reqs.i[2][r] = sr.rec[q].prompt_len; reqs.i[3][r] = sr.rec[q].output_len;
                    reqs.d[0][r] = sr.rec[q].arrival; reqs.d[1][r] = ttft[q]; reqs.d[2][r] = tpot[q]; reqs.d[3][r] = e2el[q];
                }
                for (int q = 0; q < n_itl; q++) {
                    size_t r = table_add(&itl);
                    itl.i[0][r] = run;
                    itl.d[0][r] = gaps[q];
                }
                for (int q = 0; q < sr.n_steps; q++) {
                    size_t r = table_add(&steps);
                    const ServeStep *sp = &sr.steps[q];
                    steps.i[0][r] = run; steps.i[1][r] = sp->n_entries; steps.i[2][r] = sp->n_running;
                    steps.i[3][r] = (int64_t)sp->kv_allocated; steps.i[4][r] = (int64_t)sp->kv_used;
                    steps.d[0][r] = sp->start; steps.d[1][r] = sp->end;
                }
                printf("%-10s %-10s rate %6g: %6.1f output tok/s, TTFT p50 %7.1f ms p99 %7.1f ms, TPOT p50 %6.2f ms p99 %6.2f ms, KV waste %.1f%%\n",
                       serve_scheduler_name(sched[s]), kv_mode_name(kv[k]), rate[ri], mt.output_throughput,
                       1e3 * mt.ttft.p50, 1e3 * mt.ttft.p99, 1e3 * mt.tpot.p50, 1e3 * mt.tpot.p99, 100 * sr.kv_mean_waste);
                free(ttft); free(tpot); free(e2el); free(gaps);
                serve_run_free(&sr);
            }
            serve_trace_free(&trace);
        }
        infer_free(&st);
    }
    double load_end = lab_load_average();

    H5Writer w = h5_create(out, "codelm-lab/serve/1");
    int nrc = 3 + N_RI + N_RD0 + N_METRICS * N_STATS;
    H5Column *rc = lab_malloc((size_t)nrc * sizeof(H5Column));
    char (*names)[32] = lab_malloc((size_t)N_METRICS * N_STATS * 32);
    int c = 0;
    rc[c++] = (H5Column){"run", LAB_I64, runs.i[R_RUN], NULL};
    rc[c++] = (H5Column){"scheduler", LAB_STR, r_sched, NULL};
    rc[c++] = (H5Column){"kv_mode", LAB_STR, r_kv, NULL};
    rc[c++] = (H5Column){"rate", LAB_F64, runs.d[R_RATE], "requests/s"};
    rc[c++] = (H5Column){"batch", LAB_I64, runs.i[R_BATCH], NULL};
    rc[c++] = (H5Column){"n_requests", LAB_I64, runs.i[R_NREQ], NULL};
    rc[c++] = (H5Column){"duration_s", LAB_F64, runs.d[R_DUR], "s"};
    rc[c++] = (H5Column){"request_throughput", LAB_F64, runs.d[R_RTP], "requests/s"};
    rc[c++] = (H5Column){"output_throughput", LAB_F64, runs.d[R_OTP], "tokens/s"};
    for (int q = 0; q < N_METRICS; q++)
        for (int z = 0; z < N_STATS; z++) {
            snprintf(names[q * N_STATS + z], 32, "%s_%s_s", METRIC[q], STAT[z]);
            rc[c++] = (H5Column){names[q * N_STATS + z], LAB_F64, runs.d[N_RD0 + q * N_STATS + z], "s"};
        }
    rc[c++] = (H5Column){"kv_capacity_bytes", LAB_I64, runs.i[R_KVCAP], "bytes"};
    rc[c++] = (H5Column){"kv_peak_allocated_bytes", LAB_I64, runs.i[R_KVPEAKA], "bytes"};
    rc[c++] = (H5Column){"kv_peak_used_bytes", LAB_I64, runs.i[R_KVPEAKU], "bytes"};
    rc[c++] = (H5Column){"kv_mean_waste", LAB_F64, runs.d[R_WASTE], NULL};
    h5_table_write(w.file, "runs", runs.n, c, rc);
    H5Column qc[] = {{"run", LAB_I64, reqs.i[0], NULL},          {"request", LAB_I64, reqs.i[1], NULL},
                     {"arrival_s", LAB_F64, reqs.d[0], "s"},      {"prompt_len", LAB_I64, reqs.i[2], "tokens"},
                     {"output_len", LAB_I64, reqs.i[3], "tokens"}, {"ttft_s", LAB_F64, reqs.d[1], "s"},
                     {"tpot_s", LAB_F64, reqs.d[2], "s"},         {"e2el_s", LAB_F64, reqs.d[3], "s"}};
    h5_table_write(w.file, "requests", reqs.n, 8, qc);
    H5Column ic[] = {{"run", LAB_I64, itl.i[0], NULL}, {"gap_s", LAB_F64, itl.d[0], "s"}};
    h5_table_write(w.file, "itl", itl.n, 2, ic);
    H5Column sc[] = {{"run", LAB_I64, steps.i[0], NULL},          {"start_s", LAB_F64, steps.d[0], "s"},
                     {"end_s", LAB_F64, steps.d[1], "s"},          {"n_entries", LAB_I64, steps.i[1], "tokens"},
                     {"n_running", LAB_I64, steps.i[2], NULL},     {"kv_allocated_bytes", LAB_I64, steps.i[3], "bytes"},
                     {"kv_used_bytes", LAB_I64, steps.i[4], "bytes"}};
    h5_table_write(w.file, "steps", steps.n, 7, sc);
    h5_attr_str(w.file, "model", model);
    h5_attr_str(w.file, "format", qtype_name(fmt));
    h5_attr_str(w.file, "kv_dtype", kv_dtype_name(kvd));
    h5_attr_i64(w.file, "block_size", block);
    h5_attr_f64(w.file, "load_start", load_start);
    h5_attr_f64(w.file, "load_end", load_end);
    h5_attr_str(w.file, "qkernel", qkernel_name(qkernel_active()));
    h5_finish(&w);
    printf("wrote %s (%d runs; load %.2f -> %.2f)\n", out, run, load_start, load_end);
    model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    lab_init("lab-profile", argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return argc < 2;
    }
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "serve")) return cmd_serve(argc, argv);
    if (!strcmp(argv[1], "_trial")) return cmd_trial(argc, argv);
    if (!strcmp(argv[1], "_machine")) return cmd_machine(argc, argv);
    lab_die("unknown command '%s': expected bench or serve (see --help)", argv[1]);
}
