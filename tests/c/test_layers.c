// layers: every op of the CPU backend against a naive double-precision reference written here.
//  - forward: the float op against the double reference, max abs error <= FWD_TOL * (1 + max|ref|).
//  - backward: the float op's gradients against central finite differences of the double
//    reference (eps 1e-6 in double, so the differences are good to ~1e-9): the loss is
//    sum(w * out) for fixed random w, and the error is max|grad - fd| / max|fd| over the tensor
//    (normalised by the tensor's largest component, so tiny components cannot blow it up),
//    which must stay below GRAD_TOL. Float rounding alone gives ~1e-6 here.
//  - backward accumulates: every gradient buffer starts at 0.25, and 0.25 is taken off after.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "test_util.h"

#define FWD_TOL 1e-5
#define GRAD_TOL 1e-4
#define FD_EPS 1e-6
#define PREFILL 0.25f

static const Backend *be = &backend_cpu;

static Rng rng;

static float *randn(size_t n, float std) {
    float *x = lab_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(&rng);
    return x;
}

static double *to_double(const float *x, size_t n) {
    double *d = lab_malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *filled(size_t n, float v) {
    float *x = lab_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

static void unfill(float *g, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] -= PREFILL;
}

static void check_forward(const char *what, const float *got, const double *ref, size_t n) {
    double maxref, maxerr = test_max_abs_error(got, ref, n, &maxref);
    printf("  %-32s forward  max abs err %.2e (max |ref| %.2f)\n", what, maxerr, maxref);
    CHECK(maxerr <= FWD_TOL * (1 + maxref), "%s forward: max abs error %.3e > %.1e * (1 + %.3g)", what,
          maxerr, FWD_TOL, maxref);
}

// The double loss of the layer under test, reading its inputs from ctx.
typedef double (*LossFn)(void *ctx);

// Compares grad (n) with central differences of loss() in x (n doubles inside ctx).
static void check_grad(const char *what, LossFn loss, void *ctx, double *x, const float *grad, size_t n) {
    double maxfd, err = test_fd_grad_error(loss, ctx, x, grad, n, FD_EPS, &maxfd);
    printf("  %-32s backward rel err %.2e (max |grad| %.3g)\n", what, err, maxfd);
    CHECK(err <= GRAD_TOL && maxfd > 0, "%s backward: error %.3e > %.1e (max |fd| %.3g)", what, err,
          GRAD_TOL, maxfd);
}

static double dot(const double *w, const double *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += w[i] * y[i];
    return s;
}

// ---------------------------------------------------------------------------------------------
// embedding

typedef struct { int N, C; const int32_t *ids; double *emb, *w, *out; } EmbCtx;

static void emb_ref(EmbCtx *c) {
    for (int n = 0; n < c->N; n++)
        for (int j = 0; j < c->C; j++) c->out[n * c->C + j] = c->emb[c->ids[n] * c->C + j];
}
static double emb_loss(void *p) { EmbCtx *c = p; emb_ref(c); return dot(c->w, c->out, (size_t)c->N * c->C); }

static void test_embedding(void) {
    enum { N = 7, C = 5, V = 4 };
    int32_t ids[N] = {2, 0, 2, 3, 1, 2, 0};  // repeats: the gradient sums them
    float *emb = randn(V * C, 1), *w = randn(N * C, 1), *out = filled(N * C, 0), *demb = filled(V * C, PREFILL);
    EmbCtx c = {N, C, ids, to_double(emb, V * C), to_double(w, N * C), lab_malloc(N * C * sizeof(double))};
    be->embedding_forward(out, ids, emb, N, C);
    emb_ref(&c);
    check_forward("embedding", out, c.out, N * C);
    be->embedding_backward(demb, w, ids, N, C);
    unfill(demb, V * C);
    check_grad("embedding d(emb)", emb_loss, &c, c.emb, demb, V * C);
    free(emb); free(w); free(out); free(demb); free(c.emb); free(c.w); free(c.out);
}

// ---------------------------------------------------------------------------------------------
// rmsnorm

typedef struct { int N, C; double eps; double *x, *g, *w, *out, *rstd; } NormCtx;

static void norm_ref(NormCtx *c) {
    for (int n = 0; n < c->N; n++) {
        double ss = 0;
        for (int j = 0; j < c->C; j++) ss += c->x[n * c->C + j] * c->x[n * c->C + j];
        double r = 1 / sqrt(ss / c->C + c->eps);
        c->rstd[n] = r;
        for (int j = 0; j < c->C; j++) c->out[n * c->C + j] = c->x[n * c->C + j] * r * c->g[j];
    }
}
static double norm_loss(void *p) { NormCtx *c = p; norm_ref(c); return dot(c->w, c->out, (size_t)c->N * c->C); }

static void test_rmsnorm(void) {
    enum { N = 6, C = 40 };  // C > the column block, not a multiple of it
    float eps = 1e-5f;
    float *x = randn(N * C, 1.5f), *g = randn(C, 1), *w = randn(N * C, 1);
    float *out = filled(N * C, 0), *rstd = filled(N, 0), *dx = filled(N * C, PREFILL), *dg = filled(C, PREFILL);
    NormCtx c = {N, C, eps, to_double(x, N * C), to_double(g, C), to_double(w, N * C),
                 lab_malloc(N * C * sizeof(double)), lab_malloc(N * sizeof(double))};
    be->rmsnorm_forward(out, rstd, x, g, N, C, eps);
    norm_ref(&c);
    check_forward("rmsnorm out", out, c.out, N * C);
    check_forward("rmsnorm rstd", rstd, c.rstd, N);
    be->rmsnorm_backward(dx, dg, w, x, g, rstd, N, C);
    unfill(dx, N * C);
    unfill(dg, C);
    check_grad("rmsnorm d(inp)", norm_loss, &c, c.x, dx, N * C);
    check_grad("rmsnorm d(weight)", norm_loss, &c, c.g, dg, C);
    free(x); free(g); free(w); free(out); free(rstd); free(dx); free(dg);
    free(c.x); free(c.g); free(c.w); free(c.out); free(c.rstd);
}

// ---------------------------------------------------------------------------------------------
// matmul

typedef struct { int N, IC, OC; double alpha; double *x, *W, *w, *out; } MatCtx;

static void mat_ref(MatCtx *c) {
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = 0;
            for (int i = 0; i < c->IC; i++) s += c->x[n * c->IC + i] * c->W[o * c->IC + i];
            c->out[n * c->OC + o] = c->alpha * s;
        }
}
static double mat_loss(void *p) { MatCtx *c = p; mat_ref(c); return dot(c->w, c->out, (size_t)c->N * c->OC); }

