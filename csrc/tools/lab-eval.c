// lab-eval: evaluations of a model.
//   ppl          cross-entropy, perplexity and bits per byte on a tokens.h5 split (codelm-lab/ppl/1)
//   func         functional correctness of generated completions: each run against its task's
//                tests in the sandbox, pass@k per task and overall (codelm-lab/func/1)
//   check-tasks  the harness's self-checks on a task set: canonical solutions pass, `pass` bodies
//                and planted bugs fail (codelm-lab/taskcheck/1), optionally keeping the good tasks
//   edit         edit distance of completions to reference texts (codelm-lab/edit/1)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "bpe.h"
#include "metrics.h"
#include "infer.h"
#include "quant.h"
#include "sandbox.h"
#include "tasks.h"
#include "tokens.h"

static void usage(void) {
    SandboxLimits d = sandbox_default_limits();
    printf(
        "usage: lab-eval ppl|func|check-tasks|edit [flags]   (each command's flags below)\n"
        "\n"
        "usage: lab-eval ppl --model BASE.h5 [--adapter ADAPTER.h5] --tokens TOKENS.h5 --out PPL.h5\n"
        "                    [--split test] [--ctx 256] [--score second-half|all] [--batch 8]\n"
        "\n"
        "ppl scores the tokens of one split and writes codelm-lab/ppl/1: a /by_package/ table and\n"
        "the totals as root attributes.\n"
        "\n"
        "Windowing (as llama.cpp's perplexity): each package's documents of the split are\n"
        "concatenated in file order (each ends in its eot token) and cut into non-overlapping\n"
        "windows of ctx input tokens; position j of a window predicts the token after it. With\n"
        "--score second-half (the default) only positions j >= ctx/2 are scored, so every scored\n"
        "token sees at least ctx/2 + 1 tokens of context; the last, shorter window of a package\n"
        "follows the same rule. --score all scores every position, so every token but a package's\n"
        "first is scored exactly once (the early ones with little context).\n"
        "\n"
        "  cross_entropy = nll_nats / tokens_scored     perplexity = exp(cross_entropy)\n"
        "  bits_per_byte = nll_nats / ln 2 / bytes_scored, bytes_scored = the sum of token_bytes\n"
        "  over the scored target tokens (eot counts 0 bytes but its loss is scored)\n"
        "\n"
        "  --model PATH       checkpoint (codelm-lab/checkpoint/1)\n"
        "  --adapter PATH     LoRA adapter trained on that model, merged into it before scoring\n"
        "  --tokens PATH      tokens.h5; --split NAME which split (test)\n"
        "  --ctx N            window length, at most the model's max_seq_len (256)\n"
        "  --batch B          windows per forward pass (8)\n"
        "  --max-tokens N     score only the first N tokens of each package's stream (0: all)\n"
        "  --format F         score the model with every weight matrix quantized to F (f32, bf16,\n"
        "                     f16, q8_0, q4_0) and back, as the quantized kernels compute (f32)\n"
        "  --threads N        OpenMP and BLAS threads\n"
        "  --config-sha256 HEX  recorded in the output's provenance\n"
        "\n"
        "usage: lab-eval func --tasks TASKS.jsonl --generations GEN.h5 --out FUNC.h5 [--workers 2]\n"
        "                     [sandbox limits]\n"
        "\n"
        "func runs every completion of GEN.h5 (lab-generate's output for TASKS.jsonl) as HumanEval's\n"
        "program  prompt + completion + \"\\n\" + test + \"\\ncheck(\" + entry_point + \")\\n\"  in the\n"
        "sandbox (see lab-sandbox --help) and writes codelm-lab/func/1: a /samples/ table (status and\n"
        "reason of each run), a /tasks/ table (n samples, c passed, pass@1/10/100 of each task) and\n"
        "the means as root attributes. pass@k is the unbiased estimator of Chen et al. 2021,\n"
        "1 - C(n-c, k)/C(n, k), averaged over tasks; NaN (not reported) when some task has n < k.\n"
        "The tasks need prompt, entry_point and test; the generations' prompts must be the tasks'.\n"
        "\n"
        "usage: lab-eval check-tasks --tasks TASKS.jsonl --out CHECK.h5 [--keep KEPT.jsonl]\n"
        "                            [--workers 2] [sandbox limits]\n"
        "\n"
        "check-tasks runs three programs per task: the canonical solution (must pass), a `pass`\n"
        "body (must fail: a test that None satisfies checks nothing) and the canonical solution with\n"
        "a planted bug that changes its return value (must fail), and writes codelm-lab/taskcheck/1.\n"
        "Without --keep every task must behave so, else it exits 1 naming the first that does not.\n"
        "With --keep (for mined candidates) it writes the tasks whose canonical solution passes and\n"
        "whose `pass` body fails to KEPT.jsonl, and reports the rest.\n"
        "\n"
        "usage: lab-eval edit --tasks TASKS.jsonl --generations GEN.h5 --tokenizer TOK.h5 --out EDIT.h5\n"
        "\n"
        "edit compares each completion with its task's canonical_solution (the reference) and writes\n"
        "codelm-lab/edit/1: per sample the Levenshtein distance over characters (Unicode code points)\n"
        "and over tokens (both texts encoded with TOK.h5), edit similarity 1 - lev / max(len) in\n"
        "each unit, exact match (bytes) and exact match after removing trailing whitespace of each\n"
        "line and trailing newlines; the means as root attributes. Definitions: src/metrics.h.\n"
        "\n"
        "Shared by func and check-tasks:\n"
        "  --workers N       sandboxed programs at once (2)\n");
    sandbox_limits_help(&d, stdout);
}

