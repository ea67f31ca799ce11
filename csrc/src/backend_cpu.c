// backend_cpu: the ops of backend.h on the CPU. OpenBLAS sgemm for every product (the linear
// layers and attention's QK^T / PV per (batch, head)), OpenMP over rows elsewhere.
//
// Determinism: every float sum has one fixed order whatever the thread count. Threads split the
// rows of row-wise ops; sums over rows (a norm's or the embedding's weight gradient) are split by
// column blocks, each column summed by one thread in row order. No OpenMP float reductions.
// Products are split over the threads in a fixed way for a given thread count (see sgemm_split).
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"

// ---------------------------------------------------------------------------------------------
// memory

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) lab_die("out of memory allocating %zu bytes", bytes);
    memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) { free(p); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

// ---------------------------------------------------------------------------------------------
// benchmark counters

static BackendStats g_stats;

static void cpu_stats(BackendStats *out, int reset) {
    if (out) *out = g_stats;
    if (reset) memset(&g_stats, 0, sizeof g_stats);
}

// ---------------------------------------------------------------------------------------------
// exp: glibc's expf does not vectorise without -ffast-math, and softmax, cross-entropy and SiLU spend
// most of their time in it. Here x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so that n ln2 is
// exact), exp(r) by its Taylor series to r^7 (truncation error < 5e-9), times 2^n built in the
// exponent bits: at most 1.5 ulp from exp over [-87, 88] (swept in steps of 1e-4 when written), and
// written so that loops over it vectorise: the clamps are integer selects (a float select becomes
// a branch under -ftrapping-math). |x| > 100 is clamped to 100 (NaN passes through), so
// exp(-inf..-87) is ~1e-38, not 0, and exp(88..inf) ~2e38, not inf: nothing here needs the difference.

static inline float exp_fast(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t mag = u & 0x7fffffffu;
    u = mag > 0x42c80000u && mag <= 0x7f800000u ? (u & 0x80000000u) | 0x42c80000u : u;  // 100.0f
    memcpy(&x, &u, sizeof x);
    float t = x * 1.44269504088896341f + 12582912.0f;  // + 1.5 * 2^23 rounds x/ln2 to an integer n
    float n = t - 12582912.0f;
    int32_t e;
    memcpy(&e, &t, sizeof e);                          // n sits in the low mantissa bits
    e -= 0x4B400000;
    e = e < -126 ? -126 : e;
    e = e > 127 ? 127 : e;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 = 355/512 - 2.12194440e-4
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r * r + r + 1.0f;
    int32_t scale_bits = (e + 127) << 23;              // 2^n
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

// ---------------------------------------------------------------------------------------------
// embedding

// inp (N) ids, emb (V,C) -> out (N,C)
static void embedding_forward(float *out, const int32_t *inp, const float *emb, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, emb + (size_t)inp[n] * C, (size_t)C * sizeof(float));
}

// Columns in blocks, so each gradient entry sums its rows in row order on one thread.
#define COL_BLOCK 32

// demb (V,C) += scatter of dout (N,C) by inp (N)
static void embedding_backward(float *demb, const float *dout, const int32_t *inp, int N, int C) {
    if (!demb) return;
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            float *d = demb + (size_t)inp[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rmsnorm

// inp (N,C), weight (C) -> out (N,C), rstd (N)
static void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                            int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

// dinp_c += r w_c dy_c - x_c r^3/C * sum_j(w_j dy_j x_j);  dweight_c += sum_n dy_c x_c r
static void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C) {
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float r = rstd[n], dot = 0.0f;
            for (int c = 0; c < C; c++) dot += weight[c] * dy[c] * x[c];
            float k = r * r * r * dot / (float)C;
            for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - x[c] * k;
        }
    }
    if (dweight) {
        int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float r = rstd[n];
                for (int c = c0; c < c1; c++) dweight[c] += dy[c] * x[c] * r;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sgemm on one pool of threads
//
// Every product runs on the OpenMP threads, each making a one-thread OpenBLAS call on its share.
// Letting OpenBLAS thread the products itself puts two pools of spinning threads on the same cores
// (OpenMP's between row-wise ops, OpenBLAS's between products), and on 2 cores they steal time
// from each other: in interleaved lab-bench runs on 2 cores, forward+backward of the default model
// took 1.8x as long that way.

// OpenBLAS called from inside our parallel regions must run on one thread. The OpenMP build does
// that by itself (it checks omp_in_parallel()); and there openblas_set_num_threads() is
// omp_set_num_threads(), which would shrink our own next parallel region to one thread. So the
// thread count is pinned to 1 only for the pthread build, and restored after.
static int blas_serial_begin(void) {
    if (openblas_get_parallel() == 2) return 0;
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return threads;
}

static void blas_serial_end(int threads) {
    if (threads) openblas_set_num_threads(threads);
}

// C (M,N) = alpha * op(A) op(B) + beta * C, row-major, split over the threads along the larger of
// M and N in blocks of 16 (the sgemm kernels' unroll). Fixed split for a thread count.
static void sgemm_split(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    int blas_threads = blas_serial_begin();
    int split_rows = M >= N;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), len = split_rows ? M : N;
        int per = ((len + nt - 1) / nt + 15) / 16 * 16;
        int i0 = t * per < len ? t * per : len, i1 = i0 + per < len ? i0 + per : len;
        if (i0 < i1 && split_rows)
            cblas_sgemm(CblasRowMajor, ta, tb, i1 - i0, N, K, alpha,
                        ta == CblasNoTrans ? A + (size_t)i0 * lda : A + i0, lda, B, ldb, beta,
                        C + (size_t)i0 * ldc, ldc);
        else if (i0 < i1)
            cblas_sgemm(CblasRowMajor, ta, tb, M, i1 - i0, K, alpha, A, lda,
                        tb == CblasNoTrans ? B + i0 : B + (size_t)i0 * ldb, ldb, beta, C + i0, ldc);
    }
    blas_serial_end(blas_threads);
}