static void test_matmul(void) {
    enum { N = 9, IC = 13, OC = 11 };
    float alpha = 0.7f, beta = 0.3f;
    float *x = randn(N * IC, 1), *W = randn(OC * IC, 1), *w = randn(N * OC, 1), *out0 = randn(N * OC, 1);
    float *out = lab_malloc(N * OC * sizeof(float)), *dx = filled(N * IC, PREFILL), *dW = filled(OC * IC, PREFILL);
    memcpy(out, out0, N * OC * sizeof(float));
    MatCtx c = {N, IC, OC, alpha, to_double(x, N * IC), to_double(W, OC * IC), to_double(w, N * OC),
                lab_malloc(N * OC * sizeof(double))};
    be->matmul_forward(out, x, W, N, IC, OC, alpha, beta);
    mat_ref(&c);
    for (int i = 0; i < N * OC; i++) c.out[i] += (double)beta * out0[i];
    check_forward("matmul (alpha, beta)", out, c.out, N * OC);
    be->matmul_backward(dx, dW, w, x, W, N, IC, OC, alpha);
    unfill(dx, N * IC);
    unfill(dW, OC * IC);
    check_grad("matmul d(inp)", mat_loss, &c, c.x, dx, N * IC);
    check_grad("matmul d(weight)", mat_loss, &c, c.W, dW, OC * IC);
    // a NULL gradient is skipped, the other still computed
    float *dx2 = filled(N * IC, PREFILL);
    be->matmul_backward(dx2, NULL, w, x, W, N, IC, OC, alpha);
    unfill(dx2, N * IC);
    CHECK(memcmp(dx, dx2, N * IC * sizeof(float)) == 0, "matmul: d(inp) alone differs from d(inp) with d(weight)");
    free(x); free(W); free(w); free(out0); free(out); free(dx); free(dW); free(dx2);
    free(c.x); free(c.W); free(c.w); free(c.out);
}

// ---------------------------------------------------------------------------------------------
// rope

typedef struct { int B, T, NH, HD; double theta; double *x, *w, *out; } RopeCtx;

