// optim: schedule values at chosen steps (worked out by hand), one AdamW step worked out by hand,
// several AdamW steps with gradient scaling, clipping, weight decay on some ranges and bias
// correction against a double-precision reference written from the formulas, deterministic norms
// whatever the thread count, and gradient accumulation as lab-train does it (K micro-batches
// accumulated, then scaled by 1/K) equal to one batch of all the rows.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "optim.h"
#include "test_util.h"

static int close_rel(double a, double b, double rel) {
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-12;
}

static void test_schedule(void) {
    OptimConfig c = optim_defaults();
    c.lr = 1e-3f; c.lr_min = 1e-4f; c.warmup = 10; c.total_steps = 110;
    // step: expected lr. Warmup is linear to the peak at step 9; the cosine covers steps 10..110.
    // cos(pi/4) = 0.70710678: 1e-4 + 9e-4 * 0.5 * 1.70710678 = 8.6819805e-4
    // cos(3pi/4) = -0.70710678: 1e-4 + 9e-4 * 0.5 * 0.29289322 = 2.3180195e-4
    const struct { int64_t step; double lr; } want[] = {
        {0, 1e-4}, {4, 5e-4}, {9, 1e-3}, {10, 1e-3}, {35, 8.6819805e-4}, {60, 5.5e-4},
        {85, 2.3180195e-4}, {110, 1e-4}, {500, 1e-4}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        float got = optim_lr(&c, want[i].step);
        CHECK(close_rel(got, want[i].lr, 1e-6), "lr at step %lld: expected %.8g, found %.8g",
              (long long)want[i].step, want[i].lr, got);
    }
    c.warmup = 0;  // no warmup: the cosine starts at the peak
    CHECK(close_rel(optim_lr(&c, 0), 1e-3, 1e-6), "no warmup: lr at step 0 is the peak, found %g", optim_lr(&c, 0));
    CHECK(close_rel(optim_lr(&c, 55), 5.5e-4, 1e-6), "no warmup: midpoint, found %g", optim_lr(&c, 55));
}

static void test_one_step_by_hand(void) {
    // p = 1, g = 0.5, lr 0.1, wd 0.1. First step: m^ = g, v^ = g^2, so the Adam part is
    // lr * g / (|g| + eps) = 0.1 (to 2e-8). Decay first: 1 * (1 - 0.1 * 0.1) = 0.99. p = 0.89.
    // The second parameter is outside the decay range: 1 - 0.1 = 0.9.
    OptimConfig c = optim_defaults();
    c.weight_decay = 0.1f;
    AdamW o;
    adamw_init(&o, &c, 2);
    adamw_decay_range(&o, 0, 1);
    float p[2] = {1, 1}, g[2] = {0.5f, 0.5f};
    adamw_update(&o, p, g, 0.1f);
    CHECK(fabsf(p[0] - 0.89f) < 1e-6f, "decayed parameter: expected 0.89, found %.8f", p[0]);
    CHECK(fabsf(p[1] - 0.9f) < 1e-6f, "parameter without decay: expected 0.9, found %.8f", p[1]);
    CHECK(o.step == 1, "step counter: expected 1, found %lld", (long long)o.step);
    adamw_free(&o);
}