typedef struct {
    uint64_t tokens, bytes;
    double nll;
} Score;

// Scores B windows of T inputs: inputs and targets (B, T), targets -1 where not scored.
static void score_batch(Model *m, const TokenSplit *ts, const int32_t *in, const int32_t *tgt, int B,
                        int T, float *host_losses, Score *s) {
    model_forward(m, in, tgt, B, T);
    m->be->download(host_losses, m->losses, (size_t)B * T * sizeof(float));
    for (int i = 0; i < B * T; i++)
        if (tgt[i] >= 0) {
            s->tokens++;
            s->bytes += ts->token_bytes[tgt[i]];
            s->nll += host_losses[i];
        }
}

// One package's token stream, scored window by window.
static Score score_stream(Model *m, const TokenSplit *ts, const int32_t *stream, uint64_t n, int ctx,
                          int first, int batch, int32_t *in, int32_t *tgt, float *host_losses) {
    Score s = {0};
    if (n < 2) return s;
    uint64_t windows = (n - 1 + (uint64_t)ctx - 1) / (uint64_t)ctx;
    int filled = 0;
    for (uint64_t w = 0; w < windows; w++) {
        uint64_t start = w * (uint64_t)ctx;
        int len = (int)(n - 1 - start < (uint64_t)ctx ? n - 1 - start : (uint64_t)ctx);
        if (len <= first) continue;  // a tail with nothing to score
        // into the next free row; the last, shorter window runs alone from there, with its own T
        int32_t *row_in = in + (size_t)filled * ctx, *row_tgt = tgt + (size_t)filled * ctx;
        for (int j = 0; j < len; j++) {
            row_in[j] = stream[start + j];
            row_tgt[j] = j >= first ? stream[start + j + 1] : -1;
        }
        if (len < ctx) {
            score_batch(m, ts, row_in, row_tgt, 1, len, host_losses, &s);
            continue;
        }
        if (++filled == batch) {
            score_batch(m, ts, in, tgt, filled, ctx, host_losses, &s);
            filled = 0;
        }
    }
    if (filled) score_batch(m, ts, in, tgt, filled, ctx, host_losses, &s);
    return s;
}

static double cross_entropy(Score s) { return s.tokens ? s.nll / (double)s.tokens : NAN; }
static double bits_per_byte(Score s) { return s.bytes ? s.nll / log(2.0) / (double)s.bytes : NAN; }

