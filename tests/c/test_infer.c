// infer: the cached forward against model_forward over the full sequence, the three KV modes (and
// fp16 keys and values) against each other, the paged pool's blocks, promises and accounting, fp16
// conversion, greedy decoding against step-by-step argmax, seeded sampling, the sampler's
// frequencies against the softmax, stop rules. The model is random and tiny (V 257 so a merge-free
// byte tokenizer decodes it, C 32, L 2, NH 4, NKV 2, T_max 48).
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

// ---------------------------------------------------------------------------------------------
// the KV modes

#define MODE_TOL 1e-5f  // fp32 modes against each other (and fp16 modes storing the same values)
// fp16 keys and values against fp32 ones, relative to the largest |logit|. Rounding to fp16 moves
// each stored value by at most 2^-11 of itself (4.9e-4); a logit, a smooth function of them through
// 2 layers, moves by about that relative amount times a gain of order one per layer. 8 * 2^-11
// (0.4%) leaves room for gains of a few per layer while a wrong conversion (a lost bit of exponent
// or of sign) moves logits by their own size.
#define F16_REL_TOL (8.0f / 2048.0f)

typedef struct {
    const char *name;
    InferOptions opt;
} ModeCase;

static const ModeCase mode_cases[] = {
    {"contiguous f32", {KV_CONTIGUOUS, KV_F32, 0, 0, QT_F32}},  // the reference of the others
    {"none f32", {KV_NONE, KV_F32, 0, 0, QT_F32}},
    {"paged/16 f32", {KV_PAGED, KV_F32, 16, 0, QT_F32}},
    {"paged/5 f32", {KV_PAGED, KV_F32, 5, 0, QT_F32}},
    {"contiguous f16", {KV_CONTIGUOUS, KV_F16, 0, 0, QT_F32}},  // the reference of the fp16 ones
    {"paged/16 f16", {KV_PAGED, KV_F16, 16, 0, QT_F32}},
    {"paged/5 f16", {KV_PAGED, KV_F16, 5, 0, QT_F32}},
    {"none f16", {KV_NONE, KV_F16, 0, 0, QT_F32}},
};
#define N_MODES (int)(sizeof mode_cases / sizeof *mode_cases)

// Feeds B rows of lengths lens[] in interleaved calls, the same seeded plan for every mode: each
// call takes up to 15 more tokens of every unfinished row in the first call and up to 3 later
// (0 too), one token of each row in turn. Keeps the logits of every (row, position) in out
// (B, T_max, V).
static void feed_interleaved(Model *m, const InferOptions *opt, int B, const int *lens, int32_t seq[][48], float *out) {
    int V = tiny.vocab_size, T_max = tiny.max_seq_len, fed[3] = {0}, chunk[3];
    int rows[64], first = 1;
    int32_t toks[64];
    InferState s;
    infer_init_ex(&s, m, B, T_max, opt);
    Rng plan;
    rng_seed(&plan, 77);
    for (;;) {
        int left = 0;
        for (int b = 0; b < B; b++) {
            int c = (int)rng_below(&plan, first ? 16 : 4);
            chunk[b] = c < lens[b] - fed[b] ? c : lens[b] - fed[b];
            left += lens[b] - fed[b];
        }
        first = 0;
        if (left == 0) break;
        int n = 0, at[3] = {fed[0], fed[1], fed[2]};
        for (int more = 1; more;) {
            more = 0;
            for (int b = 0; b < B; b++)
                if (at[b] < fed[b] + chunk[b]) {
                    rows[n] = b;
                    toks[n++] = seq[b][at[b]++];
                    more = 1;
                }
        }
        if (n == 0) continue;
        const float *lg = infer_forward(&s, n, rows, toks);
        for (int i = 0; i < n; i++)
            memcpy(out + ((size_t)rows[i] * T_max + fed[rows[i]]++) * V, lg + (size_t)i * V, V * sizeof(float));
    }
    infer_free(&s);
}

static float max_diff(const float *a, const float *b, size_t n) {
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(a[i] - b[i]));
    return worst;
}

