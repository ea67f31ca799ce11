// model gradients: the whole model's backward against central finite differences of a naive
// double-precision reference forward written here (tiny config: V=64, C=16, L=2, NH=4, NKV=2 GQA,
// F=40, T=8, B=2, some targets ignored). Every parameter of every tensor is checked, and every
// parameter of a LoRA adapter on all seven targets (rank 2, dropout 0.25 in training mode, the
// mask rebuilt from the backend's dropout op and lora_mask_seed).
// Tolerances: loss and logits float vs double within 2e-5 (relative to 1 + |value|); gradients:
// max|grad - fd| / max|fd| per tensor <= 1e-3 (FD in double with eps 1e-6; float rounding through
// the model gives ~1e-6 here).
// Determinism: two fresh models, same seed and thread count, give bitwise-identical logits, loss
// and gradients (base and LoRA with dropout), at a size where every op runs multi-threaded.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lora.h"
#include "model.h"
#include "test_util.h"

#define VALUE_TOL 2e-5
#define GRAD_TOL 1e-3
#define FD_EPS 1e-6

static const Backend *be = &backend_cpu;

// ---------------------------------------------------------------------------------------------
// the double reference

typedef struct {
    ModelConfig c;
    int B, T;
    const int32_t *inp, *tgt;
    double *p;                       // base parameters, the model's slab layout
    size_t off[N_PARAM_TENSORS];
    double *lp;                      // adapter parameters (NULL: no adapter), the adapter's layout
    size_t offA[LORA_N_TARGETS], offB[LORA_N_TARGETS];
    unsigned targets;
    int rank;
    double scale;
    double *mask[LORA_N_TARGETS];    // (L, N, in) dropout factors, or NULL for none
    double *logits;                  // (N, V) of the last call
} Ref;

static double *dalloc(size_t n) { return lab_calloc(n, sizeof(double)); }

// y (N,out) = x (N,in) W^T [+ scale * (mask*x) A^T B^T]
static void ref_linear(Ref *R, int target, int l, const double *x, double *y, const double *W, int N, int in,
                       int out) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < in; i++) s += x[n * in + i] * W[(size_t)o * in + i];
            y[n * out + o] = s;
        }
    if (!R->lp || !(R->targets & (1u << target))) return;
    int r = R->rank;
    const double *A = R->lp + R->offA[target] + (size_t)l * r * in;
    const double *Bm = R->lp + R->offB[target] + (size_t)l * out * r;
    const double *mask = R->mask[target] ? R->mask[target] + (size_t)l * N * in : NULL;
    double *u = dalloc(r);
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int i = 0; i < in; i++) s += x[n * in + i] * (mask ? mask[n * in + i] : 1) * A[j * in + i];
            u[j] = s;
        }
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int j = 0; j < r; j++) s += u[j] * Bm[o * r + j];
            y[n * out + o] += R->scale * s;
        }
    }
    free(u);
}

static void ref_rmsnorm(const double *x, double *y, const double *w, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += x[n * C + c] * x[n * C + c];
        double r = 1 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) y[n * C + c] = x[n * C + c] * r * w[c];
    }
}

static void ref_rope(double *x, int B, int T, int H, int HD, double theta) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < HD / 2; i++) {
                    double *e = x + (((size_t)b * T + t) * H + h) * HD + 2 * i;
                    double a = t * pow(theta, -2.0 * i / HD), x0 = e[0], x1 = e[1];
                    e[0] = x0 * cos(a) - x1 * sin(a);
                    e[1] = x0 * sin(a) + x1 * cos(a);
                }
}