static int cmd_ppl(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *tokens = NULL, *out = NULL, *split = "test";
    const char *score = "second-half", *format = "f32";
    int ctx = 256, batch = 8;
    uint64_t max_tokens = 0;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--model")) model = v;
        else if (!strcmp(f, "--adapter")) adapter = v;
        else if (!strcmp(f, "--tokens")) tokens = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--split")) split = v;
        else if (!strcmp(f, "--score")) score = v;
        else if (!strcmp(f, "--format")) format = v;
        else if (!strcmp(f, "--ctx")) ctx = (int)lab_parse_int(f, v, 2, 1 << 20);
        else if (!strcmp(f, "--batch")) batch = (int)lab_parse_int(f, v, 1, 1 << 16);
        else if (!strcmp(f, "--max-tokens")) max_tokens = (uint64_t)lab_parse_int(f, v, 0, (1ll << 62));
        else if (!strcmp(f, "--threads")) lab_set_threads((int)lab_parse_int(f, v, 1, 4096));
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!model || !tokens || !out) lab_die("ppl: expected --model, --tokens and --out (see --help)");
    int first;
    if (!strcmp(score, "second-half")) first = ctx / 2;
    else if (!strcmp(score, "all")) first = 0;
    else lab_die("--score: expected second-half or all, found '%s'", score);

    QType qt;
    if (qtype_parse(format, &qt)) lab_die("--format: expected f32, bf16, f16, q8_0 or q4_0, found '%s'", format);
    Model m;
    model_load_for_inference(&m, model, adapter);
    if (qt != QT_F32) {
        if (qtype_is_grouped(qt) && (m.cfg.dim % QK || m.cfg.ffn_dim % QK))
            lab_die("--format %s: expected %s's dim and ffn to be multiples of %d, found %d and %d", format, model, QK,
                    m.cfg.dim, m.cfg.ffn_dim);
        infer_roundtrip_weights(&m, qt);
    }
    if (ctx > m.cfg.max_seq_len)
        lab_die("--ctx %d: expected at most %s's max_seq_len %d", ctx, model, m.cfg.max_seq_len);
    TokenSplit ts;
    tokens_load(&ts, tokens, split);
    lab_add_input(tokens);
    if (ts.vocab_size != m.cfg.vocab_size)
        lab_die("%s: expected tokens for vocab_size %d (%s's), found vocab_size %d", tokens,
                m.cfg.vocab_size, model, ts.vocab_size);

    int32_t *stream = lab_malloc((ts.n_tokens + 1) * sizeof(int32_t));
    int32_t *in = lab_malloc((size_t)batch * ctx * sizeof(int32_t));
    int32_t *tgt = lab_malloc((size_t)batch * ctx * sizeof(int32_t));
    float *host_losses = lab_malloc((size_t)batch * ctx * sizeof(float));
    Score *by = lab_calloc(ts.n_packages + 1, sizeof(Score));
    int *present = lab_calloc(ts.n_packages + 1, sizeof(int));
    for (uint64_t d = 0; d < ts.n_docs; d++) present[ts.doc_package[d]] = 1;
    Progress prog;
    progress_start(&prog, "ppl", ts.n_tokens);
    uint64_t done = 0;
    for (uint64_t p = 0; p < ts.n_packages; p++) {
        if (!present[p]) continue;
        uint64_t n = 0;
        for (uint64_t d = 0; d < ts.n_docs; d++)
            if ((uint64_t)ts.doc_package[d] == p) {
                uint64_t a = ts.doc_offsets[d], b = ts.doc_offsets[d + 1];
                memcpy(stream + n, ts.tokens + a, (b - a) * sizeof(int32_t));
                n += b - a;
            }
        // the first max_tokens of the package's stream: a bound on time that keeps every package
        if (max_tokens && n > max_tokens) n = max_tokens;
        by[p] = score_stream(&m, &ts, stream, n, ctx, first, batch, in, tgt, host_losses);
        done += n;
        progress_update(&prog, done, ts.packages[p]);
    }

    uint64_t rows = 0;
    for (uint64_t p = 0; p < ts.n_packages; p++) rows += present[p];
    size_t cap = rows + 1;
    const char **name = lab_malloc(cap * sizeof(char *));
    uint64_t *tok = lab_malloc(cap * sizeof(uint64_t)), *byt = lab_malloc(cap * sizeof(uint64_t));
    double *nll = lab_malloc(cap * sizeof(double)), *ce = lab_malloc(cap * sizeof(double));
    double *ppl = lab_malloc(cap * sizeof(double)), *bpb = lab_malloc(cap * sizeof(double));
    Score total = {0};
    uint64_t r = 0;
    for (uint64_t p = 0; p < ts.n_packages; p++) {
        if (!present[p]) continue;
        Score s = by[p];
        name[r] = ts.packages[p];
        tok[r] = s.tokens; byt[r] = s.bytes; nll[r] = s.nll;
        ce[r] = cross_entropy(s); ppl[r] = exp(ce[r]); bpb[r] = bits_per_byte(s);
        total.tokens += s.tokens; total.bytes += s.bytes; total.nll += s.nll;
        r++;
    }
    if (!total.tokens)
        lab_die("%s: split '%s' has no token to score with --ctx %d and --score %s (too short)", tokens,
                split, ctx, score);
    double tce = cross_entropy(total), tbpb = bits_per_byte(total);
    char summary[64];
    snprintf(summary, sizeof summary, "%llu tokens scored", (unsigned long long)total.tokens);
    progress_end(&prog, summary);

    H5Writer w = h5_create(out, "codelm-lab/ppl/1");
    H5Column cols[7] = {{"package", LAB_STR, name, NULL},
                        {"tokens_scored", LAB_U64, tok, "tokens"},
                        {"bytes_scored", LAB_U64, byt, "bytes"},
                        {"nll_nats", LAB_F64, nll, "nats"},
                        {"cross_entropy", LAB_F64, ce, "nats/token"},
                        {"perplexity", LAB_F64, ppl, NULL},
                        {"bits_per_byte", LAB_F64, bpb, "bits/byte"}};
    h5_table_write(w.file, "by_package", rows, 7, cols);
    h5_attr_str(w.file, "model", model);
    h5_attr_str(w.file, "adapter", adapter ? adapter : "");
    h5_attr_str(w.file, "split", split);
    h5_attr_i64(w.file, "ctx", ctx);
    h5_attr_str(w.file, "scored", score);
    h5_attr_str(w.file, "weight_format", qtype_name(qt));
    h5_attr_i64(w.file, "max_tokens_per_package", (int64_t)max_tokens);
    h5_attr_i64(w.file, "tokens_scored", (int64_t)total.tokens);
    h5_attr_i64(w.file, "bytes_scored", (int64_t)total.bytes);
    h5_attr_f64(w.file, "nll_nats", total.nll);
    h5_attr_f64(w.file, "cross_entropy", tce);
    h5_attr_f64(w.file, "perplexity", exp(tce));
    h5_attr_f64(w.file, "bits_per_byte", tbpb);
    h5_finish(&w);

    printf("%-32s %12s %12s %10s %10s %8s\n", "package", "tokens", "bytes", "nats/tok", "ppl", "bpb");
    for (uint64_t i = 0; i < rows; i++)
        printf("%-32s %12llu %12llu %10.4f %10.3f %8.4f\n", name[i], (unsigned long long)tok[i],
               (unsigned long long)byt[i], ce[i], ppl[i], bpb[i]);
    printf("%-32s %12llu %12llu %10.4f %10.3f %8.4f\n", "total", (unsigned long long)total.tokens,
           (unsigned long long)total.bytes, tce, exp(tce), tbpb);
    printf("wrote %s (%s, ctx %d, scored %s)\n", out, split, ctx, score);

    free(name); free(tok); free(byt); free(nll); free(ce); free(ppl); free(bpb);
    free(by); free(present); free(stream); free(in); free(tgt); free(host_losses);
    tokens_free(&ts);
    model_free(&m);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// generations (codelm-lab/generations/1) matched to their tasks