// Several steps against the formulas in double: grads scaled by 1/accum, the global norm, the
// clip factor max/(norm+1e-6), decoupled decay on [0, n_decay), moments, bias correction.
static void test_steps_vs_reference(void) {
    enum { N = 1000, N_DECAY = 600, STEPS = 6 };
    const int accum = 4;
    OptimConfig c = optim_defaults();
    c.lr = 2e-2f; c.lr_min = 2e-3f; c.warmup = 2; c.total_steps = STEPS;
    c.beta1 = 0.9f; c.beta2 = 0.95f; c.eps = 1e-8f; c.weight_decay = 0.1f; c.grad_clip = 1.0f;
    AdamW o;
    adamw_init(&o, &c, N);
    adamw_decay_range(&o, 0, N_DECAY);
    float *p = lab_malloc(N * sizeof(float)), *g = lab_malloc(N * sizeof(float));
    double *rp = lab_malloc(N * sizeof(double)), *rm = lab_calloc(N, sizeof(double)),
           *rv = lab_calloc(N, sizeof(double)), *rg = lab_malloc(N * sizeof(double));
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) rp[i] = p[i] = rng_normal(&rng);
    int clipped = 0, unclipped = 0;
    for (int s = 0; s < STEPS; s++) {
        // Summed micro-batch gradients; every other step large enough to be clipped.
        float mag = s % 2 ? 0.05f : 0.005f;
        for (int i = 0; i < N; i++) g[i] = mag * accum * rng_normal(&rng);
        double sq = 0;
        for (int i = 0; i < N; i++) { rg[i] = (double)g[i] / accum; sq += rg[i] * rg[i]; }
        double want_norm = sqrt(sq);
        double factor = want_norm > c.grad_clip ? c.grad_clip / (want_norm + 1e-6) : 1.0;
        if (factor < 1) clipped++; else unclipped++;
        double lr = optim_lr(&c, s);
        int t = s + 1;
        for (int i = 0; i < N; i++) {
            double gi = rg[i] * factor;
            if (i < N_DECAY) rp[i] -= lr * c.weight_decay * rp[i];
            rm[i] = c.beta1 * rm[i] + (1 - c.beta1) * gi;
            rv[i] = c.beta2 * rv[i] + (1 - c.beta2) * gi * gi;
            double mhat = rm[i] / (1 - pow(c.beta1, t)), vhat = rv[i] / (1 - pow(c.beta2, t));
            rp[i] -= lr * mhat / (sqrt(vhat) + c.eps);
        }
        double norm = optim_scale_and_clip(g, N, 1.0f / accum, c.grad_clip);
        CHECK(close_rel(norm, want_norm, 1e-6), "step %d: norm expected %.9g, found %.9g", s, want_norm, norm);
        adamw_update(&o, p, g, optim_lr(&c, s));
        double worst = 0;
        int at = 0;
        for (int i = 0; i < N; i++) {
            double err = fabs(p[i] - rp[i]) / fmax(1e-3, fabs(rp[i]));
            if (err > worst) { worst = err; at = i; }
        }
        CHECK(worst < 2e-5, "step %d: parameter %d expected %.9g, found %.9g (rel err %.3g)", s, at,
              rp[at], p[at], worst);
        CHECK(fabs(o.m[at] - rm[at]) <= 1e-5 * fabs(rm[at]) + 1e-9, "step %d: first moment differs", s);
        CHECK(fabs(o.v[at] - rv[at]) <= 1e-5 * fabs(rv[at]) + 1e-12, "step %d: second moment differs", s);
    }
    CHECK(clipped > 0 && unclipped > 0, "the test covers clipped (%d) and unclipped (%d) steps", clipped, unclipped);
    free(p); free(g); free(rp); free(rm); free(rv); free(rg);
    adamw_free(&o);
}

static void test_norm(void) {
    size_t n = 1000003;
    float *x = lab_malloc(n * sizeof(float));
    Rng rng;
    rng_seed(&rng, 3);
    double sq = 0;
    for (size_t i = 0; i < n; i++) { x[i] = rng_normal(&rng); sq += (double)x[i] * x[i]; }
    omp_set_num_threads(1);
    double one = optim_l2_norm(x, n);
    omp_set_num_threads(2);
    double two = optim_l2_norm(x, n);
    CHECK(one == two, "norm with 1 and 2 threads: same bits expected, found %.17g vs %.17g", one, two);
    CHECK(close_rel(one, sqrt(sq), 1e-12), "norm: expected %.15g, found %.15g", sqrt(sq), one);
    // A non-finite gradient shows as a non-finite norm, and clipping leaves the gradients alone.
    x[12345] = INFINITY;
    float before = x[0];
    double bad = optim_scale_and_clip(x, n, 1.0f, 1.0f);
    CHECK(!isfinite(bad), "an inf gradient gives a non-finite norm, found %g", bad);
    CHECK(x[0] == before, "no clipping on a non-finite norm");
    x[12345] = NAN;
    CHECK(isnan(optim_l2_norm(x, n)), "a NaN gradient gives a NaN norm");
    free(x);
}

static void test_accumulation(void) {
    ModelConfig c = {.vocab_size = 37, .dim = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 2,
                     .ffn_dim = 24, .max_seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    Model m;
    model_init(&m, &c, &backend_cpu);
    model_init_random(&m, 4);
    enum { B = 3, T = 8 };
    int32_t in[B * T], tgt[B * T];
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < B * T; i++) { in[i] = (int32_t)rng_below(&rng, 37); tgt[i] = (int32_t)rng_below(&rng, 37); }
    float *params, *grads;
    size_t n;
    model_trainable(&m, &params, &grads, &n);
    model_zero_grad(&m);
    model_forward(&m, in, tgt, B, T);
    model_backward(&m);
    float *whole = lab_malloc(n * sizeof(float));
    memcpy(whole, grads, n * sizeof(float));
    model_zero_grad(&m);
    for (int k = 0; k < B; k++) {
        model_forward(&m, in + k * T, tgt + k * T, 1, T);
        model_backward(&m);
    }
    optim_scale_and_clip(grads, n, 1.0f / B, 0);
    double worst = 0, scale = optim_l2_norm(whole, n) / sqrt((double)n);
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(grads[i] - whole[i]) / scale);
    CHECK(worst < 1e-4, "3 accumulated micro-batches / 3 vs one batch of 3: worst difference %.3g of the rms gradient", worst);
    free(whole);
    model_free(&m);
}

int main(int argc, char **argv) {
    lab_init("test_optim", argc, argv);
    test_schedule();
    test_one_step_by_hand();
    test_steps_vs_reference();
    test_norm();
    test_accumulation();
    return test_summary();
}
