// infer: the cached forward against model_forward over the full sequence, greedy decoding against
// step-by-step argmax, seeded sampling, the sampler's frequencies against the softmax, stop rules.
// The model is random and tiny (V 257 so a merge-free byte tokenizer decodes it, C 32, L 2, NH 4,
// NKV 2, T_max 48).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "backend.h"
#include "infer.h"
#include "model.h"
#include "test_util.h"

#define LOGIT_TOL 1e-4f  // cached vs full-sequence logits, max abs difference

static const ModelConfig tiny = {.vocab_size = 257, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                 .ffn_dim = 64, .max_seq_len = 48, .norm_eps = 1e-5f, .rope_theta = 10000.0f};

static int argmax_row(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void make_prompt(int32_t *p, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) p[i] = (int32_t)rng_below(&r, tiny.vocab_size);
}

// Prefill three prompts of different lengths in one pass, then decode greedily one token per row per
// step; every position's logits must equal model_forward's on the row's whole sequence.
static void test_cache_matches_full_forward(Model *m) {
    enum { B = 3, STEPS = 10 };
    int lens[B] = {5, 12, 1}, V = tiny.vocab_size;
    int32_t seq[B][48];
    float *cached[B];
    for (int b = 0; b < B; b++) {
        make_prompt(seq[b], lens[b], 100 + b);
        cached[b] = calloc((size_t)(lens[b] + STEPS) * V, sizeof(float));
    }
    InferState s;
    infer_init(&s, m, B, tiny.max_seq_len);
    int rows[64];
    int32_t toks[64];
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++) {
            rows[n] = b;
            toks[n++] = seq[b][t];
        }
    const float *lg = infer_forward(&s, n, rows, toks);
    n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++) memcpy(cached[b] + (size_t)t * V, lg + (size_t)n++ * V, V * sizeof(float));
    for (int step = 0; step < STEPS; step++) {
        for (int b = 0; b < B; b++) {
            int t = lens[b] + step;  // the position the new token takes
            seq[b][t] = argmax_row(cached[b] + (size_t)(t - 1) * V, V);
            rows[b] = b;
            toks[b] = seq[b][t];
        }
        lg = infer_forward(&s, B, rows, toks);
        for (int b = 0; b < B; b++)
            memcpy(cached[b] + (size_t)(lens[b] + step) * V, lg + (size_t)b * V, V * sizeof(float));
    }
    float worst = 0.0f, largest = 0.0f;
    int greedy_ok = 1;
    for (int b = 0; b < B; b++) {
        int T = lens[b] + STEPS;
        model_forward(m, seq[b], NULL, 1, T);
        for (size_t i = 0; i < (size_t)T * V; i++) {
            float d = fabsf(m->logits[i] - cached[b][i]);
            worst = d > worst ? d : worst;
            largest = fabsf(m->logits[i]) > largest ? fabsf(m->logits[i]) : largest;
        }
        for (int t = lens[b]; t < T; t++)
            greedy_ok &= seq[b][t] == argmax_row(m->logits + (size_t)(t - 1) * V, V);
        free(cached[b]);
    }
    printf("cached vs full-forward logits: max abs diff %.3g (tolerance %g; largest |logit| %.3g)\n", worst,
           LOGIT_TOL, largest);
    CHECK(worst < LOGIT_TOL, "cached logits differ from model_forward by %g", worst);
    CHECK(greedy_ok, "greedy token differs from the argmax of the full forward's logits");
    infer_free(&s);
}

static GenConfig plain_config(int max_new, float temperature) {
    GenConfig gc = {.max_new_tokens = max_new, .sampler = {.temperature = temperature, .top_k = 0, .top_p = 1.0f},
                    .stops = NULL, .n_stops = 0, .stop_on_dedent = 0, .eot = -1};
    return gc;
}

