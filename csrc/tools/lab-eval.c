// lab-eval: evaluations of a model. `ppl`: cross-entropy, perplexity and bits per byte on a
// tokens.h5 split, per package and in total (codelm-lab/ppl/1).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "tokens.h"

static void usage(void) {
    printf(
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
        "  --threads N        OpenMP and BLAS threads\n"
        "  --config-sha256 HEX  recorded in the output's provenance\n");
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
    const char *score = "second-half";
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

    Model m;
    model_load_for_inference(&m, model, adapter);
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

int main(int argc, char **argv) {
    lab_init("lab-eval", argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return argc < 2;
    }
    if (!strcmp(argv[1], "ppl")) return cmd_ppl(argc, argv);
    lab_die("unknown command '%s': expected ppl (see --help)", argv[1]);
}