static void rope_ref(RopeCtx *c) {
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int h = 0; h < c->NH; h++)
                for (int i = 0; i < c->HD / 2; i++) {
                    size_t o = (((size_t)b * c->T + t) * c->NH + h) * c->HD + 2 * i;
                    double a = t * pow(c->theta, -2.0 * i / c->HD);
                    double x0 = c->x[o], x1 = c->x[o + 1];
                    c->out[o] = x0 * cos(a) - x1 * sin(a);
                    c->out[o + 1] = x0 * sin(a) + x1 * cos(a);
                }
}
static double rope_loss(void *p) {
    RopeCtx *c = p;
    rope_ref(c);
    return dot(c->w, c->out, (size_t)c->B * c->T * c->NH * c->HD);
}

static void test_rope(void) {
    enum { B = 2, T = 7, NH = 3, HD = 8, TMAX = 10 };
    size_t n = B * T * NH * HD;
    double theta = 10000;
    float cs[TMAX * HD / 2], sn[TMAX * HD / 2];
    for (int t = 0; t < TMAX; t++)
        for (int i = 0; i < HD / 2; i++) {
            cs[t * HD / 2 + i] = (float)cos(t * pow(theta, -2.0 * i / HD));
            sn[t * HD / 2 + i] = (float)sin(t * pow(theta, -2.0 * i / HD));
        }
    float *x = randn(n, 1), *w = randn(n, 1), *out = filled(n, 0), *dx = filled(n, PREFILL);
    RopeCtx c = {B, T, NH, HD, theta, to_double(x, n), to_double(w, n), lab_malloc(n * sizeof(double))};
    be->rope_forward(out, x, cs, sn, B, T, NH, HD);
    rope_ref(&c);
    check_forward("rope", out, c.out, n);
    float *inplace = lab_malloc(n * sizeof(float));
    memcpy(inplace, x, n * sizeof(float));
    be->rope_forward(inplace, inplace, cs, sn, B, T, NH, HD);
    CHECK(memcmp(inplace, out, n * sizeof(float)) == 0, "rope: in place differs from out of place");
    be->rope_backward(dx, w, cs, sn, B, T, NH, HD);
    unfill(dx, n);
    check_grad("rope d(inp)", rope_loss, &c, c.x, dx, n);
    free(x); free(w); free(out); free(dx); free(inplace); free(c.x); free(c.w); free(c.out);
}

// ---------------------------------------------------------------------------------------------
// attention

typedef struct { int B, T, NH, NKV, HD; double *q, *k, *v, *w, *out, *att; } AttCtx;

static void att_ref(AttCtx *c) {
    int C = c->NH * c->HD, KVC = c->NKV * c->HD, T = c->T;
    double scale = 1 / sqrt(c->HD);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++) {
            int kh = h / (c->NH / c->NKV);
            for (int t = 0; t < T; t++) {
                double *p = c->att + (((size_t)b * c->NH + h) * T + t) * T;
                const double *q = c->q + ((size_t)b * T + t) * C + h * c->HD;
                double maxs = -1e300;
                for (int s = 0; s < T; s++) {
                    if (s > t) { p[s] = 0; continue; }
                    const double *k = c->k + ((size_t)b * T + s) * KVC + kh * c->HD;
                    double d = 0;
                    for (int i = 0; i < c->HD; i++) d += q[i] * k[i];
                    p[s] = d * scale;
                    maxs = fmax(maxs, p[s]);
                }
                double sum = 0;
                for (int s = 0; s <= t; s++) { p[s] = exp(p[s] - maxs); sum += p[s]; }
                for (int s = 0; s <= t; s++) p[s] /= sum;
                double *o = c->out + ((size_t)b * T + t) * C + h * c->HD;
                for (int i = 0; i < c->HD; i++) {
                    double acc = 0;
                    for (int s = 0; s <= t; s++) acc += p[s] * c->v[((size_t)b * T + s) * KVC + kh * c->HD + i];
                    o[i] = acc;
                }
            }
        }
}
static double att_loss(void *p) {
    AttCtx *c = p;
    att_ref(c);
    return dot(c->w, c->out, (size_t)c->B * c->T * c->NH * c->HD);
}