// n requests over prompts of lengths 3, 9, 6, 14 (cycled), seeds base_seed + i
static void run(Model *m, const Bpe *bpe, int batch, const GenConfig *gc, int n, uint64_t base_seed, Completion *out,
                int T_max) {
    static int32_t prompts[4][20];
    static const int plen[4] = {3, 9, 6, 14};
    GenRequest req[16];
    for (int i = 0; i < 4; i++) make_prompt(prompts[i], plen[i], 7 + i);
    for (int i = 0; i < n; i++)
        req[i] = (GenRequest){.prompt = prompts[i % 4], .prompt_len = plen[i % 4], .at_line_start = 1,
                              .seed = base_seed + i};
    InferState s;
    infer_init(&s, m, batch, T_max);
    infer_generate(&s, bpe, gc, req, n, out);
    infer_free(&s);
}

static int same_tokens(const Completion *a, const Completion *b) {
    return a->n_tokens == b->n_tokens && memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t)) == 0 &&
           a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

static void free_all(Completion *c, int n) {
    for (int i = 0; i < n; i++) completion_free(&c[i]);
}

static void test_generate(Model *m, const Bpe *bpe) {
    enum { N = 4, MAX_NEW = 12 };
    Completion g1[N], g2[N], g3[N];
    // greedy: deterministic, batch-invariant, equal to argmax of the full forward step by step
    GenConfig greedy = plain_config(MAX_NEW, 0.0f);
    run(m, bpe, 4, &greedy, N, 1, g1, tiny.max_seq_len);
    run(m, bpe, 3, &greedy, N, 99, g2, tiny.max_seq_len);
    for (int i = 0; i < N; i++) {
        CHECK(same_tokens(&g1[i], &g2[i]), "greedy request %d differs between runs / batch sizes", i);
        CHECK(g1[i].n_tokens == MAX_NEW && g1[i].stop == STOP_MAX_TOKENS, "request %d: %d tokens, stop %s", i,
              g1[i].n_tokens, stop_reason_name(g1[i].stop));
        CHECK(g1[i].len == (size_t)g1[i].n_tokens, "byte tokenizer: %zu bytes for %d tokens", g1[i].len, g1[i].n_tokens);
    }
    {
        static const int plen[4] = {3, 9, 6, 14};
        int32_t seq[48];
        make_prompt(seq, plen[1], 8);
        int ok = 1;
        for (int t = 0; t < MAX_NEW; t++) {
            model_forward(m, seq, NULL, 1, plen[1] + t);
            seq[plen[1] + t] = argmax_row(m->logits + (size_t)(plen[1] + t - 1) * tiny.vocab_size, tiny.vocab_size);
            ok &= seq[plen[1] + t] == g1[1].tokens[t];
        }
        CHECK(ok, "greedy generation differs from step-by-step argmax of model_forward");
    }
    free_all(g2, N);
    // top_k 1 and a tiny top_p are greedy whatever the temperature
    GenConfig k1 = plain_config(MAX_NEW, 1.0f);
    k1.sampler.top_k = 1;
    run(m, bpe, 2, &k1, N, 5, g2, tiny.max_seq_len);
    GenConfig p0 = plain_config(MAX_NEW, 1.0f);
    p0.sampler.top_p = 1e-6f;
    run(m, bpe, 4, &p0, N, 6, g3, tiny.max_seq_len);
    for (int i = 0; i < N; i++) {
        CHECK(same_tokens(&g1[i], &g2[i]), "top_k=1 request %d differs from greedy", i);
        CHECK(same_tokens(&g1[i], &g3[i]), "top_p=1e-6 request %d differs from greedy", i);
    }
    free_all(g2, N);
    free_all(g3, N);
    // sampling: the same seed gives the same tokens (across batch sizes), another seed others
    GenConfig samp = plain_config(MAX_NEW, 1.0f);
    samp.sampler.top_k = 50;
    samp.sampler.top_p = 0.95f;
    run(m, bpe, 4, &samp, N, 1000, g2, tiny.max_seq_len);
    run(m, bpe, 1, &samp, N, 1000, g3, tiny.max_seq_len);
    int differ_from_greedy = 0;
    for (int i = 0; i < N; i++) {
        CHECK(same_tokens(&g2[i], &g3[i]), "seeded sample %d differs between runs", i);
        differ_from_greedy += !same_tokens(&g2[i], &g1[i]);
    }
    CHECK(differ_from_greedy == N, "only %d of %d samples differ from greedy", differ_from_greedy, N);
    free_all(g3, N);
    run(m, bpe, 4, &samp, N, 2000, g3, tiny.max_seq_len);
    for (int i = 0; i < N; i++) CHECK(!same_tokens(&g2[i], &g3[i]), "seeds 1000+%d and 2000+%d gave the same sample", i, i);
    free_all(g3, N);

    // a stop string: the text is cut before its first occurrence; the byte tokenizer makes that
    // position the token count less one
    Completion *ref = &g2[0];
    int at = 4;
    while (at < ref->n_tokens && ref->text[at] == '\0') at++;
    char stop[2] = {ref->text[at], '\0'};
    const char *stops[1] = {stop};
    GenConfig st = samp;
    st.stops = stops;
    st.n_stops = 1;
    run(m, bpe, 4, &st, N, 1000, g3, tiny.max_seq_len);
    size_t first = (size_t)((char *)memchr(ref->text, stop[0], ref->len) - ref->text);
    CHECK(g3[0].stop == STOP_STRING, "stop reason %s, expected stop", stop_reason_name(g3[0].stop));
    CHECK(g3[0].len == first && memcmp(g3[0].text, ref->text, first) == 0 && g3[0].n_tokens == (int)first + 1,
          "stop string: kept %zu bytes / %d tokens, expected %zu / %zu", g3[0].len, g3[0].n_tokens, first, first + 1);
    CHECK(strlen(g3[0].text) <= g3[0].len, "text not NUL-terminated at its length");
    // continuous batching: with 2 rows, request 2 takes request 0's row when that one stops while
    // request 1 is still decoding; every completion must be the one of a batch of 4
    Completion g4[N];
    run(m, bpe, 2, &st, N, 1000, g4, tiny.max_seq_len);
    for (int i = 0; i < N; i++)
        CHECK(same_tokens(&g3[i], &g4[i]) && g3[i].stop == g4[i].stop, "request %d differs with a refilled row", i);
    free_all(g4, N);
    free_all(g3, N);
    // eot: the text is what came before it; the eot token is counted
    GenConfig eo = samp;
    eo.eot = ref->tokens[5];
    run(m, bpe, 4, &eo, N, 1000, g3, tiny.max_seq_len);
    int k = 0;
    while (ref->tokens[k] != eo.eot) k++;
    CHECK(g3[0].stop == STOP_EOT && g3[0].n_tokens == k + 1 && g3[0].len == (size_t)k &&
              memcmp(g3[0].text, ref->text, k) == 0,
          "eot: stop %s, %d tokens, %zu bytes; expected eot, %d, %d", stop_reason_name(g3[0].stop), g3[0].n_tokens,
          g3[0].len, k + 1, k);
    free_all(g3, N);
    // the context: prompt 14 + generated may fill T_max = 20 (the last sampled token needs no slot)
    GenConfig longer = plain_config(40, 0.0f);
    run(m, bpe, 4, &longer, N, 1, g3, 20);
    CHECK(g3[3].stop == STOP_CONTEXT && g3[3].n_tokens == 6, "context: stop %s after %d tokens, expected context after 6",
          stop_reason_name(g3[3].stop), g3[3].n_tokens);
    CHECK(memcmp(g3[3].tokens, g1[3].tokens, 6 * sizeof(int32_t)) == 0, "context-limited run differs from greedy");
    free_all(g3, N);
    free_all(g1, N);
    free_all(g2, N);
}