static double ref_loss(void *ctx) {
    Ref *R = ctx;
    const ModelConfig *c = &R->c;
    int B = R->B, T = R->T, N = B * T, C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads;
    int HD = C / NH, KVC = NKV * HD, F = c->ffn_dim, V = c->vocab_size;
    const double *p = R->p;
    double *x = dalloc(N * C), *h = dalloc(N * C), *q = dalloc(N * C), *k = dalloc(N * KVC),
           *v = dalloc(N * KVC), *ao = dalloc(N * C), *tmp = dalloc(N * C), *g = dalloc(N * F),
           *u = dalloc(N * F), *att = dalloc(T);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) x[n * C + j] = p[R->off[0] + (size_t)R->inp[n] * C + j];
    for (int l = 0; l < c->n_layers; l++) {
        ref_rmsnorm(x, h, p + R->off[1] + l * C, N, C, c->norm_eps);
        ref_linear(R, LORA_Q, l, h, q, p + R->off[2] + (size_t)l * C * C, N, C, C);
        ref_linear(R, LORA_K, l, h, k, p + R->off[3] + (size_t)l * KVC * C, N, C, KVC);
        ref_linear(R, LORA_V, l, h, v, p + R->off[4] + (size_t)l * KVC * C, N, C, KVC);
        ref_rope(q, B, T, NH, HD, c->rope_theta);
        ref_rope(k, B, T, NKV, HD, c->rope_theta);
        for (int b = 0; b < B; b++)
            for (int hh = 0; hh < NH; hh++) {
                int kh = hh / (NH / NKV);
                for (int t = 0; t < T; t++) {
                    double mx = -1e300, sum = 0;
                    for (int s = 0; s <= t; s++) {
                        double d = 0;
                        for (int i = 0; i < HD; i++)
                            d += q[(b * T + t) * C + hh * HD + i] * k[(b * T + s) * KVC + kh * HD + i];
                        att[s] = d / sqrt(HD);
                        mx = fmax(mx, att[s]);
                    }
                    for (int s = 0; s <= t; s++) { att[s] = exp(att[s] - mx); sum += att[s]; }
                    for (int i = 0; i < HD; i++) {
                        double acc = 0;
                        for (int s = 0; s <= t; s++) acc += att[s] / sum * v[(b * T + s) * KVC + kh * HD + i];
                        ao[(b * T + t) * C + hh * HD + i] = acc;
                    }
                }
            }
        ref_linear(R, LORA_O, l, ao, tmp, p + R->off[5] + (size_t)l * C * C, N, C, C);
        for (int i = 0; i < N * C; i++) x[i] += tmp[i];
        ref_rmsnorm(x, h, p + R->off[6] + l * C, N, C, c->norm_eps);
        ref_linear(R, LORA_GATE, l, h, g, p + R->off[7] + (size_t)l * F * C, N, C, F);
        ref_linear(R, LORA_UP, l, h, u, p + R->off[8] + (size_t)l * F * C, N, C, F);
        for (int i = 0; i < N * F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        ref_linear(R, LORA_DOWN, l, g, tmp, p + R->off[9] + (size_t)l * C * F, N, F, C);
        for (int i = 0; i < N * C; i++) x[i] += tmp[i];
    }
    ref_rmsnorm(x, h, p + R->off[10], N, C, c->norm_eps);
    double total = 0;
    int counted = 0;
    for (int n = 0; n < N; n++) {
        double *row = R->logits + (size_t)n * V, mx = -1e300, sum = 0;
        for (int vv = 0; vv < V; vv++) {
            double s = 0;
            for (int j = 0; j < C; j++) s += h[n * C + j] * p[R->off[0] + (size_t)vv * C + j];
            row[vv] = s;
            mx = fmax(mx, s);
        }
        if (R->tgt[n] < 0) continue;
        for (int vv = 0; vv < V; vv++) sum += exp(row[vv] - mx);
        total += mx + log(sum) - row[R->tgt[n]];
        counted++;
    }
    free(x); free(h); free(q); free(k); free(v); free(ao); free(tmp); free(g); free(u); free(att);
    return counted ? total / counted : 0;
}

// ---------------------------------------------------------------------------------------------
// checks

static void check_value(const char *what, double got, double want) {
    CHECK(fabs(got - want) <= VALUE_TOL * (1 + fabs(want)), "%s: float %.8g vs double %.8g", what, got, want);
}

static void check_logits(const char *what, const float *got, const double *want, size_t n) {
    double maxv, maxerr = test_max_abs_error(got, want, n, &maxv);
    printf("  %-22s max abs err %.2e (max |logit| %.2f)\n", what, maxerr, maxv);
    CHECK(maxerr <= VALUE_TOL * (1 + maxv), "%s: logits max abs error %.3e", what, maxerr);
}

// grad (n) vs central differences of the reference loss in x (n doubles the reference reads)
static void check_grad(const char *what, Ref *R, double *x, const float *grad, size_t n) {
    double maxfd, err = test_fd_grad_error(ref_loss, R, x, grad, n, FD_EPS, &maxfd);
    printf("  %-22s %5zu params  rel err %.2e (max |grad| %.3g)\n", what, n, err, maxfd);
    CHECK(err <= GRAD_TOL && maxfd > 0, "%s: gradient error %.3e > %.0e (max |fd| %.3g)", what, err, GRAD_TOL, maxfd);
}

static const ModelConfig tiny = {.vocab_size = 64, .dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                 .ffn_dim = 40, .max_seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 10000};