typedef struct {
    uint64_t n;
    H5TableColumn *cols; int ncols;
    const int64_t *sample;
    char **task_id, **completion;
    size_t *task;              // (n) index of the row's task in the TaskSet
    int64_t n_samples;
    double temperature;
} Generations;

static H5TableColumn *column(H5TableColumn *cols, int ncols, const char *name, LabType t, const char *path) {
    for (int i = 0; i < ncols; i++)
        if (!strcmp(cols[i].name, name)) {
            if (cols[i].type != t) lab_die("%s: generations/%s: expected another type, found type %d", path, name, cols[i].type);
            return &cols[i];
        }
    lab_die("%s: expected a column generations/%s, found none", path, name);
}

// Loads path and matches each row to the task of the same task_id; every task must have the
// prompt the generations were made from, so scores never pair a completion with another prompt.
static void generations_load(Generations *g, const char *path, const TaskSet *ts) {
    hid_t f = h5_open(path, "codelm-lab/generations/1");
    g->cols = h5_table_read(f, "generations", &g->n, &g->ncols);
    g->sample = column(g->cols, g->ncols, "sample", LAB_I64, path)->data;
    g->task_id = column(g->cols, g->ncols, "task_id", LAB_STR, path)->data;
    g->completion = column(g->cols, g->ncols, "completion", LAB_STR, path)->data;
    const int64_t *task = column(g->cols, g->ncols, "task", LAB_I64, path)->data;
    g->n_samples = h5_get_attr_i64(f, "n_samples");
    g->temperature = h5_get_attr_f64(f, "temperature");
    uint64_t n_prompts;
    char **prompts = h5_read_strings(f, "prompts", &n_prompts);
    h5_close(f);
    g->task = lab_malloc((g->n ? g->n : 1) * sizeof(size_t));
    size_t *seen = lab_calloc(ts->n, sizeof(size_t));
    for (uint64_t i = 0; i < g->n; i++) {
        size_t t = 0;
        while (t < ts->n && strcmp(ts->t[t].task_id, g->task_id[i])) t++;
        if (t == ts->n) lab_die("%s: row %llu: expected a task_id of %s, found \"%s\"", path, (unsigned long long)i, ts->path, g->task_id[i]);
        if (task[i] < 0 || (uint64_t)task[i] >= n_prompts || strcmp(prompts[task[i]], ts->t[t].prompt))
            lab_die("%s: task %s: expected the prompt of %s, found another prompt (generated for another task file?)", path,
                    g->task_id[i], ts->path);
        g->task[i] = t;
        seen[t]++;
    }
    for (size_t t = 0; t < ts->n; t++)
        if (!seen[t]) lab_die("%s: expected completions for every task of %s, found none for %s", path, ts->path, ts->t[t].task_id);
    free(seen);
    h5_free_strings(prompts, n_prompts);
}

static void generations_free(Generations *g) {
    h5_table_free(g->cols, g->ncols, g->n);
    free(g->task);
}

static void on_sandbox_done(size_t done, void *ctx) { progress_update(ctx, done, NULL); }

// flags shared by func and check-tasks; returns 1 when consumed
static int sandbox_flag(SandboxLimits *lim, int *workers, const char *f, const char *v) {
    if (!strcmp(f, "--workers")) { *workers = (int)lab_parse_int(f, v, 1, 1024); return 1; }
    return sandbox_limits_flag(lim, f, v);
}

static int any_netns_missing(const SandboxResult *r, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!r[i].netns) return 1;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// func: functional correctness, pass@k

static const char *const DIFFICULTY_NAME[] = {"", "one-liner", "loop", "data structure"};