// The sampler alone: frequencies over many draws against the renormalised softmax.
static void test_sampler_frequencies(void) {
    enum { V = 6, DRAWS = 200000 };
    const float logits[V] = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f};
    float prob[V];
    int idx[V];
    Rng rng;
    rng_seed(&rng, 42);
    struct { float temp; int top_k; float top_p; } cases[] = {{1.0f, 0, 1.0f}, {0.5f, 0, 1.0f}, {2.0f, 3, 1.0f},
                                                                {1.0f, 0, 0.7f}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        SamplerConfig sc = {cases[c].temp, cases[c].top_k, cases[c].top_p};
        double p[V], sum = 0;
        for (int i = 0; i < V; i++) sum += p[i] = exp(logits[i] / sc.temperature);
        for (int i = 0; i < V; i++) p[i] /= sum;
        // the kept set: most probable first (ids 2, 5, 0, 1, 4, 3), cut by top_k then top_p
        int order[V] = {2, 5, 0, 1, 4, 3}, keep = sc.top_k ? sc.top_k : V;
        double mass = 0;
        int kept = 0;
        while (kept < keep) {
            mass += p[order[kept++]];
            if (mass >= sc.top_p) break;
        }
        double expect[V] = {0}, total = 0;
        for (int i = 0; i < kept; i++) total += p[order[i]];
        for (int i = 0; i < kept; i++) expect[order[i]] = p[order[i]] / total;
        int count[V] = {0};
        for (int d = 0; d < DRAWS; d++) count[sample_token(logits, V, &sc, &rng, prob, idx)]++;
        double worst = 0;
        for (int i = 0; i < V; i++) {
            double diff = fabs((double)count[i] / DRAWS - expect[i]);
            worst = diff > worst ? diff : worst;
        }
        // 200k draws: a frequency's standard deviation is at most 0.0011; 0.005 is > 4 sigma
        CHECK(worst < 0.005, "sampler case %zu (T %g, k %d, p %g): frequency off by %g", c, sc.temperature, sc.top_k,
              sc.top_p, worst);
    }
    SamplerConfig greedy = {0.0f, 0, 1.0f};
    CHECK(sample_token(logits, V, &greedy, &rng, prob, idx) == 2, "greedy is not the argmax");
}