// Every mode against model_forward on each row's whole sequence and against the contiguous one,
// for batch sizes 1 (one row of 32) and 3 (rows of 20, 9, 16): lengths that block sizes 16 and 5
// divide and do not divide.
static void test_kv_modes(Model *m) {
    int V = tiny.vocab_size, T_max = tiny.max_seq_len;
    const int batches[2] = {1, 3}, lens_of[2][3] = {{32, 0, 0}, {20, 9, 16}};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        const int *lens = lens_of[bi];
        int32_t seq[3][48];
        size_t per_mode = (size_t)B * T_max * V;
        float *logits = calloc(per_mode * N_MODES, sizeof(float)), *full = calloc(per_mode, sizeof(float));
        for (int b = 0; b < B; b++) {
            make_prompt(seq[b], lens[b], 300 + b);
            model_forward(m, seq[b], NULL, 1, lens[b]);
            memcpy(full + (size_t)b * T_max * V, m->logits, (size_t)lens[b] * V * sizeof(float));
        }
        float largest = 0.0f;
        for (size_t i = 0; i < per_mode; i++) largest = fmaxf(largest, fabsf(full[i]));
        for (int k = 0; k < N_MODES; k++) feed_interleaved(m, &mode_cases[k].opt, B, lens, seq, logits + k * per_mode);
        for (int k = 0; k < N_MODES; k++) {
            const ModeCase *mc = &mode_cases[k];
            float *mine = logits + k * per_mode;
            float vs_full = max_diff(mine, full, per_mode), vs_f32 = max_diff(mine, logits, per_mode);
            printf("B %d %-15s vs model_forward %.3g, vs contiguous f32 %.3g", B, mc->name, vs_full, vs_f32);
            if (mc->opt.dtype == KV_F32) {
                printf("\n");
                CHECK(vs_full < LOGIT_TOL, "B %d %s: logits differ from model_forward by %g", B, mc->name, vs_full);
                CHECK(vs_f32 <= MODE_TOL, "B %d %s: logits differ from contiguous f32 by %g", B, mc->name, vs_f32);
            } else {
                float vs_f16 = max_diff(mine, logits + 4 * per_mode, per_mode);
                printf(", vs contiguous f16 %.3g (tolerance %.3g)\n", vs_f16, F16_REL_TOL * largest);
                CHECK(vs_f32 < F16_REL_TOL * largest, "B %d %s: logits differ from f32 by %g", B, mc->name, vs_f32);
                CHECK(vs_f32 > 0.0f, "B %d %s: fp16 logits equal fp32 ones: the values were not rounded", B, mc->name);
                // the recompute runs its matmuls over more rows, so its fp16 values may round the other way
                if (mc->opt.mode != KV_NONE)
                    CHECK(vs_f16 <= MODE_TOL, "B %d %s: logits differ from contiguous f16 by %g", B, mc->name, vs_f16);
            }
        }
        free(logits);
        free(full);
    }
}

static void feed_row(InferState *s, int row, const int32_t *toks, int n, float *out) {
    int rows[64];
    for (int i = 0; i < n; i++) rows[i] = row;
    const float *lg = infer_forward(s, n, rows, toks);
    if (out) memcpy(out, lg, (size_t)n * tiny.vocab_size * sizeof(float));
}

static InferState *child_state;
static void child_feed_row1(const char *arg) {
    int32_t t = 1;
    feed_row(child_state, 1, &t, 1, NULL);
}