// ---------------------------------------------------------------------------------------------
// matmul (the linear layers, nn.Linear layout)

// out (N,OC) = beta*out + alpha * inp (N,IC) @ weight (OC,IC)^T
static void matmul_forward(float *out, const float *inp, const float *weight, int N, int IC, int OC,
                           float alpha, float beta) {
    double t0 = lab_now();
    sgemm_split(CblasNoTrans, CblasTrans, N, OC, IC, alpha, inp, IC, weight, IC, beta, out, OC);
    g_stats.matmul_s += lab_now() - t0;
    g_stats.matmul_flop += 2.0 * N * IC * OC;
}

// dinp (N,IC) += alpha * dout (N,OC) @ weight (OC,IC);  dweight (OC,IC) += alpha * dout^T @ inp (N,IC)
static void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, int N, int IC, int OC, float alpha) {
    double t0 = lab_now();
    if (dinp) {
        sgemm_split(CblasNoTrans, CblasNoTrans, N, IC, OC, alpha, dout, OC, weight, IC, 1.0f, dinp, IC);
        g_stats.matmul_flop += 2.0 * N * IC * OC;
    }
    if (dweight) {
        sgemm_split(CblasTrans, CblasNoTrans, OC, IC, N, alpha, dout, OC, inp, IC, 1.0f, dweight, IC);
        g_stats.matmul_flop += 2.0 * N * IC * OC;
    }
    g_stats.matmul_s += lab_now() - t0;
}

// ---------------------------------------------------------------------------------------------
// rope: pairs (2i, 2i+1) rotated by angle t * theta^(-2i/HD), tables (T_max, HD/2)