static int cmd_func(int argc, char **argv) {
    const char *tasks = NULL, *gens = NULL, *out = NULL;
    SandboxLimits lim = sandbox_default_limits();
    int workers = 2;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--tasks")) tasks = v;
        else if (!strcmp(f, "--generations")) gens = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--threads")) lab_set_threads((int)lab_parse_int(f, v, 1, 4096));
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else if (!sandbox_flag(&lim, &workers, f, v)) lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!tasks || !gens || !out) lab_die("func: expected --tasks, --generations and --out (see --help)");
    TaskSet ts;
    taskset_load(&ts, tasks, TASK_NEED_PROMPT | TASK_NEED_ENTRY | TASK_NEED_TEST);
    lab_add_input(tasks);
    Generations g;
    generations_load(&g, gens, &ts);
    lab_add_input(gens);

    char **programs = lab_malloc((g.n ? g.n : 1) * sizeof(char *));
    for (uint64_t i = 0; i < g.n; i++) programs[i] = task_program(&ts.t[g.task[i]], g.completion[i]);
    SandboxResult *res = lab_calloc(g.n ? g.n : 1, sizeof(SandboxResult));
    Progress prog;
    progress_start(&prog, "func", g.n);
    sandbox_run_many((const char *const *)programs, g.n, workers, &lim, res, on_sandbox_done, &prog);

    int64_t *n = lab_calloc(ts.n, sizeof(int64_t)), *c = lab_calloc(ts.n, sizeof(int64_t));
    const char **status = lab_malloc((g.n ? g.n : 1) * sizeof(char *)), **reason = lab_malloc((g.n ? g.n : 1) * sizeof(char *));
    int64_t *task_col = lab_malloc((g.n ? g.n : 1) * sizeof(int64_t));
    uint64_t counts[4] = {0}, n_syntax = 0;
    for (uint64_t i = 0; i < g.n; i++) {
        // a finer signal than pass/fail for weak models: is the program even valid Python?
        n_syntax += res[i].status == SANDBOX_ERROR &&
                    (strstr(res[i].reason, "SyntaxError") || strstr(res[i].reason, "IndentationError") ||
                     strstr(res[i].reason, "TabError"));
        n[g.task[i]]++;
        c[g.task[i]] += res[i].status == SANDBOX_PASSED;
        counts[res[i].status]++;
        status[i] = sandbox_status_name(res[i].status);
        reason[i] = res[i].reason;
        task_col[i] = (int64_t)g.task[i];
    }
    char summary[160];
    snprintf(summary, sizeof summary, "%llu passed, %llu failed, %llu timeout, %llu error", (unsigned long long)counts[0],
             (unsigned long long)counts[1], (unsigned long long)counts[2], (unsigned long long)counts[3]);
    progress_end(&prog, summary);

    double *pk[METRICS_N_PASS_K], mean[METRICS_N_PASS_K];
    for (int k = 0; k < METRICS_N_PASS_K; k++) {
        pk[k] = lab_malloc(ts.n * sizeof(double));
        for (size_t t = 0; t < ts.n; t++) pk[k][t] = metrics_pass_at_k(n[t], c[t], METRICS_PASS_K[k]);
        mean[k] = metrics_pass_at_k_mean(n, c, ts.n, METRICS_PASS_K[k]);
    }
    const char **tid = lab_malloc(ts.n * sizeof(char *)), **pkg = lab_malloc(ts.n * sizeof(char *));
    int64_t *diff = lab_malloc(ts.n * sizeof(int64_t));
    for (size_t t = 0; t < ts.n; t++) {
        tid[t] = ts.t[t].task_id;
        pkg[t] = ts.t[t].package ? ts.t[t].package : "";
        diff[t] = ts.t[t].difficulty;
    }

    H5Writer w = h5_create(out, "codelm-lab/func/1");
    H5Column scols[] = {{"task", LAB_I64, task_col, NULL},      {"task_id", LAB_STR, g.task_id, NULL},
                        {"sample", LAB_I64, g.sample, NULL},    {"status", LAB_STR, status, NULL},
                        {"reason", LAB_STR, reason, NULL}};
    // no wall times: the file must be the same bytes on a rebuild (lab-sandbox keeps them)
    h5_table_write(w.file, "samples", g.n, 5, scols);
    H5Column tcols[] = {{"task_id", LAB_STR, tid, NULL},     {"difficulty", LAB_I64, diff, NULL},
                        {"package", LAB_STR, pkg, NULL},     {"n", LAB_I64, n, "samples"},
                        {"c", LAB_I64, c, "samples"},        {"pass_at_1", LAB_F64, pk[0], NULL},
                        {"pass_at_10", LAB_F64, pk[1], NULL}, {"pass_at_100", LAB_F64, pk[2], NULL}};
    h5_table_write(w.file, "tasks", ts.n, 8, tcols);
    h5_attr_str(w.file, "tasks_file", tasks);
    h5_attr_str(w.file, "generations", gens);
    h5_attr_i64(w.file, "n_tasks", (int64_t)ts.n);
    h5_attr_i64(w.file, "n_samples", g.n_samples);
    h5_attr_f64(w.file, "temperature", g.temperature);
    h5_attr_f64(w.file, "pass_at_1", mean[0]);
    h5_attr_f64(w.file, "pass_at_10", mean[1]);
    h5_attr_f64(w.file, "pass_at_100", mean[2]);
    const char *names[4] = {"n_passed", "n_failed", "n_timeout", "n_error"};
    for (int i = 0; i < 4; i++) h5_attr_i64(w.file, names[i], (int64_t)counts[i]);
    h5_attr_i64(w.file, "n_syntax_error", (int64_t)n_syntax);
    h5_attr_str(w.file, "network", any_netns_missing(res, g.n) ? "none" : "netns");
    sandbox_limits_attrs(&lim, w.file);
    h5_attr_i64(w.file, "workers", workers);
    h5_finish(&w);

    printf("%s: %zu tasks x %lld samples (temperature %g)\n", tasks, ts.n, (long long)g.n_samples, g.temperature);
    for (int k = 0; k < METRICS_N_PASS_K; k++)
        if (!isnan(mean[k])) printf("pass@%lld %.4f\n", (long long)METRICS_PASS_K[k], mean[k]);
    for (int d = 1; d <= 3; d++) {
        int64_t dn = 0, dc = 0, tasks_d = 0;
        for (size_t t = 0; t < ts.n; t++)
            if (ts.t[t].difficulty == d) dn += n[t], dc += c[t], tasks_d++;
        if (tasks_d) printf("difficulty %d (%s): %lld tasks, %lld/%lld samples passed\n", d, DIFFICULTY_NAME[d],
                            (long long)tasks_d, (long long)dc, (long long)dn);
    }
    printf("samples: %s (%llu of them not valid Python); wrote %s\n", summary, (unsigned long long)n_syntax, out);

    for (uint64_t i = 0; i < g.n; i++) {
        free(programs[i]);
        sandbox_result_free(&res[i]);
    }
    for (int k = 0; k < METRICS_N_PASS_K; k++) free(pk[k]);
    free(programs); free(res); free(n); free(c); free(status); free(reason); free(task_col);
    free(tid); free(pkg); free(diff);
    generations_free(&g);
    taskset_free(&ts);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// check-tasks: the harness's self-checks