// A pool of 6 blocks of 5 positions over 4 rows: blocks taken as rows grow, promises honoured,
// blocks reused after a reset without their old contents showing through.
static void test_paged_pool(Model *m) {
    int V = tiny.vocab_size, T_max = tiny.max_seq_len;
    InferOptions po = {KV_PAGED, KV_F32, 5, 6, QT_F32};
    InferState s;
    infer_init_ex(&s, m, 4, T_max, &po);
    size_t tb = infer_kv_token_bytes(&s);
    int32_t a[12], b[11], c[12];
    make_prompt(a, 12, 500);
    make_prompt(b, 11, 501);
    make_prompt(c, 12, 502);
    feed_row(&s, 0, a, 12, NULL);
    feed_row(&s, 1, b, 10, NULL);
    CHECK(s.n_held[0] == 3 && s.n_held[1] == 2 && s.n_free == 1, "held %d, %d blocks, %d free; expected 3, 2, 1",
          s.n_held[0], s.n_held[1], s.n_free);
    CHECK(infer_kv_capacity_bytes(&s) == 30 * tb && infer_kv_allocated_bytes(&s) == 25 * tb &&
              infer_kv_used_bytes(&s) == 22 * tb,
          "pool accounting %zu/%zu/%zu, expected %zu/%zu/%zu", infer_kv_capacity_bytes(&s), infer_kv_allocated_bytes(&s),
          infer_kv_used_bytes(&s), 30 * tb, 25 * tb, 22 * tb);
    CHECK(infer_admit(&s, 2, 10) == -1 && s.promised[2] == 0, "a promise of 2 blocks with 1 free was made");
    CHECK(infer_admit(&s, 2, 5) == 0 && s.promised[2] == 1, "a promise of the last free block was refused");
    CHECK(infer_admit(&s, 3, 1) == -1, "the last free block, promised to row 2, was promised to row 3 too");
    // the last free block is row 2's now: row 1 growing into a new block must die
    child_state = &s;
    char err[512];
    int code = test_run_child(child_feed_row1, "", err, sizeof err);
    CHECK(code == 1 && strstr(err, "exhausted") && strstr(err, "row 1"), "growing into a promised block: exit %d, '%s'",
          code, err);
    int old[3];
    memcpy(old, s.block_table, sizeof old);
    infer_reset_row(&s, 2);
    infer_reset_row(&s, 0);
    CHECK(s.n_free == 4 && infer_kv_allocated_bytes(&s) == 10 * tb, "after resets: %d free, %zu allocated", s.n_free,
          infer_kv_allocated_bytes(&s));
    CHECK(infer_admit(&s, 2, 12) == 0, "a promise of 3 of 4 free blocks was refused");
    float *got = malloc((size_t)12 * V * sizeof(float)), *want = malloc((size_t)12 * V * sizeof(float));
    feed_row(&s, 2, c, 12, got);
    CHECK(memcmp(s.block_table + 2 * s.max_blocks, old, sizeof old) == 0,
          "row 2 took blocks %d %d %d, expected row 0's old %d %d %d", s.block_table[2 * s.max_blocks],
          s.block_table[2 * s.max_blocks + 1], s.block_table[2 * s.max_blocks + 2], old[0], old[1], old[2]);
    feed_row(&s, 1, b + 10, 1, NULL);  // one unpromised block is left: row 1 may take it
    CHECK(s.n_free == 0 && s.n_held[1] == 3, "row 1 holds %d blocks, %d free", s.n_held[1], s.n_free);
    InferState fresh;
    infer_init(&fresh, m, 1, T_max);
    feed_row(&fresh, 0, c, 12, want);
    float d = max_diff(got, want, (size_t)12 * V);
    CHECK(d <= MODE_TOL, "a row in reused blocks differs from a fresh cache by %g", d);
    infer_free(&fresh);
    infer_free(&s);
    free(got);
    free(want);
}

// Accounting for rows of 7, 0 and 12 positions (L 2, NKV*HD 16: 256 bytes a position in fp32).
static void test_kv_accounting(Model *m) {
    struct {
        InferOptions opt;
        size_t token, capacity, allocated, used, allocated_after;
    } cases[] = {
        {{KV_CONTIGUOUS, KV_F32, 0, 0, QT_F32}, 256, 3 * 48 * 256, 2 * 48 * 256, 19 * 256, 48 * 256},
        {{KV_PAGED, KV_F32, 5, 0, QT_F32}, 256, 30 * 5 * 256, 5 * 5 * 256, 19 * 256, 2 * 5 * 256},
        {{KV_PAGED, KV_F16, 16, 0, QT_F32}, 128, 9 * 16 * 128, 2 * 16 * 128, 19 * 128, 16 * 128},
        {{KV_NONE, KV_F32, 0, 0, QT_F32}, 256, 2 * 12 * 256, 0, 0, 0},  // scratch: 2 rows of 12 in one call
    };
    int32_t p[12];
    make_prompt(p, 12, 600);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        InferState s;
        infer_init_ex(&s, m, 3, tiny.max_seq_len, &cases[k].opt);
        int rows[19];
        int32_t toks[19];
        for (int i = 0; i < 19; i++) {
            rows[i] = i < 7 ? 0 : 2;
            toks[i] = p[i < 7 ? i : i - 7];
        }
        infer_forward(&s, 19, rows, toks);
        size_t tb = infer_kv_token_bytes(&s), cap = infer_kv_capacity_bytes(&s), al = infer_kv_allocated_bytes(&s);
        size_t used = infer_kv_used_bytes(&s);
        infer_reset_row(&s, 2);
        size_t after = infer_kv_allocated_bytes(&s);
        CHECK(tb == cases[k].token && cap == cases[k].capacity && al == cases[k].allocated && used == cases[k].used &&
                  after == cases[k].allocated_after,
              "%s/%s: token %zu capacity %zu allocated %zu used %zu after reset %zu; expected %zu %zu %zu %zu %zu",
              kv_mode_name(cases[k].opt.mode), kv_dtype_name(cases[k].opt.dtype), tb, cap, al, used, after,
              cases[k].token, cases[k].capacity, cases[k].allocated, cases[k].used, cases[k].allocated_after);
        infer_free(&s);
    }
}

