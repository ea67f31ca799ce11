// optim: AdamW, warmup + cosine schedule, global grad-norm clipping (see optim.h).
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

OptimConfig optim_defaults(void) {
    return (OptimConfig){.lr = 3e-4f, .lr_min = 3e-5f, .warmup = 0, .total_steps = 1,
                         .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                         .weight_decay = 0.1f, .grad_clip = 1.0f};
}

float optim_lr(const OptimConfig *c, int64_t step) {
    if (step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    if (step >= c->total_steps || c->total_steps <= c->warmup) return c->lr_min;
    double progress = (double)(step - c->warmup) / (double)(c->total_steps - c->warmup);
    return (float)(c->lr_min + (c->lr - c->lr_min) * 0.5 * (1.0 + cos(M_PI * progress)));
}

void adamw_init(AdamW *o, const OptimConfig *cfg, size_t n) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->m = lab_calloc(n, sizeof(float));
    o->v = lab_calloc(n, sizeof(float));
}

void adamw_decay_range(AdamW *o, size_t offset, size_t count) {
    if (offset + count > o->n)
        lab_die("internal: decay range [%zu, %zu) outside the %zu trainable parameters", offset,
                offset + count, o->n);
    o->decay = lab_realloc(o->decay, (size_t)(o->n_decay + 1) * sizeof *o->decay);
    o->decay[o->n_decay++] = (OptimRange){offset, count};
}

void adamw_free(AdamW *o) {
    free(o->m);
    free(o->v);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

// Chunked so that the partial sums, and so the result, do not depend on the thread count.
#define NORM_CHUNK 16384

double optim_l2_norm(const float *x, size_t n) {
    size_t nchunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double *partial = lab_calloc(nchunks ? nchunks : 1, sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t end = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
        double s = 0;
        for (size_t i = c * NORM_CHUNK; i < end; i++) s += (double)x[i] * (double)x[i];
        partial[c] = s;
    }
    double total = 0;
    for (size_t c = 0; c < nchunks; c++) total += partial[c];
    free(partial);
    return sqrt(total);
}

static void scale_inplace(float *x, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

double optim_scale_and_clip(float *grads, size_t n, float scale, float max_norm) {
    if (scale != 1.0f) scale_inplace(grads, n, scale);
    double norm = optim_l2_norm(grads, n);
    if (max_norm > 0 && isfinite(norm) && norm > max_norm)
        scale_inplace(grads, n, (float)(max_norm / (norm + 1e-6)));
    return norm;
}

void adamw_update(AdamW *o, float *params, const float *grads, float lr) {
    const OptimConfig *c = &o->cfg;
    int64_t t = o->step + 1;
    float bc1 = (float)(1.0 - pow(c->beta1, (double)t));
    float bc2 = (float)(1.0 - pow(c->beta2, (double)t));
    if (c->weight_decay != 0) {
        float keep = 1.0f - lr * c->weight_decay;
        for (int r = 0; r < o->n_decay; r++) scale_inplace(params + o->decay[r].offset, o->decay[r].count, keep);
    }
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    float *m = o->m, *v = o->v;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        params[i] -= lr * mhat / (sqrtf(vhat) + eps);
    }
    o->step++;
}