static void test_gradients(void) {
    enum { B = 2, T = 8, N = B * T };
    Model m;
    model_init(&m, &tiny, be);
    // Weights large enough that attention is far from uniform and every path carries signal;
    // norms away from 1 so their gradients mean something.
    Rng rng;
    rng_seed(&rng, 99);
    float *host = lab_malloc(m.num_params * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        int is_norm = i == 1 || i == 6 || i == 10;
        for (size_t j = 0; j < m.param_sizes[i]; j++)
            host[off + j] = is_norm ? 1.0f + 0.3f * rng_normal(&rng) : 0.35f * rng_normal(&rng);
        off += m.param_sizes[i];
    }
    be->upload(m.params_memory, host, m.num_params * sizeof(float));
    int32_t inp[N], tgt[N];
    for (int n = 0; n < N; n++) {
        inp[n] = (int32_t)rng_below(&rng, 64);
        tgt[n] = n % 5 == 3 ? -1 : (int32_t)rng_below(&rng, 64);
    }

    Ref R = {.c = tiny, .B = B, .T = T, .inp = inp, .tgt = tgt, .logits = dalloc((size_t)N * 64)};
    R.p = dalloc(m.num_params);
    for (size_t i = 0; i < m.num_params; i++) R.p[i] = host[i];
    float *const starts[N_PARAM_TENSORS] = {m.params.tok_emb, m.params.attn_norm, m.params.wq, m.params.wk,
                                            m.params.wv, m.params.wo, m.params.ffn_norm, m.params.w_gate,
                                            m.params.w_up, m.params.w_down, m.params.final_norm};
    for (int i = 0; i < N_PARAM_TENSORS; i++) R.off[i] = (size_t)(starts[i] - m.params_memory);

    printf("base model (%zu parameters), FD of the double reference:\n", m.num_params);
    float loss = model_forward(&m, inp, tgt, B, T);
    double ref = ref_loss(&R);
    printf("  loss float %.8f double %.8f\n", loss, ref);
    check_value("loss", loss, ref);
    check_logits("logits", m.logits, R.logits, (size_t)N * 64);
    for (int n = 0; n < N; n++)
        CHECK(tgt[n] >= 0 || m.losses[n] == 0, "losses: ignored position %d has loss %g", n, m.losses[n]);
    model_zero_grad(&m);
    model_backward(&m);
    float *grad = m.grads_memory;
    for (int i = 0; i < N_PARAM_TENSORS; i++)
        check_grad(param_tensor_names[i], &R, R.p + R.off[i], grad + R.off[i], m.param_sizes[i]);

    // an adapter on every target, with dropout active, on the same base
    LoraConfig lc = {.rank = 2, .alpha = 3.0f, .dropout = 0.25f, .targets = lora_parse_targets("all")};
    lora_attach(&m, &lc, 7);
    LoraState *s = m.lora;
    float *lhost = lab_malloc(s->num_params * sizeof(float));
    be->download(lhost, s->params_memory, s->num_params * sizeof(float));
    for (int t = 0; t < LORA_N_TARGETS; t++) {  // B random: with B = 0 the A gradients vanish
        int in, out;
        lora_target_shape(&tiny, t, &in, &out);
        float *Bh = lhost + (s->B[t] - s->params_memory);
        for (size_t j = 0; j < (size_t)tiny.n_layers * out * lc.rank; j++) Bh[j] = 0.3f * rng_normal(&rng);
    }
    be->upload(s->params_memory, lhost, s->num_params * sizeof(float));
    m.training = 1;
    m.dropout_seed = 77;
    R.lp = dalloc(s->num_params);
    for (size_t i = 0; i < s->num_params; i++) R.lp[i] = lhost[i];
    R.targets = lc.targets;
    R.rank = lc.rank;
    R.scale = lc.alpha / lc.rank;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        R.offA[t] = (size_t)(s->A[t] - s->params_memory);
        R.offB[t] = (size_t)(s->B[t] - s->params_memory);
        int in, out;
        lora_target_shape(&tiny, t, &in, &out);
        size_t per = (size_t)N * in;
        float *ones = lab_malloc(per * sizeof(float)), *f = lab_malloc(per * sizeof(float));
        for (size_t j = 0; j < per; j++) ones[j] = 1;
        R.mask[t] = dalloc(tiny.n_layers * per);
        for (int l = 0; l < tiny.n_layers; l++) {
            be->dropout_forward(f, ones, per, lc.dropout, lora_mask_seed(m.dropout_seed, l, t));
            for (size_t j = 0; j < per; j++) R.mask[t][l * per + j] = f[j];
        }
        free(ones);
        free(f);
    }
    printf("LoRA r=2 alpha=3 dropout=0.25 on all targets (%zu parameters):\n", s->num_params);
    loss = model_forward(&m, inp, tgt, B, T);
    ref = ref_loss(&R);
    printf("  loss float %.8f double %.8f\n", loss, ref);
    check_value("loss with adapter", loss, ref);
    check_logits("logits with adapter", m.logits, R.logits, (size_t)N * 64);
    model_zero_grad(&m);
    model_backward(&m);
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int in, out;
        lora_target_shape(&tiny, t, &in, &out);
        char name[32];
        snprintf(name, sizeof name, "lora %s_A", lora_target_names[t]);
        check_grad(name, &R, R.lp + R.offA[t], s->dA[t], (size_t)tiny.n_layers * lc.rank * in);
        snprintf(name, sizeof name, "lora %s_B", lora_target_names[t]);
        check_grad(name, &R, R.lp + R.offB[t], s->dB[t], (size_t)tiny.n_layers * out * lc.rank);
    }
    for (int t = 0; t < LORA_N_TARGETS; t++) free(R.mask[t]);
    free(R.lp); free(R.p); free(R.logits); free(host); free(lhost);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// determinism

