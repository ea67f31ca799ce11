// lora: PEFT semantics on a small model.
//  - a fresh adapter (B = 0) leaves the logits bit-identical to the base's (memcmp), in eval and
//    in training with dropout; detaching restores the base exactly;
//  - with random B, merged logits equal unmerged ones within 1e-5 max abs (the adapter moves the
//    logits by far more than that, which is printed);
//  - dropout acts only in training, reproducibly from m->dropout_seed;
//  - while an adapter trains, the base has no gradients allocated, and gradients that exist from
//    before are left untouched, as are the base weights; model_trainable returns the adapter slab;
//  - A is Kaiming-uniform with bound 1/sqrt(in), B zero, the slab laid out as lora.h says;
//  - target lists parse and format.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lora.h"
#include "model.h"
#include "test_util.h"

#define MERGE_TOL 1e-5

static const ModelConfig cfg = {.vocab_size = 256, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                .ffn_dim = 176, .max_seq_len = 32, .norm_eps = 1e-5f, .rope_theta = 10000};
enum { B = 2, T = 32, N = B * T, V = 256 };
static int32_t inp[N], tgt[N];

static float *logits_copy(Model *m) {
    float *l = lab_malloc((size_t)N * V * sizeof(float));
    memcpy(l, m->logits, (size_t)N * V * sizeof(float));
    return l;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void randomize_B(Model *m, Rng *rng, float std) {
    LoraState *s = m->lora;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!s->B[t]) continue;
        int in, out;
        lora_target_shape(&m->cfg, t, &in, &out);
        size_t n = (size_t)m->cfg.n_layers * out * s->cfg.rank;
        float *h = lab_malloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) h[j] = std * rng_normal(rng);
        m->be->upload(s->B[t], h, n * sizeof(float));
        free(h);
    }
}

static void new_model(Model *m) {
    model_init(m, &cfg, &backend_cpu);
    model_init_random(m, 11);
}

static void test_targets(void) {
    CHECK(lora_parse_targets("all") == 0x7f, "'all' is every target");
    CHECK(lora_parse_targets("q,v") == ((1u << LORA_Q) | (1u << LORA_V)), "q,v");
    CHECK(strcmp(lora_format_targets(lora_parse_targets("down,q,gate")), "q,gate,down") == 0,
          "format in target order: found %s", lora_format_targets(lora_parse_targets("down,q,gate")));
    CHECK(strcmp(lora_format_targets(lora_parse_targets("all")), "q,k,v,o,gate,up,down") == 0, "format all");
}

static void test_init_and_layout(void) {
    Model m;
    new_model(&m);
    LoraConfig lc = {.rank = 8, .alpha = 16, .dropout = 0, .targets = lora_parse_targets("q,k,down")};
    lora_attach(&m, &lc, 3);
    LoraState *s = m.lora;
    CHECK(s->scale == 2.0f, "scale = alpha/r: expected 2, found %g", s->scale);
    size_t off = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(lc.targets & (1u << t))) {
            CHECK(!s->A[t] && !s->B[t], "target %s off but has matrices", lora_target_names[t]);
            continue;
        }
        int in, out;
        lora_target_shape(&cfg, t, &in, &out);
        size_t na = (size_t)cfg.n_layers * lc.rank * in, nb = (size_t)cfg.n_layers * out * lc.rank;
        CHECK(s->A[t] == s->params_memory + off && s->B[t] == s->params_memory + off + na,
              "target %s: A then B at offset %zu expected", lora_target_names[t], off);
        CHECK(s->dA[t] - s->grads_memory == s->A[t] - s->params_memory, "dA mirrors A");
        double bound = 1 / sqrt(in), sq = 0;
        int outside = 0;
        for (size_t j = 0; j < na; j++) {
            outside += fabs(s->A[t][j]) > bound;
            sq += (double)s->A[t][j] * s->A[t][j];
        }
        double var = sq / na, want = bound * bound / 3;
        CHECK(outside == 0, "%s: %d entries of A outside +-1/sqrt(%d)", lora_target_names[t], outside, in);
        CHECK(fabs(var - want) < 0.15 * want, "%s: var(A) %.4g, uniform's %.4g", lora_target_names[t], var, want);
        int nonzero = 0;
        for (size_t j = 0; j < nb; j++) nonzero += s->B[t][j] != 0;
        CHECK(nonzero == 0, "%s: B starts at zero, found %d nonzero", lora_target_names[t], nonzero);
        off += na + nb;
    }
    CHECK(off == s->num_params, "slab holds %zu, expected %zu", s->num_params, off);
    float *p, *g;
    size_t n;
    model_trainable(&m, &p, &g, &n);
    CHECK(p == s->params_memory && g == s->grads_memory && n == s->num_params,
          "model_trainable returns the adapter slab while attached");
    lora_detach(&m);
    model_trainable(&m, &p, &g, &n);
    CHECK(p == m.params_memory && n == m.num_params, "model_trainable returns the base after detach");
    model_free(&m);
}