// fp16: every half survives a round trip through float; the bulk (F16C) conversions agree with the
// scalar ones bit for bit; round-to-nearest-even at ties, overflow and the subnormals by hand.
static void test_f16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = infer_f16_to_f32((uint16_t)h);
        uint16_t back = infer_f32_to_f16(f);
        bad += isnan(f) ? back != (h | 0x200u) : back != h;
    }
    CHECK(bad == 0, "%d halves do not survive a round trip through float", bad);
    enum { NR = 100000 };
    float *src = malloc(NR * sizeof(float)), *lo = malloc(65536 * sizeof(float));
    uint16_t *bulk = malloc(NR * sizeof(uint16_t)), *all = malloc(65536 * sizeof(uint16_t));
    Rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < NR; i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        if (i % 2) u = (u & 0x83ffffffu) | 0x38000000u;  // half of them near the half range, ties included
        if (i % 4 == 1) u &= 0xffffe000u | 0x1000u;
        memcpy(&src[i], &u, sizeof u);
    }
    infer_f16_store(bulk, src, NR);
    bad = 0;
    for (int i = 0; i < NR; i++) bad += bulk[i] != infer_f32_to_f16(src[i]);
    CHECK(bad == 0, "%d of %d bulk fp16 stores differ from the scalar conversion", bad, NR);
    for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
    infer_f16_load(lo, all, 65536);
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float want = infer_f16_to_f32((uint16_t)h);
        bad += memcmp(&lo[h], &want, sizeof want) != 0;
    }
    CHECK(bad == 0, "%d bulk fp16 loads differ from the scalar conversion", bad);
    struct { float f; uint16_t h; } hand[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {-0.0f, 0x8000},
        {1.0f + 1.0f / 2048, 0x3c00},        // a tie: to the even 1.0
        {1.0f + 3.0f / 2048, 0x3c02},        // a tie: to the even 1 + 2^-9
        {1.0f + 1.0f / 2048 + 1.0f / 65536, 0x3c01},  // past the tie: up
        {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {-INFINITY, 0xfc00},
        {5.9604644775390625e-8f, 0x0001},    // 2^-24, the smallest subnormal
        {2.98023223876953125e-8f, 0x0000},   // 2^-25: a tie, to the even 0
        {4.470348358154296875e-8f, 0x0001},  // 1.5 * 2^-25: up
        {6.103515625e-05f - 2.98023223876953125e-8f, 0x0400},  // 2^-14 - 2^-25: a tie, to the even 2^-14
        {1e-30f, 0x0000},
    };
    for (size_t i = 0; i < sizeof hand / sizeof *hand; i++) {
        uint16_t got = infer_f32_to_f16(hand[i].f);
        CHECK(got == hand[i].h, "f32_to_f16(%.9g) = 0x%04x, expected 0x%04x", hand[i].f, got, hand[i].h);
    }
    uint16_t qnan = infer_f32_to_f16(NAN);
    CHECK((qnan & 0x7e00) == 0x7e00, "NaN converted to 0x%04x, expected a quiet NaN", qnan);
    free(src);
    free(lo);
    free(bulk);
    free(all);
}

static GenConfig plain_config(int max_new, float temperature) {
    GenConfig gc = {.max_new_tokens = max_new, .sampler = {.temperature = temperature, .top_k = 0, .top_p = 1.0f},
                    .stops = NULL, .n_stops = 0, .stop_on_dedent = 0, .eot = -1};
    return gc;
}

// n requests over prompts of lengths 3, 9, 6, 14 (cycled), seeds base_seed + i
static void run_ex(Model *m, const Bpe *bpe, int batch, const GenConfig *gc, int n, uint64_t base_seed, Completion *out,
                   int T_max, const InferOptions *opt) {
    static int32_t prompts[4][20];
    static const int plen[4] = {3, 9, 6, 14};
    GenRequest req[16];
    for (int i = 0; i < 4; i++) make_prompt(prompts[i], plen[i], 7 + i);
    for (int i = 0; i < n; i++)
        req[i] = (GenRequest){.prompt = prompts[i % 4], .prompt_len = plen[i % 4], .at_line_start = 1,
                              .seed = base_seed + i};
    InferState s;
    infer_init_ex(&s, m, batch, T_max, opt);
    infer_generate(&s, bpe, gc, req, n, out);
    infer_free(&s);
}