enum { CHECK_CANONICAL, CHECK_STUB, CHECK_BUG, N_CHECKS };

static int cmd_check_tasks(int argc, char **argv) {
    const char *tasks = NULL, *out = NULL, *keep = NULL;
    SandboxLimits lim = sandbox_default_limits();
    int workers = 2;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--tasks")) tasks = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--keep")) keep = v;
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else if (!sandbox_flag(&lim, &workers, f, v)) lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!tasks || !out) lab_die("check-tasks: expected --tasks and --out (see --help)");
    TaskSet ts;
    taskset_load(&ts, tasks, TASK_NEED_PROMPT | TASK_NEED_ENTRY | TASK_NEED_TEST | TASK_NEED_CANONICAL);
    lab_add_input(tasks);

    size_t np = ts.n * N_CHECKS;
    char **programs = lab_malloc(np * sizeof(char *));
    for (size_t t = 0; t < ts.n; t++) {
        programs[t * N_CHECKS + CHECK_CANONICAL] = task_program(&ts.t[t], ts.t[t].canonical_solution);
        programs[t * N_CHECKS + CHECK_STUB] = task_program(&ts.t[t], "    pass\n");
        programs[t * N_CHECKS + CHECK_BUG] = task_program_planted_bug(&ts.t[t]);
    }
    SandboxResult *res = lab_calloc(np, sizeof(SandboxResult));
    Progress prog;
    progress_start(&prog, "check-tasks", np);
    sandbox_run_many((const char *const *)programs, np, workers, &lim, res, on_sandbox_done, &prog);

    const char **st[N_CHECKS], **why[N_CHECKS], **tid = lab_malloc(ts.n * sizeof(char *));
    for (int k = 0; k < N_CHECKS; k++) {
        st[k] = lab_malloc(ts.n * sizeof(char *));
        why[k] = lab_malloc(ts.n * sizeof(char *));
    }
    uint8_t *kept = lab_calloc(ts.n, 1);
    size_t n_canon = 0, n_stub = 0, n_bug = 0, n_kept = 0, bad = ts.n;
    for (size_t t = 0; t < ts.n; t++) {
        tid[t] = ts.t[t].task_id;
        for (int k = 0; k < N_CHECKS; k++) {
            st[k][t] = sandbox_status_name(res[t * N_CHECKS + k].status);
            why[k][t] = res[t * N_CHECKS + k].reason;
        }
        int canon = res[t * N_CHECKS + CHECK_CANONICAL].status == SANDBOX_PASSED;
        int stub = res[t * N_CHECKS + CHECK_STUB].status == SANDBOX_PASSED;
        int bug = res[t * N_CHECKS + CHECK_BUG].status == SANDBOX_PASSED;
        n_canon += canon; n_stub += stub; n_bug += bug;
        kept[t] = canon && !stub;
        n_kept += kept[t];
        if ((!canon || stub || bug) && bad == ts.n) bad = t;
    }
    char summary[200];
    snprintf(summary, sizeof summary, "canonical passed %zu/%zu, pass body passed %zu, planted bug passed %zu",
             n_canon, ts.n, n_stub, n_bug);
    progress_end(&prog, summary);

    if (keep) {
        char *tmp;
        FILE *f = lab_atomic_open(keep, &tmp);
        for (size_t t = 0; t < ts.n; t++)
            if (kept[t]) task_write_json(f, &ts.t[t]);
        lab_atomic_close(f, tmp, keep);
    }
    int64_t *kcol = lab_malloc(ts.n * sizeof(int64_t));
    for (size_t t = 0; t < ts.n; t++) kcol[t] = kept[t];
    H5Writer w = h5_create(out, "codelm-lab/taskcheck/1");
    H5Column cols[] = {{"task_id", LAB_STR, tid, NULL},
                       {"canonical", LAB_STR, st[CHECK_CANONICAL], NULL}, {"canonical_reason", LAB_STR, why[CHECK_CANONICAL], NULL},
                       {"pass_body", LAB_STR, st[CHECK_STUB], NULL},      {"pass_body_reason", LAB_STR, why[CHECK_STUB], NULL},
                       {"planted_bug", LAB_STR, st[CHECK_BUG], NULL},     {"planted_bug_reason", LAB_STR, why[CHECK_BUG], NULL},
                       {"kept", LAB_I64, kcol, NULL}};
    h5_table_write(w.file, "tasks", ts.n, 8, cols);
    h5_attr_str(w.file, "tasks_file", tasks);
    h5_attr_str(w.file, "kept_file", keep ? keep : "");
    h5_attr_i64(w.file, "n_tasks", (int64_t)ts.n);
    h5_attr_i64(w.file, "n_canonical_passed", (int64_t)n_canon);
    h5_attr_i64(w.file, "n_pass_body_passed", (int64_t)n_stub);
    h5_attr_i64(w.file, "n_planted_bug_passed", (int64_t)n_bug);
    h5_attr_i64(w.file, "n_kept", (int64_t)n_kept);
    h5_attr_str(w.file, "network", any_netns_missing(res, np) ? "none" : "netns");
    sandbox_limits_attrs(&lim, w.file);
    h5_attr_i64(w.file, "workers", workers);
    // the gate: a curated task set must pass every check before anything is scored with it
    if (!keep && bad < ts.n) {
        const char *what = res[bad * N_CHECKS + CHECK_CANONICAL].status != SANDBOX_PASSED ? "canonical solution"
                           : res[bad * N_CHECKS + CHECK_STUB].status == SANDBOX_PASSED     ? "pass body"
                                                                                           : "planted bug";
        int k = what[0] == 'c' ? CHECK_CANONICAL : what[1] == 'a' ? CHECK_STUB : CHECK_BUG;
        lab_die("%s: task %s: expected its %s to %s, found %s (%s); %s", tasks, ts.t[bad].task_id, what,
                k == CHECK_CANONICAL ? "pass" : "fail", st[k][bad], why[k][bad], summary);
    }
    h5_finish(&w);
    if (keep) printf("%s: %s; %zu tasks kept in %s\n", tasks, summary, n_kept, keep);
    else printf("%s: %s; every check as expected\n", tasks, summary);

    for (size_t i = 0; i < np; i++) {
        free(programs[i]);
        sandbox_result_free(&res[i]);
    }
    for (int k = 0; k < N_CHECKS; k++) { free(st[k]); free(why[k]); }
    free(programs); free(res); free(tid); free(kept); free(kcol);
    taskset_free(&ts);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// edit: edit distance to the reference