static void test_zero_B_and_merge(void) {
    Model m;
    new_model(&m);
    model_forward(&m, inp, tgt, B, T);
    float *base = logits_copy(&m);
    float *base_params = lab_malloc(m.num_params * sizeof(float));
    memcpy(base_params, m.params_memory, m.num_params * sizeof(float));

    LoraConfig lc = {.rank = 4, .alpha = 8, .dropout = 0.5f, .targets = lora_parse_targets("all")};
    lora_attach(&m, &lc, 5);
    m.training = 0;
    model_forward(&m, inp, tgt, B, T);
    CHECK(memcmp(m.logits, base, (size_t)N * V * sizeof(float)) == 0, "B = 0, eval: logits differ from the base");
    m.training = 1;
    m.dropout_seed = 9;
    model_forward(&m, inp, tgt, B, T);
    CHECK(memcmp(m.logits, base, (size_t)N * V * sizeof(float)) == 0, "B = 0, training: logits differ from the base");

    Rng rng;
    rng_seed(&rng, 21);
    randomize_B(&m, &rng, 0.5f);
    m.training = 0;
    model_forward(&m, inp, tgt, B, T);
    float *unmerged = logits_copy(&m);
    double moved = max_abs_diff(unmerged, base, (size_t)N * V);

    // dropout only in training, reproducible from the seed
    m.dropout_seed = 1;
    model_forward(&m, inp, tgt, B, T);
    CHECK(memcmp(m.logits, unmerged, (size_t)N * V * sizeof(float)) == 0, "eval: the dropout seed changed the logits");
    m.training = 1;
    model_forward(&m, inp, tgt, B, T);
    float *drop1 = logits_copy(&m);
    CHECK(max_abs_diff(drop1, unmerged, (size_t)N * V) > 1e-3, "training with dropout 0.5 left the logits alone");
    model_forward(&m, inp, tgt, B, T);
    CHECK(memcmp(m.logits, drop1, (size_t)N * V * sizeof(float)) == 0, "training: same seed, different logits");
    m.dropout_seed = 2;
    model_forward(&m, inp, tgt, B, T);
    CHECK(memcmp(m.logits, drop1, (size_t)N * V * sizeof(float)) != 0, "training: new seed, same logits");

    lora_merge(&m);
    CHECK(m.lora == NULL, "merge detaches the adapter");
    m.training = 1;  // no adapter, no dropout
    model_forward(&m, inp, tgt, B, T);
    double err = max_abs_diff(m.logits, unmerged, (size_t)N * V);
    printf("merge: adapter moves logits by up to %.3g; merged vs unmerged max abs err %.2e (tol %.0e)\n",
           moved, err, MERGE_TOL);
    CHECK(moved > 0.1, "random B should move the logits visibly, moved %.3g", moved);
    CHECK(err <= MERGE_TOL, "merged vs unmerged logits: max abs error %.3e > %.0e", err, MERGE_TOL);
    CHECK(memcmp(m.params.tok_emb, base_params, m.param_sizes[0] * sizeof(float)) == 0,
          "merge touches only the adapted weights");
    CHECK(memcmp(m.params_memory, base_params, m.num_params * sizeof(float)) != 0, "merge changed no weight");

    // detach without merging restores the base exactly
    memcpy(m.params_memory, base_params, m.num_params * sizeof(float));
    lora_attach(&m, &lc, 5);
    randomize_B(&m, &rng, 0.5f);
    lora_detach(&m);
    model_forward(&m, inp, tgt, B, T);
    CHECK(memcmp(m.logits, base, (size_t)N * V * sizeof(float)) == 0, "detach: logits differ from the base");
    free(base); free(base_params); free(unmerged); free(drop1);
    model_free(&m);
}

static void test_frozen_base(void) {
    Model m;
    new_model(&m);
    LoraConfig lc = {.rank = 4, .alpha = 4, .dropout = 0.1f, .targets = lora_parse_targets("q,v,gate")};
    // an adapter on a fresh model: no base gradients are ever allocated
    lora_attach(&m, &lc, 1);
    m.training = 1;
    model_forward(&m, inp, tgt, B, T);
    model_zero_grad(&m);
    model_backward(&m);
    CHECK(m.grads_memory == NULL, "training an adapter allocated base gradients");
    double sq = 0;
    for (size_t i = 0; i < m.lora->num_params; i++) sq += (double)m.lora->grads_memory[i] * m.lora->grads_memory[i];
    CHECK(sq > 0, "adapter gradients are all zero");
    lora_detach(&m);

    // base gradients from before the adapter: left exactly as they were, as are the weights
    model_forward(&m, inp, tgt, B, T);
    model_zero_grad(&m);
    model_backward(&m);
    float *g0 = lab_malloc(m.num_params * sizeof(float)), *p0 = lab_malloc(m.num_params * sizeof(float));
    memcpy(g0, m.grads_memory, m.num_params * sizeof(float));
    memcpy(p0, m.params_memory, m.num_params * sizeof(float));
    lora_attach(&m, &lc, 1);
    Rng rng;
    rng_seed(&rng, 4);
    randomize_B(&m, &rng, 0.1f);
    for (int step = 0; step < 2; step++) {
        m.dropout_seed = (uint64_t)step;
        model_forward(&m, inp, tgt, B, T);
        model_zero_grad(&m);
        model_backward(&m);
    }
    CHECK(memcmp(g0, m.grads_memory, m.num_params * sizeof(float)) == 0, "adapter training changed base gradients");
    CHECK(memcmp(p0, m.params_memory, m.num_params * sizeof(float)) == 0, "adapter training changed base weights");
    free(g0); free(p0);
    model_free(&m);
}

int main(int argc, char **argv) {
    lab_init("test_lora", argc, argv);
    Rng rng;
    rng_seed(&rng, 17);
    for (int n = 0; n < N; n++) {
        inp[n] = (int32_t)rng_below(&rng, V);
        tgt[n] = (int32_t)rng_below(&rng, V);
    }
    test_targets();
    test_init_and_layout();
    test_zero_B_and_merge();
    test_frozen_base();
    return test_summary();
}