static void expect_stop(const char *text, int at_line_start, int dedent, StopReason want, size_t want_keep) {
    size_t keep = 12345;
    StopReason got = stop_check(text, strlen(text), at_line_start, humaneval_stops, 5, dedent, &keep);
    CHECK(got == want && (want == STOP_NONE || keep == want_keep), "stop_check(\"%s\"): %s keep %zu, expected %s keep %zu",
          text, stop_reason_name(got), keep, stop_reason_name(want), want_keep);
}

static void test_stop_rules(void) {
    expect_stop("    return x\ndef foo():", 1, 1, STOP_STRING, 12);
    expect_stop("    return x\n\nclass A:", 1, 0, STOP_STRING, 13);
    expect_stop("    a = 1\n    # note\n", 1, 0, STOP_NONE, 0);  // "\n    #" is not "\n#"
    expect_stop("    y = 2\nprint(y)\n#", 1, 0, STOP_STRING, 9);   // the earliest of two
    expect_stop("    x = 1\n    return x\nfoo()", 1, 1, STOP_DEDENT, 22);
    expect_stop("    x = 1\n    return x\nfoo()", 1, 0, STOP_NONE, 0);
    expect_stop("    if a:\n        b\n    c\n  d", 1, 1, STOP_DEDENT, 25);  // below the body, not the previous line
    expect_stop("    a\n\n  \n    b\n", 1, 1, STOP_NONE, 0);  // blank lines never dedent
    expect_stop("    a\n  ", 1, 1, STOP_NONE, 0);              // indentation not known until a non-blank byte
    expect_stop("x + 1\n        y\n    z", 0, 1, STOP_DEDENT, 15);  // the first partial line is the prompt's
    expect_stop("x + 1\n    y\n    z", 0, 1, STOP_NONE, 0);
    expect_stop("", 1, 1, STOP_NONE, 0);
}

int main(int argc, char **argv) {
    lab_init("test_infer", argc, argv);
    Model m;
    model_init(&m, &tiny, &backend_cpu);
    model_init_random(&m, 1234);
    // GPT-2 init gives logits of ~0.01; weights 3x larger give logits of a few units, so the 1e-4
    // tolerance is tight relative to them and a wrong rotation or mask shows
    for (size_t i = 0; i < m.num_params; i++) m.params_memory[i] *= 3.0f;
    char err[200];
    Bpe *bpe = bpe_from_merges(NULL, 0, err, sizeof err);
    if (!bpe) lab_die("bpe_from_merges: %s", err);
    test_cache_matches_full_forward(&m);
    test_generate(&m, bpe);
    test_sampler_frequencies();
    test_stop_rules();
    bpe_free(bpe);
    model_free(&m);
    return test_summary();
}