// inp (B,T,NH,HD) -> out (B,T,NH,HD); out may be inp
static void rope_forward(float *out, const float *inp, const float *cos_tab, const float *sin_tab,
                         int B, int T, int NH, int HD) {
    int half = HD / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float *cs = cos_tab + (size_t)t * half, *sn = sin_tab + (size_t)t * half;
        for (int h = 0; h < NH; h++) {
            const float *x = inp + ((size_t)bt * NH + h) * HD;
            float *o = out + ((size_t)bt * NH + h) * HD;
            for (int i = 0; i < half; i++) {
                float x0 = x[2 * i], x1 = x[2 * i + 1];
                o[2 * i] = x0 * cs[i] - x1 * sn[i];
                o[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

// dinp += R^T dout (rotation by the opposite angle)
static void rope_backward(float *dinp, const float *dout, const float *cos_tab, const float *sin_tab,
                          int B, int T, int NH, int HD) {
    if (!dinp) return;
    int half = HD / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float *cs = cos_tab + (size_t)t * half, *sn = sin_tab + (size_t)t * half;
        for (int h = 0; h < NH; h++) {
            const float *d = dout + ((size_t)bt * NH + h) * HD;
            float *dx = dinp + ((size_t)bt * NH + h) * HD;
            for (int i = 0; i < half; i++) {
                float d0 = d[2 * i], d1 = d[2 * i + 1];
                dx[2 * i] += d0 * cs[i] + d1 * sn[i];
                dx[2 * i + 1] += -d0 * sn[i] + d1 * cs[i];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// attention: causal, GQA. The threads take (batch, head) pairs; each does its pair's products with
// one-thread sgemms, the scores staying in its cache. Rows go in blocks of ATT_ROWS queries, and a
// block's products stop at its last key: the causal mask then costs (n+1)/2n of the full square's
// work for n blocks (62% at T = 256) while each sgemm stays large enough to run at full speed.
// Inside a block, entries above the diagonal are computed and then zeroed by the softmax.
#define ATT_ROWS 64

// (query, key) pairs the row-blocked products compute for T positions (for the FLOP counters)
static double attention_pairs(int T) {
    double pairs = 0;
    for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
        int rows = T - r0 < ATT_ROWS ? T - r0 : ATT_ROWS;
        pairs += (double)rows * (r0 + rows);
    }
    return pairs;
}

// q (B,T,NH,HD), k v (B,T,NKV,HD) -> att (B,NH,T,T) probabilities (upper triangle 0), out (B,T,NH,HD)
static void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                              int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KVC = NKV * HD, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    size_t TT = (size_t)T * T;
    double t0 = lab_now();
    int blas_threads = blas_serial_begin();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *qh = q + (size_t)b * T * C + h * HD, *kh = k + (size_t)b * T * KVC + (h / group) * HD;
        const float *vh = v + (size_t)b * T * KVC + (h / group) * HD;
        float *P = att + (size_t)bh * TT, *oh = out + (size_t)b * T * C + h * HD;
        for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
            int rows = T - r0 < ATT_ROWS ? T - r0 : ATT_ROWS, keys = r0 + rows;
            float *Pb = P + (size_t)r0 * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, HD, scale, qh + (size_t)r0 * C,
                        C, kh, KVC, 0.0f, Pb, T);
            for (int t = r0; t < keys; t++) {
                float *row = P + (size_t)t * T;
                float maxv = row[0];
                for (int s = 1; s <= t; s++) maxv = row[s] > maxv ? row[s] : maxv;
                for (int s = 0; s <= t; s++) row[s] = exp_fast(row[s] - maxv);
                float sum = 0.0f;
                for (int s = 0; s <= t; s++) sum += row[s];
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) row[s] *= inv;
                for (int s = t + 1; s < T; s++) row[s] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HD, keys, 1.0f, Pb, T, vh, KVC,
                        0.0f, oh + (size_t)r0 * C, C);
        }
    }
    blas_serial_end(blas_threads);
    g_stats.attention_s += lab_now() - t0;
    g_stats.attention_flop += 4.0 * B * NH * HD * attention_pairs(T);
}

// dP = dO V^T; dV += P^T dO; dS = P * (dP - rowsum(P*dP)) * scale; dQ += dS K; dK += dS^T Q, by
// the same row blocks. The threads take (batch, kv head) pairs, so the query heads sharing a kv
// head add into its dk and dv on one thread, in a fixed order.
static void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                               const float *att, const float *q, const float *k, const float *v,
                               int B, int T, int NH, int NKV, int HD) {
    int C = NH * HD, KVC = NKV * HD, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    size_t TT = (size_t)T * T;
    double t0 = lab_now();
    int blas_threads = blas_serial_begin();
#pragma omp parallel for schedule(static)
    for (int bkv = 0; bkv < B * NKV; bkv++) {
        int b = bkv / NKV, kvh = bkv % NKV;
        size_t kv_off = (size_t)b * T * KVC + kvh * HD;
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            size_t q_off = (size_t)b * T * C + h * HD;
            const float *P = att + ((size_t)b * NH + h) * TT;
            float *dS = datt + ((size_t)b * NH + h) * TT;
            for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
                int rows = T - r0 < ATT_ROWS ? T - r0 : ATT_ROWS, keys = r0 + rows;
                const float *Pb = P + (size_t)r0 * T, *dOb = dout + q_off + (size_t)r0 * C;
                float *dSb = dS + (size_t)r0 * T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, HD, 1.0f, dOb, C,
                            v + kv_off, KVC, 0.0f, dSb, T);
                if (dv)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, HD, rows, 1.0f, Pb, T, dOb, C,
                                1.0f, dv + kv_off, KVC);
                for (int t = r0; t < keys; t++) {
                    const float *p = P + (size_t)t * T;
                    float *d = dS + (size_t)t * T;
                    float dot = 0.0f;
                    for (int s = 0; s <= t; s++) dot += p[s] * d[s];
                    for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot) * scale;
                    for (int s = t + 1; s < keys; s++) d[s] = 0.0f;
                }
                if (dq)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HD, keys, 1.0f, dSb, T,
                                k + kv_off, KVC, 1.0f, dq + q_off + (size_t)r0 * C, C);
                if (dk)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, HD, rows, 1.0f, dSb, T,
                                q + q_off + (size_t)r0 * C, C, 1.0f, dk + kv_off, KVC);
            }
        }
    }
    blas_serial_end(blas_threads);
    g_stats.attention_s += lab_now() - t0;
    g_stats.attention_flop += 8.0 * B * NH * HD * attention_pairs(T);
}