static void run(Model *m, const Bpe *bpe, int batch, const GenConfig *gc, int n, uint64_t base_seed, Completion *out,
                int T_max) {
    run_ex(m, bpe, batch, gc, n, base_seed, out, T_max, NULL);
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

static void child_generate_small_pool(const char *arg);
static Model *child_model;
static const Bpe *child_bpe;

// Greedy completions are the same whichever fp32 mode holds the keys and values, and with a pool
// so small that requests wait for blocks; a request larger than the pool dies.
static void test_generate_modes(Model *m, const Bpe *bpe) {
    enum { N = 6, MAX_NEW = 12 };
    GenConfig greedy = plain_config(MAX_NEW, 0.0f);
    Completion ref[N], got[N];
    run(m, bpe, 3, &greedy, N, 1, ref, tiny.max_seq_len);
    // prompts of up to 14 tokens + 11 fed: 25 positions, 5 blocks of 5; a pool of 7 holds one request
    // at a time
    const ModeCase cases[] = {{"none", {KV_NONE, KV_F32, 0, 0, QT_F32}}, {"paged/5", {KV_PAGED, KV_F32, 5, 0, QT_F32}},
                              {"paged/5 pool 7", {KV_PAGED, KV_F32, 5, 7, QT_F32}}, {"paged/16", {KV_PAGED, KV_F32, 16, 0, QT_F32}}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        run_ex(m, bpe, 3, &greedy, N, 1, got, tiny.max_seq_len, &cases[k].opt);
        for (int i = 0; i < N; i++)
            CHECK(same_tokens(&ref[i], &got[i]), "%s: greedy request %d differs from the contiguous cache", cases[k].name, i);
        free_all(got, N);
    }
    free_all(ref, N);
    child_model = m;
    child_bpe = bpe;
    char err[512];
    int code = test_run_child(child_generate_small_pool, "", err, sizeof err);
    CHECK(code == 1 && strstr(err, "cannot hold request 0"), "a request larger than the pool: exit %d, '%s'", code, err);
}

static void child_generate_small_pool(const char *arg) {
    GenConfig greedy = plain_config(12, 0.0f);
    Completion out[1];
    InferOptions tiny_pool = {KV_PAGED, KV_F32, 5, 2, QT_F32};
    run_ex(child_model, child_bpe, 1, &greedy, 1, 1, out, tiny.max_seq_len, &tiny_pool);
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

// Quantized weights: the engine's logits equal model_forward on the weights quantized and
// dequantized (bf16, f16: fp32 math on the converted weights; Q8_0, Q4_0: also int8 activations,
// hence a looser bound), their distance to the fp32 model grows as the format shrinks, the weight
// bytes follow the formats, and releasing the fp32 source changes nothing the engine computes.
static void test_weight_formats(Model *m) {
    enum { T = 20 };
    const int V = tiny.vocab_size;
    int32_t seq[T];
    int rows[T];
    make_prompt(seq, T, 77);
    for (int t = 0; t < T; t++) rows[t] = 0;
    float *ref = malloc((size_t)T * V * sizeof(float)), *got = malloc((size_t)T * V * sizeof(float));
    InferState s;
    infer_init(&s, m, 1, T);
    memcpy(ref, infer_forward(&s, T, rows, seq), (size_t)T * V * sizeof(float));
    CHECK(infer_weight_bytes(&s) == m->num_params * sizeof(float), "fp32 weights: the model's own");
    infer_free(&s);
    float peak = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) peak = fabsf(ref[i]) > peak ? fabsf(ref[i]) : peak;
    const QType fmts[] = {QT_BF16, QT_F16, QT_Q8_0, QT_Q4_0};
    // vs the round-tripped model: fp32 math on the same weights (summation order only), or int8
    // activations on top: each activation moves by up to 1/254 of its group's largest, through two
    // layers and the head (measured: 2.1% and 1.6% of the peak logit)
    const float tol[] = {1e-4f, 1e-4f, 0.05f, 0.05f};
    float dist[4];
    for (int f = 0; f < 4; f++) {
        Model mq;
        model_init(&mq, &tiny, &backend_cpu);
        memcpy(mq.params_memory, m->params_memory, m->num_params * sizeof(float));
        infer_roundtrip_weights(&mq, fmts[f]);
        model_forward(&mq, seq, NULL, 1, T);
        const float *want = mq.logits;
        InferOptions o = {.mode = KV_CONTIGUOUS, .dtype = KV_F32, .weights = fmts[f]};
        infer_init_ex(&s, m, 1, T, &o);
        memcpy(got, infer_forward(&s, T, rows, seq), (size_t)T * V * sizeof(float));
        float d = max_diff(got, want, (size_t)T * V) / peak;
        dist[f] = max_diff(got, ref, (size_t)T * V) / peak;
        printf("%-5s weights: vs round-tripped model %.2e, vs fp32 %.2e (of the peak logit %.2f)\n", qtype_name(fmts[f]), d,
               dist[f], peak);
        CHECK(d <= tol[f], "%s weights: logits vs the round-tripped model: %.2e of the peak (tolerance %.0e)",
              qtype_name(fmts[f]), d, tol[f]);
        // every matrix's columns are a multiple of 32, so its bytes are exactly weights * bits / 8
        size_t norms = (size_t)tiny.dim * (2 * tiny.n_layers + 1), matrix = m->num_params - norms;
        size_t bytes = (size_t)((double)matrix * qtype_bits_per_weight(fmts[f]) / 8) + norms * sizeof(float);
        CHECK(infer_weight_bytes(&s) == bytes, "%s weights: %zu bytes, expected %zu", qtype_name(fmts[f]),
              infer_weight_bytes(&s), bytes);
        infer_free(&s);
        model_free(&mq);
    }
    CHECK(dist[2] < dist[3], "q8_0 is closer to fp32 than q4_0: %.2e vs %.2e of the peak", dist[2], dist[3]);
    // a prefill of 32 rows or more converts each matrix to fp32 and runs sgemm: then the logits are
    // the round-tripped model's up to summation order
    {
        enum { T2 = 40 };
        int32_t seq2[T2];
        int rows2[T2];
        make_prompt(seq2, T2, 78);
        for (int t = 0; t < T2; t++) rows2[t] = 0;
        Model mq;
        model_init(&mq, &tiny, &backend_cpu);
        memcpy(mq.params_memory, m->params_memory, m->num_params * sizeof(float));
        infer_roundtrip_weights(&mq, QT_Q4_0);
        model_forward(&mq, seq2, NULL, 1, T2);
        InferOptions o = {.mode = KV_CONTIGUOUS, .dtype = KV_F32, .weights = QT_Q4_0};
        infer_init_ex(&s, m, 1, T2, &o);
        float *big = malloc((size_t)T2 * V * sizeof(float));
        memcpy(big, infer_forward(&s, T2, rows2, seq2), (size_t)T2 * V * sizeof(float));
        float d = max_diff(big, mq.logits, (size_t)T2 * V) / peak;
        CHECK(d <= 1e-4f, "q4_0 prefill of %d rows vs the round-tripped model: %.2e of the peak", T2, d);
        free(big);
        infer_free(&s);
        model_free(&mq);
    }
    CHECK(dist[1] < dist[3] && dist[0] < dist[3], "16-bit formats are closer to fp32 than q4_0");
    // a copy whose fp32 source is released computes the same
    Model mc;
    model_init(&mc, &tiny, &backend_cpu);
    memcpy(mc.params_memory, m->params_memory, m->num_params * sizeof(float));
    InferOptions o = {.mode = KV_CONTIGUOUS, .dtype = KV_F32, .weights = QT_Q4_0};
    infer_init_ex(&s, &mc, 1, T, &o);
    memcpy(ref, infer_forward(&s, T, rows, seq), (size_t)T * V * sizeof(float));
    infer_release_source_weights(&s);
    infer_reset(&s);
    memcpy(got, infer_forward(&s, T, rows, seq), (size_t)T * V * sizeof(float));
    CHECK(max_diff(got, ref, (size_t)T * V) == 0, "q4_0 logits unchanged after releasing the fp32 source");
    infer_free(&s);
    model_free(&mc);
    free(ref);
    free(got);
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
    test_kv_modes(&m);
    test_paged_pool(&m);
    test_kv_accounting(&m);
    test_f16();
    test_weight_formats(&m);
    test_generate(&m, bpe);
    test_generate_modes(&m, bpe);
    test_sampler_frequencies();
    test_stop_rules();
    bpe_free(bpe);
    model_free(&m);
    return test_summary();
}