static int cmd_edit(int argc, char **argv) {
    const char *tasks = NULL, *gens = NULL, *out = NULL, *tokenizer = NULL;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--tasks")) tasks = v;
        else if (!strcmp(f, "--generations")) gens = v;
        else if (!strcmp(f, "--tokenizer")) tokenizer = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!tasks || !gens || !out || !tokenizer) lab_die("edit: expected --tasks, --generations, --tokenizer and --out (see --help)");
    TaskSet ts;
    taskset_load(&ts, tasks, TASK_NEED_PROMPT | TASK_NEED_CANONICAL);
    lab_add_input(tasks);
    Generations g;
    generations_load(&g, gens, &ts);
    lab_add_input(gens);
    Bpe *bpe = bpe_load(tokenizer);
    lab_add_input(tokenizer);

    uint64_t n = g.n ? g.n : 1;
    int64_t *lev_c = lab_malloc(n * sizeof(int64_t)), *lev_t = lab_malloc(n * sizeof(int64_t));
    int64_t *len_ref = lab_malloc(n * sizeof(int64_t)), *len_gen = lab_malloc(n * sizeof(int64_t));
    int64_t *exact = lab_malloc(n * sizeof(int64_t)), *exact_n = lab_malloc(n * sizeof(int64_t));
    double *es_c = lab_malloc(n * sizeof(double)), *es_t = lab_malloc(n * sizeof(double));
    int64_t *task_col = lab_malloc(n * sizeof(int64_t));
    double sum_es_c = 0, sum_es_t = 0;
    int64_t n_exact = 0, n_exact_n = 0;
    Progress prog;
    progress_start(&prog, "edit", g.n);
    for (uint64_t i = 0; i < g.n; i++) {
        const char *ref = ts.t[g.task[i]].canonical_solution, *gen = g.completion[i];
        size_t lr = strlen(ref), lg = strlen(gen);
        task_col[i] = (int64_t)g.task[i];
        lev_c[i] = (int64_t)metrics_levenshtein_chars(ref, lr, gen, lg);
        len_ref[i] = (int64_t)metrics_utf8_units((const uint8_t *)ref, lr, NULL);
        len_gen[i] = (int64_t)metrics_utf8_units((const uint8_t *)gen, lg, NULL);
        es_c[i] = metrics_edit_similarity_chars(ref, lr, gen, lg);
        BpeTokens tr = {0}, tg = {0};
        bpe_encode(bpe, NULL, (const uint8_t *)ref, lr, &tr);
        bpe_encode(bpe, NULL, (const uint8_t *)gen, lg, &tg);
        lev_t[i] = (int64_t)metrics_levenshtein_tokens((const int32_t *)tr.ids, tr.n, (const int32_t *)tg.ids, tg.n);
        es_t[i] = metrics_edit_similarity_tokens((const int32_t *)tr.ids, tr.n, (const int32_t *)tg.ids, tg.n);
        bpe_tokens_free(&tr);
        bpe_tokens_free(&tg);
        exact[i] = metrics_exact_match(ref, lr, gen, lg);
        exact_n[i] = metrics_exact_match_normalized(ref, lr, gen, lg);
        sum_es_c += es_c[i]; sum_es_t += es_t[i];
        n_exact += exact[i]; n_exact_n += exact_n[i];
        if ((i & 63) == 63) progress_update(&prog, i + 1, NULL);
    }
    double m = g.n ? (double)g.n : NAN;
    char summary[200];
    snprintf(summary, sizeof summary, "edit similarity %.4f (chars), %.4f (tokens); exact %.4f, normalized %.4f",
             sum_es_c / m, sum_es_t / m, n_exact / m, n_exact_n / m);
    progress_end(&prog, summary);

    H5Writer w = h5_create(out, "codelm-lab/edit/1");
    H5Column cols[] = {{"task", LAB_I64, task_col, NULL},           {"task_id", LAB_STR, g.task_id, NULL},
                       {"sample", LAB_I64, g.sample, NULL},         {"len_ref_chars", LAB_I64, len_ref, "chars"},
                       {"len_gen_chars", LAB_I64, len_gen, "chars"}, {"lev_chars", LAB_I64, lev_c, "chars"},
                       {"es_chars", LAB_F64, es_c, NULL},           {"lev_tokens", LAB_I64, lev_t, "tokens"},
                       {"es_tokens", LAB_F64, es_t, NULL},          {"exact_match", LAB_I64, exact, NULL},
                       {"exact_match_normalized", LAB_I64, exact_n, NULL}};
    h5_table_write(w.file, "samples", g.n, 11, cols);
    h5_attr_str(w.file, "tasks_file", tasks);
    h5_attr_str(w.file, "generations", gens);
    h5_attr_str(w.file, "tokenizer", tokenizer);
    h5_attr_i64(w.file, "n_samples", (int64_t)g.n);
    h5_attr_f64(w.file, "es_chars", sum_es_c / m);
    h5_attr_f64(w.file, "es_tokens", sum_es_t / m);
    h5_attr_f64(w.file, "exact_match", n_exact / m);
    h5_attr_f64(w.file, "exact_match_normalized", n_exact_n / m);
    h5_finish(&w);
    printf("%s: %llu completions: %s; wrote %s\n", tasks, (unsigned long long)g.n, summary, out);

    free(lev_c); free(lev_t); free(len_ref); free(len_gen); free(exact); free(exact_n); free(es_c); free(es_t);
    free(task_col);
    bpe_free(bpe);
    generations_free(&g);
    taskset_free(&ts);
    return 0;
}

int main(int argc, char **argv) {
    lab_init("lab-eval", argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return argc < 2;
    }
    if (!strcmp(argv[1], "ppl")) return cmd_ppl(argc, argv);
    if (!strcmp(argv[1], "func")) return cmd_func(argc, argv);
    if (!strcmp(argv[1], "check-tasks")) return cmd_check_tasks(argc, argv);
    if (!strcmp(argv[1], "edit")) return cmd_edit(argc, argv);
    lab_die("unknown command '%s': expected ppl, func, check-tasks or edit (see --help)", argv[1]);
}