static void test_attention(int B, int T, int NH, int NKV, int HD) {
    size_t nq = (size_t)B * T * NH * HD, nkv = (size_t)B * T * NKV * HD, natt = (size_t)B * NH * T * T;
    float *q = randn(nq, 1), *k = randn(nkv, 1), *v = randn(nkv, 1), *w = randn(nq, 1);
    float *out = filled(nq, 0), *att = filled(natt, 1), *datt = filled(natt, 0);
    float *dq = filled(nq, PREFILL), *dk = filled(nkv, PREFILL), *dv = filled(nkv, PREFILL);
    AttCtx c = {B, T, NH, NKV, HD, to_double(q, nq), to_double(k, nkv), to_double(v, nkv), to_double(w, nq),
                lab_malloc(nq * sizeof(double)), lab_malloc(natt * sizeof(double))};
    char name[64];
    be->attention_forward(out, att, q, k, v, B, T, NH, NKV, HD);
    att_ref(&c);
    snprintf(name, sizeof name, "attention T=%d NH=%d NKV=%d out", T, NH, NKV);
    check_forward(name, out, c.out, nq);
    snprintf(name, sizeof name, "attention T=%d NH=%d NKV=%d probs", T, NH, NKV);
    check_forward(name, att, c.att, natt);
    be->attention_backward(dq, dk, dv, datt, w, att, q, k, v, B, T, NH, NKV, HD);
    unfill(dq, nq);
    unfill(dk, nkv);
    unfill(dv, nkv);
    snprintf(name, sizeof name, "attention T=%d NH=%d NKV=%d d(q)", T, NH, NKV);
    check_grad(name, att_loss, &c, c.q, dq, nq);
    snprintf(name, sizeof name, "attention T=%d NH=%d NKV=%d d(k)", T, NH, NKV);
    check_grad(name, att_loss, &c, c.k, dk, nkv);
    snprintf(name, sizeof name, "attention T=%d NH=%d NKV=%d d(v)", T, NH, NKV);
    check_grad(name, att_loss, &c, c.v, dv, nkv);
    free(q); free(k); free(v); free(w); free(out); free(att); free(datt); free(dq); free(dk); free(dv);
    free(c.q); free(c.k); free(c.v); free(c.w); free(c.out); free(c.att);
}

// ---------------------------------------------------------------------------------------------
// swiglu and residual

typedef struct { size_t n; double *g, *u, *w, *out; } GluCtx;

static void glu_ref(GluCtx *c) {
    for (size_t i = 0; i < c->n; i++) c->out[i] = c->g[i] / (1 + exp(-c->g[i])) * c->u[i];
}
static double glu_loss(void *p) { GluCtx *c = p; glu_ref(c); return dot(c->w, c->out, c->n); }

static void test_swiglu(void) {
    enum { n = 101 };
    float *g = randn(n, 3), *u = randn(n, 1), *w = randn(n, 1), *out = filled(n, 0);
    g[7] = 150;  // far outside exp's float range both ways: silu is x and 0 there
    g[8] = -150;
    float *dg = filled(n, PREFILL), *du = filled(n, PREFILL);
    GluCtx c = {n, to_double(g, n), to_double(u, n), to_double(w, n), lab_malloc(n * sizeof(double))};
    be->swiglu_forward(out, g, u, n);
    glu_ref(&c);
    check_forward("swiglu", out, c.out, n);
    be->swiglu_backward(dg, du, w, g, u, n);
    unfill(dg, n);
    unfill(du, n);
    check_grad("swiglu d(gate)", glu_loss, &c, c.g, dg, n);
    check_grad("swiglu d(up)", glu_loss, &c, c.u, du, n);
    free(g); free(u); free(w); free(out); free(dg); free(du); free(c.g); free(c.u); free(c.w); free(c.out);
}

typedef struct { size_t n; double *a, *b, *w, *out; } ResCtx;

static void res_ref(ResCtx *c) {
    for (size_t i = 0; i < c->n; i++) c->out[i] = c->a[i] + c->b[i];
}
static double res_loss(void *p) { ResCtx *c = p; res_ref(c); return dot(c->w, c->out, c->n); }