// ---------------------------------------------------------------------------------------------
// swiglu and residual

static inline float sigmoidf(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

// out = silu(gate) * up
static void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

// dgate += dout * up * sig(g) (1 + g (1 - sig(g)));  dup += dout * silu(g)
// (one loop per gradient: a loop with a branch inside does not vectorise)
static void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, size_t n) {
    if (dgate) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            float g = gate[i], s = sigmoidf(g);
            dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        }
    }
    if (dup) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) dup[i] += dout[i] * gate[i] * sigmoidf(gate[i]);
    }
}

static void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void residual_backward(float *da, float *db, const float *dout, size_t n) {
    if (da) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) da[i] += dout[i];
    }
    if (db) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) db[i] += dout[i];
    }
}

// ---------------------------------------------------------------------------------------------
// cross-entropy over the vocabulary

// log(sum(exp(row))) with the max subtracted first; 16 partial sums in a fixed order (so the loop
// vectorises and the result does not depend on the thread count)
static float logsumexp_row(const float *row, int V) {
    float maxv = row[0];
    for (int v = 1; v < V; v++) maxv = row[v] > maxv ? row[v] : maxv;
    float acc[16] = {0};
    int v = 0;
    for (; v + 16 <= V; v += 16)
        for (int j = 0; j < 16; j++) acc[j] += exp_fast(row[v + j] - maxv);
    float sum = 0.0f;
    for (int j = 0; j < 16; j++) sum += acc[j];
    for (; v < V; v++) sum += exp_fast(row[v] - maxv);
    return maxv + logf(sum);
}

// logits (N,V), targets (N) -> losses (N)
static void crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N,
                                 int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *row = logits + (size_t)n * V;
        losses[n] = targets[n] < 0 ? 0.0f : logsumexp_row(row, V) - row[targets[n]];
    }
}

// dlogits (N,V) += dloss * (softmax - onehot) on rows with target >= 0
static void crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets,
                                  float dloss, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *row = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        float lse = logsumexp_row(row, V);
        for (int v = 0; v < V; v++) d[v] += dloss * exp_fast(row[v] - lse);
        d[targets[n]] -= dloss;
    }
}

// ---------------------------------------------------------------------------------------------
// dropout: element i kept when the top 24 bits of hash(seed, i) are >= p * 2^24

static inline float dropout_factor(uint64_t seed, size_t i, float p, float keep_scale) {
    uint64_t h = lab_hash64(seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f);
    return u >= p ? keep_scale : 0.0f;
}

static void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed) {
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, n * sizeof(float));
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * dropout_factor(seed, i, p, keep_scale);
}

static void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed) {
    if (!dinp) return;
    if (p <= 0.0f) {
        residual_backward(dinp, NULL, dout, n);
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * dropout_factor(seed, i, p, keep_scale);
}

// ---------------------------------------------------------------------------------------------

const Backend backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .residual_forward = residual_forward,
    .residual_backward = residual_backward,
    .crossentropy_forward = crossentropy_forward,
    .crossentropy_backward = crossentropy_backward,
    .dropout_forward = dropout_forward,
    .dropout_backward = dropout_backward,
    .stats = cpu_stats,
};