typedef struct { float *logits, *grads, *lora_grads; float loss; size_t nl, ng, nlg; } RunResult;

static RunResult run_once(int with_lora) {
    ModelConfig cfg = {.vocab_size = 512, .dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                       .ffn_dim = 344, .max_seq_len = 128, .norm_eps = 1e-5f, .rope_theta = 10000};
    enum { B = 2, T = 128, N = B * T };
    Model m;
    model_init(&m, &cfg, be);
    model_init_random(&m, 5);
    int32_t inp[N], tgt[N];
    Rng rng;
    rng_seed(&rng, 6);
    for (int n = 0; n < N; n++) {
        inp[n] = (int32_t)rng_below(&rng, 512);
        tgt[n] = (int32_t)rng_below(&rng, 512);
    }
    RunResult r = {0};
    if (with_lora) {
        LoraConfig lc = {.rank = 4, .alpha = 8, .dropout = 0.1f, .targets = lora_parse_targets("q,v,down")};
        lora_attach(&m, &lc, 8);
        m.training = 1;
        m.dropout_seed = 1234;
        for (int t = 0; t < LORA_N_TARGETS; t++)  // nonzero B, so every adapter gradient is nonzero
            if (m.lora->B[t]) {
                int in, out;
                lora_target_shape(&cfg, t, &in, &out);
                for (size_t j = 0; j < (size_t)cfg.n_layers * out * lc.rank; j++)
                    m.lora->B[t][j] = 0.01f * rng_normal(&rng);
            }
    }
    r.loss = model_forward(&m, inp, tgt, B, T);
    model_zero_grad(&m);
    model_backward(&m);
    float *p, *g;
    size_t n;
    model_trainable(&m, &p, &g, &n);
    r.nl = (size_t)N * cfg.vocab_size;
    r.logits = lab_malloc(r.nl * sizeof(float));
    memcpy(r.logits, m.logits, r.nl * sizeof(float));
    r.ng = n;
    r.grads = lab_malloc(n * sizeof(float));
    memcpy(r.grads, g, n * sizeof(float));
    model_free(&m);
    return r;
}

static void test_determinism(int with_lora) {
    RunResult a = run_once(with_lora), b = run_once(with_lora);
    const char *what = with_lora ? "LoRA (dropout on)" : "base";
    printf("determinism, %s: loss %.7f, %zu gradients\n", what, a.loss, a.ng);
    CHECK(a.loss == b.loss, "%s: losses differ: %.9g vs %.9g", what, a.loss, b.loss);
    CHECK(memcmp(a.logits, b.logits, a.nl * sizeof(float)) == 0, "%s: logits differ between runs", what);
    CHECK(a.ng == b.ng && memcmp(a.grads, b.grads, a.ng * sizeof(float)) == 0, "%s: gradients differ between runs", what);
    double sq = 0;
    for (size_t i = 0; i < a.ng; i++) sq += (double)a.grads[i] * a.grads[i];
    CHECK(sq > 0, "%s: all gradients are zero", what);
    free(a.logits); free(a.grads); free(b.logits); free(b.grads);
}

int main(int argc, char **argv) {
    lab_init("test_model_grad", argc, argv);
    printf("threads %d; tolerances: values %.0e relative, gradients %.0e of the tensor's max |grad|\n",
           lab_threads(), VALUE_TOL, GRAD_TOL);
    test_gradients();
    test_determinism(0);
    test_determinism(1);
    return test_summary();
}