static void test_residual(void) {
    enum { n = 37 };
    float *a = randn(n, 1), *b = randn(n, 1), *w = randn(n, 1), *out = filled(n, 0);
    float *da = filled(n, PREFILL), *db = filled(n, PREFILL);
    ResCtx c = {n, to_double(a, n), to_double(b, n), to_double(w, n), lab_malloc(n * sizeof(double))};
    be->residual_forward(out, a, b, n);
    res_ref(&c);
    check_forward("residual", out, c.out, n);
    be->residual_backward(da, db, w, n);
    unfill(da, n);
    unfill(db, n);
    check_grad("residual d(a)", res_loss, &c, c.a, da, n);
    check_grad("residual d(b)", res_loss, &c, c.b, db, n);
    free(a); free(b); free(w); free(out); free(da); free(db); free(c.a); free(c.b); free(c.w); free(c.out);
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

typedef struct { int N, V; const int32_t *targets; double dloss; double *logits, *losses; } CeCtx;

static void ce_ref(CeCtx *c) {
    for (int n = 0; n < c->N; n++) {
        const double *row = c->logits + (size_t)n * c->V;
        if (c->targets[n] < 0) { c->losses[n] = 0; continue; }
        double m = row[0], s = 0;
        for (int v = 1; v < c->V; v++) m = fmax(m, row[v]);
        for (int v = 0; v < c->V; v++) s += exp(row[v] - m);
        c->losses[n] = m + log(s) - row[c->targets[n]];
    }
}
static double ce_loss(void *p) {
    CeCtx *c = p;
    ce_ref(c);
    double s = 0;
    for (int n = 0; n < c->N; n++) s += c->dloss * c->losses[n];
    return s;
}

static void test_crossentropy(void) {
    enum { N = 6, V = 11 };
    int32_t targets[N] = {3, -1, 0, 10, 3, -5};  // negatives are ignored
    float *logits = randn(N * V, 2), *losses = filled(N, 1), *dl = filled(N * V, PREFILL);
    for (int v = 0; v < V; v++) logits[2 * V + v] += 80;  // large logits: the max must come off first
    logits[4 * V + 3] = 120;  // the rest of row 4 underflows exp
    float dloss = 1.0f / 4;
    CeCtx c = {N, V, targets, dloss, to_double(logits, N * V), lab_malloc(N * sizeof(double))};
    be->crossentropy_forward(losses, logits, targets, N, V);
    ce_ref(&c);
    check_forward("crossentropy losses", losses, c.losses, N);
    be->crossentropy_backward(dl, logits, targets, dloss, N, V);
    unfill(dl, N * V);
    check_grad("crossentropy d(logits)", ce_loss, &c, c.logits, dl, N * V);
    for (int v = 0; v < V; v++)
        CHECK(dl[V + v] == 0 && dl[5 * V + v] == 0, "crossentropy: ignored rows get no gradient");
    free(logits); free(losses); free(dl); free(c.logits); free(c.losses);
}

// ---------------------------------------------------------------------------------------------
// dropout: no reference forward (the mask is the op's own), so its properties instead

static void test_dropout(void) {
    enum { n = 200000 };
    float p = 0.3f;
    float *x = randn(n, 1), *a = filled(n, 0), *b = filled(n, 0), *c = filled(n, 0), *d = filled(n, 0);
    be->dropout_forward(a, x, n, p, 42);
    be->dropout_forward(b, x, n, p, 42);
    be->dropout_forward(c, x, n, p, 43);
    CHECK(memcmp(a, b, n * sizeof(float)) == 0, "dropout: same seed, different mask");
    CHECK(memcmp(a, c, n * sizeof(float)) != 0, "dropout: different seeds, same mask");
    size_t kept = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != 0) kept++;
        if (a[i] != 0 && a[i] != x[i] * (1.0f / (1.0f - p))) bad++;
    }
    double frac = (double)kept / n;
    printf("  dropout p=%.1f                keeps %.4f (expected %.4f)\n", p, frac, 1 - p);
    CHECK(fabs(frac - (1 - p)) < 0.005, "dropout: kept fraction %.4f, expected %.4f +- 0.005", frac, 1 - p);
    CHECK(bad == 0, "dropout: %zu kept elements not scaled by 1/(1-p)", bad);
    // the backward is the same mask applied to the gradient, accumulated: twice from 0 is 2x exactly
    memset(d, 0, n * sizeof(float));
    be->dropout_backward(d, x, n, p, 42);
    be->dropout_backward(d, x, n, p, 42);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += d[i] != 2 * a[i];
    CHECK(differ == 0, "dropout: backward mask differs from the forward's at %zu elements", differ);
    be->dropout_forward(b, x, n, 0.0f, 42);
    CHECK(memcmp(b, x, n * sizeof(float)) == 0, "dropout p=0 is the identity");
    free(x); free(a); free(b); free(c); free(d);
}

int main(int argc, char **argv) {
    lab_init("test_layers", argc, argv);
    rng_seed(&rng, 1234);
    printf("tolerances: forward %.0e * (1 + max|ref|) abs; backward %.0e relative to max|grad|\n",
           FWD_TOL, GRAD_TOL);
    test_embedding();
    test_rmsnorm();
    test_matmul();
    test_rope();
    test_attention(2, 7, 4, 4, 8);
    test_attention(2, 7, 4, 2, 8);
    test_attention(2, 7, 6, 1, 8);
    test_attention(1, 150, 2, 1, 4);  // T over three row blocks of the CPU backend, the last partial
    test_swiglu();
    test_residual();
    test_crossentropy();
    test_dropout();
    return test_summary();
}
