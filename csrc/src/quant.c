// quant: weight formats (fp32, bf16, fp16, Q8_0, Q4_0), their (de)quantization, and y = x @ W^T
// with portable / AVX2 / AVX-512 kernels chosen at run time. See quant.h for the formats.
//
// Kernels. Each format's kernel computes a tile of dot products: MR weight rows by NX rows of x,
// so a weight row is loaded (and, for bf16/fp16/Q4_0, converted) once per NX rows of x, and a row
// of x once per MR weight rows. The inner functions take the format, MR and NX as constants and
// are always inlined, so each combination compiles to its own straight-line loop. The ISA-specific
// functions carry GCC target attributes: the file builds with any -march, and the AVX-512 code runs
// only where __builtin_cpu_supports says the CPU has it.
//
// Q8_0 and Q4_0 follow llama.cpp's ggml_vec_dot_q8_0_q8_0 / q4_0_q8_0 idea (read, not copied): x is
// quantized to int8 groups of 32 once per product, each group's dot product is summed exactly in
// integers (AVX2: maddubs on |w| and x carrying w's sign, then madd to int32; for Q4_0, maddubs on
// the stored codes 0..15 and x, less 8 * the sums of x computed with x), and only the group sums
// are scaled and added in fp32.
#include "quant.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#define QUANT_X86 1
#include <immintrin.h>
#endif

#define AI __attribute__((always_inline)) inline
#define NX_MAX 4  // rows of x per weight-row pass
// The SIMD kernels of bf16, fp16, Q8_0 and Q4_0 prefetch each weight row this far ahead of where
// they read, into L2. Streaming from DRAM on 2 cores (EPYC, 135 MB of 768-wide layers, interleaved
// A/B, medians of 7, four quiet rounds) it raised bf16 from 16-18 to 20-22 GB/s, Q8_0 from 11-13 to
// 17-20 and Q4_0 from 10-13 to 16-17 (4, 8 and 16 KiB about equal, 2 KiB short of them; into L2
// beat into L1 by 15% for Q4_0 and matched it otherwise); fp32 gained nothing and lost up to 20% at
// 2-8 KiB in one round, so it is left to the hardware prefetchers.
#define PREFETCH_BYTES 8192

typedef struct {
    uint16_t d;
    int8_t q[QK];
} BlockQ8;
typedef struct {
    uint16_t d;
    uint8_t qs[QK / 2];
} BlockQ4;
_Static_assert(sizeof(BlockQ8) == 34 && sizeof(BlockQ4) == 18, "Q8_0 / Q4_0 blocks must be llama.cpp's sizes");

// ---------------------------------------------------------------------------------------------
// types

static const char *const TYPE_NAMES[QT_COUNT] = {"f32", "bf16", "f16", "q8_0", "q4_0"};

const char *qtype_name(QType t) { return (unsigned)t < QT_COUNT ? TYPE_NAMES[t] : "unknown"; }

int qtype_parse(const char *s, QType *t) {
    for (int i = 0; i < QT_COUNT; i++)
        if (strcmp(s, TYPE_NAMES[i]) == 0) {
            *t = (QType)i;
            return 0;
        }
    return -1;
}

double qtype_bits_per_weight(QType t) {
    switch (t) {
    case QT_F32: return 32;
    case QT_BF16:
    case QT_F16: return 16;
    case QT_Q8_0: return 8.0 * sizeof(BlockQ8) / QK;
    case QT_Q4_0: return 8.0 * sizeof(BlockQ4) / QK;
    }
    return 0;
}

int qtype_is_grouped(QType t) { return t == QT_Q8_0 || t == QT_Q4_0; }

size_t qmat_row_bytes(QType t, int cols) {
    switch (t) {
    case QT_F32: return (size_t)cols * 4;
    case QT_BF16:
    case QT_F16: return (size_t)cols * 2;
    case QT_Q8_0: return (size_t)(cols / QK) * sizeof(BlockQ8);
    case QT_Q4_0: return (size_t)(cols / QK) * sizeof(BlockQ4);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// fp32 <-> bf16 / fp16, bit by bit so that every machine gives the same bytes

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t qfp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 0x0040);  // NaN: set the quiet bit
    u += 0x7FFF + ((u >> 16) & 1);  // round the 16 dropped bits to nearest, ties to the even result
    return (uint16_t)(u >> 16);
}

float qbf16_to_fp32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t qfp32_to_fp16(float f) {
    uint32_t u = f32_bits(f), a = u & 0x7FFFFFFF;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (a > 0x7F800000) return sign | 0x7E00 | ((a >> 13) & 0x3FF);  // NaN: quiet, top payload bits kept
    // 65520 = 65504 + half an ulp: the tie goes to the even neighbour, which is inf
    if (a >= 0x477FF000) return sign | 0x7C00;
    if (a >= 0x38800000) {  // normal in fp16 (>= 2^-14): round the 13 dropped bits, rebias 127 -> 15
        a += 0x0FFF + ((a >> 13) & 1);
        return sign | (uint16_t)((a - 0x38000000) >> 13);
    }
    if (a <= 0x33000000) return sign;  // <= 2^-25, half the smallest subnormal: rounds to 0
    // subnormal: k * 2^-24 with k = mantissa (24 bits with the implicit one) >> (126 - exponent)
    int shift = 126 - (int)(a >> 23);
    uint32_t m = (a & 0x7FFFFF) | 0x800000, k = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (k & 1))) k++;
    return sign | (uint16_t)k;  // k = 0x400 is the smallest normal, encoded right by the same bits
}

float qfp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) return f32_from_bits(sign | 0x7F800000 | (m << 13));
    if (e) return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
    float v = (float)m * 0x1p-24f;  // subnormal (or zero), exact in fp32
    return sign ? -v : v;
}

// the smallest fp16 >= v, for 0 <= v <= 65504; its value in *d
static uint16_t fp16_round_up(float v, float *d) {
    uint16_t h = qfp32_to_fp16(v);
    if (qfp16_to_fp32(h) < v) h++;
    *d = qfp16_to_fp32(h);
    return h;
}

// ---------------------------------------------------------------------------------------------
// quantize / dequantize

// Every weight ends within d/2 of its stored value: the scale is rounded up, never down, so no
// weight needs more than the largest code.
static void quantize_q8_group(const float *w, BlockQ8 *b) {
    float amax = 0, d;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(w[i]));
    b->d = fp16_round_up(amax / 127.0f, &d);
    for (int i = 0; i < QK; i++) b->q[i] = d != 0 ? (int8_t)nearbyintf(w[i] / d) : 0;
}

// llama.cpp's choice d = -m/8 puts the largest-magnitude weight m exactly on code -8, the one code
// a symmetric scale would waste; but a weight of the other sign beyond 7.5 |d| would then be clamped
// to 7, up to d away. Such groups take the symmetric d = max|w| / 7 instead.
static void quantize_q4_group(const float *w, BlockQ4 *b) {
    float amax = 0, m = 0;
    for (int i = 0; i < QK; i++)
        if (fabsf(w[i]) > amax) {
            amax = fabsf(w[i]);
            m = w[i];
        }
    uint8_t q[QK];
    uint16_t h = qfp32_to_fp16(-m / 8);
    float d = qfp16_to_fp32(h);
    int fits = d != 0;
    for (int i = 0; i < QK && fits; i++) {
        float t = nearbyintf(w[i] / d);
        fits = t >= -8 && t <= 7;
        q[i] = (uint8_t)(int)(t + 8);
    }
    if (!fits) {
        h = fp16_round_up(amax / 7, &d);
        for (int i = 0; i < QK; i++) q[i] = d != 0 ? (uint8_t)(int)(nearbyintf(w[i] / d) + 8) : 8;
    }
    b->d = h;
    for (int j = 0; j < QK / 2; j++) b->qs[j] = (uint8_t)(q[j] | q[j + QK / 2] << 4);
}

void qmat_quantize(QMat *q, QType t, const float *w, int rows, int cols) {
    if ((unsigned)t >= QT_COUNT) lab_die("qmat_quantize: unknown weight type %d", (int)t);
    if (rows < 1 || cols < 1) lab_die("qmat_quantize: expected a matrix of at least 1 x 1, found %d x %d", rows, cols);
    if (qtype_is_grouped(t) && cols % QK != 0)
        lab_die("qmat_quantize: %s needs the number of columns to be a multiple of %d, found %d x %d (rows x cols)",
                qtype_name(t), QK, rows, cols);
    if (qtype_is_grouped(t)) {
        // the largest |w| whose scale (max|w| / 127, or / 7) still fits in an fp16
        const float limit = t == QT_Q8_0 ? 127.0f * 65504 : 7.0f * 65504;
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            if (!(fabsf(w[i]) <= limit))
                lab_die("qmat_quantize: %s needs finite weights of magnitude <= %g, found %g at row %zu, column %zu",
                        qtype_name(t), limit, w[i], i / cols, i % cols);
    }
    const size_t rb = qmat_row_bytes(t, cols), bytes = rb * rows;
    void *data = NULL;
    if (posix_memalign(&data, 64, (bytes + 63) / 64 * 64) != 0)
        lab_die("qmat_quantize: out of memory allocating %zu bytes for a %d x %d %s matrix", bytes, rows, cols, qtype_name(t));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        char *out = (char *)data + (size_t)r * rb;
        switch (t) {
        case QT_F32: memcpy(out, wr, rb); break;
        case QT_BF16:
            for (int c = 0; c < cols; c++) ((uint16_t *)out)[c] = qfp32_to_bf16(wr[c]);
            break;
        case QT_F16:
            for (int c = 0; c < cols; c++) ((uint16_t *)out)[c] = qfp32_to_fp16(wr[c]);
            break;
        case QT_Q8_0:
            for (int g = 0; g < cols / QK; g++) quantize_q8_group(wr + g * QK, (BlockQ8 *)out + g);
            break;
        case QT_Q4_0:
            for (int g = 0; g < cols / QK; g++) quantize_q4_group(wr + g * QK, (BlockQ4 *)out + g);
            break;
        }
    }
    *q = (QMat){.type = t, .rows = rows, .cols = cols, .data = data, .bytes = bytes};
}

void qmat_dequantize(const QMat *q, float *w) {
    const size_t rb = qmat_row_bytes(q->type, q->cols);
    const int cols = q->cols;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < q->rows; r++) {
        const char *in = (const char *)q->data + (size_t)r * rb;
        float *wr = w + (size_t)r * cols;
        switch (q->type) {
        case QT_F32: memcpy(wr, in, rb); break;
        case QT_BF16:
            for (int c = 0; c < cols; c++) wr[c] = qbf16_to_fp32(((const uint16_t *)in)[c]);
            break;
        case QT_F16:
            for (int c = 0; c < cols; c++) wr[c] = qfp16_to_fp32(((const uint16_t *)in)[c]);
            break;
        case QT_Q8_0:
            for (int g = 0; g < cols / QK; g++) {
                const BlockQ8 *b = (const BlockQ8 *)in + g;
                const float d = qfp16_to_fp32(b->d);
                for (int i = 0; i < QK; i++) wr[g * QK + i] = b->q[i] * d;
            }
            break;
        case QT_Q4_0:
            for (int g = 0; g < cols / QK; g++) {
                const BlockQ4 *b = (const BlockQ4 *)in + g;
                const float d = qfp16_to_fp32(b->d);
                for (int j = 0; j < QK / 2; j++) {
                    wr[g * QK + j] = ((b->qs[j] & 0x0F) - 8) * d;
                    wr[g * QK + j + QK / 2] = ((b->qs[j] >> 4) - 8) * d;
                }
            }
            break;
        }
    }
}

void qmat_free(QMat *q) {
    free(q->data);
    q->data = NULL;
    q->bytes = 0;
}

static void qact_quantize_portable(const float *x, int n, QActBlock *out) {
    for (int g = 0; g < n / QK; g++) {
        const float *xg = x + g * QK;
        float amax = 0;
        for (int i = 0; i < QK; i++) amax = fabsf(xg[i]) > amax ? fabsf(xg[i]) : amax;  // fmaxf would be a call
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        out[g].d = d;
        for (int i = 0; i < QK; i++) out[g].q[i] = (int8_t)nearbyintf(xg[i] * id);
        for (int l = 0; l < QK / 4; l++)
            out[g].sum8[l] = 8 * (out[g].q[4 * l] + out[g].q[4 * l + 1] + out[g].q[4 * l + 2] + out[g].q[4 * l + 3]);
    }
}

// ---------------------------------------------------------------------------------------------
// kernels
//
// dot_*(w, rb, x, xs, cols, out, os, FMT, MR, NX): out[j * os + m] = <weight row m, row j of x> for
// m < MR, j < NX; weight rows rb bytes apart, x's rows xs elements apart (floats for the float
// formats, QActBlocks for the grouped ones). A batch-1 product takes MR = 4 weight rows at a time
// (four independent sums, one load of x for four rows: short rows, like the default model's 256,
// are otherwise bound by the latency of one chain of adds); a batched one takes NX = 4 rows of x.
// Each sum is accumulated the same way whatever MR is, so a row's result does not depend on
// whether it fell in a tile of 4 or among the last rows of a thread's share: results are the same
// for any thread count.

static AI float weight_at(const void *w, int c, const int FMT) {
    if (FMT == QT_F32) return ((const float *)w)[c];
    if (FMT == QT_BF16) return qbf16_to_fp32(((const uint16_t *)w)[c]);
    return qfp16_to_fp32(((const uint16_t *)w)[c]);
}

static AI const void *row_at(const void *w, size_t rb, int m) { return (const char *)w + m * rb; }

static AI void dot_float_portable(const void *w, size_t rb, const void *x, size_t xs, int cols, float *out,
                                  size_t os, const int FMT, const int MR, const int NX) {
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++) {
            const void *wm = row_at(w, rb, m);
            const float *xj = (const float *)x + j * xs;
            float acc[8] = {0};  // eight independent sums, so the adds need not wait on each other
            int c = 0;
            for (; c + 8 <= cols; c += 8)
                for (int k = 0; k < 8; k++) acc[k] += weight_at(wm, c + k, FMT) * xj[c + k];
            float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (; c < cols; c++) s += weight_at(wm, c, FMT) * xj[c];
            out[j * os + m] = s;
        }
}

// the exact integer dot product of weight group b with activation codes q, and the group's scale
static AI int group_isum(const void *w, int b, const int8_t *q, float *d, const int FMT) {
    int s = 0;
    if (FMT == QT_Q8_0) {
        const BlockQ8 *B = (const BlockQ8 *)w + b;
        *d = qfp16_to_fp32(B->d);
        for (int i = 0; i < QK; i++) s += B->q[i] * q[i];
    } else {
        const BlockQ4 *B = (const BlockQ4 *)w + b;
        *d = qfp16_to_fp32(B->d);
        for (int i = 0; i < QK / 2; i++) s += ((B->qs[i] & 0x0F) - 8) * q[i] + ((B->qs[i] >> 4) - 8) * q[i + QK / 2];
    }
    return s;
}

static AI void dot_q_portable(const void *w, size_t rb, const void *x, size_t xs, int cols, float *out, size_t os,
                              const int FMT, const int MR, const int NX) {
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++) {
            const QActBlock *xj = (const QActBlock *)x + j * xs;
            float s = 0, d;
            for (int b = 0; b < cols / QK; b++) {
                const int isum = group_isum(row_at(w, rb, m), b, xj[b].q, &d, FMT);
                s += d * xj[b].d * (float)isum;
            }
            out[j * os + m] = s;
        }
}

// Rows [r0, r1) of y (N, rows): with one row of x, four weight rows at a time; otherwise each
// weight row against x in passes of NX_MAX rows and one shorter pass.
#define DEFINE_ROWS(name, attrs, dot, FMT)                                                                    \
    attrs static void name(const QMat *q, int r0, int r1, const void *x, int N, float *y) {                   \
        const size_t rb = qmat_row_bytes(FMT, q->cols), xs = qtype_is_grouped(FMT) ? q->cols / QK : q->cols; \
        const size_t xsize = qtype_is_grouped(FMT) ? sizeof(QActBlock) : sizeof(float), os = q->rows;        \
        const char *w = (const char *)q->data;                                                                \
        int r = r0;                                                                                           \
        if (N == 1)                                                                                           \
            for (; r + 4 <= r1; r += 4) dot(w + r * rb, rb, x, xs, q->cols, y + r, os, FMT, 4, 1);           \
        for (; r < r1; r++) {                                                                                 \
            int n = 0;                                                                                        \
            for (; n + NX_MAX <= N; n += NX_MAX)                                                              \
                dot(w + r * rb, rb, (const char *)x + n * xs * xsize, xs, q->cols, y + n * os + r, os, FMT, 1, \
                    NX_MAX);                                                                                  \
            const void *xn = (const char *)x + n * xs * xsize;                                                \
            if (N - n == 3) dot(w + r * rb, rb, xn, xs, q->cols, y + n * os + r, os, FMT, 1, 3);              \
            else if (N - n == 2) dot(w + r * rb, rb, xn, xs, q->cols, y + n * os + r, os, FMT, 1, 2);         \
            else if (N - n == 1) dot(w + r * rb, rb, xn, xs, q->cols, y + n * os + r, os, FMT, 1, 1);         \
        }                                                                                                     \
    }

typedef void (*RowsFn)(const QMat *q, int r0, int r1, const void *x, int N, float *y);

DEFINE_ROWS(rows_f32_portable, , dot_float_portable, QT_F32)
DEFINE_ROWS(rows_bf16_portable, , dot_float_portable, QT_BF16)
DEFINE_ROWS(rows_f16_portable, , dot_float_portable, QT_F16)
DEFINE_ROWS(rows_q8_0_portable, , dot_q_portable, QT_Q8_0)
DEFINE_ROWS(rows_q4_0_portable, , dot_q_portable, QT_Q4_0)

#ifdef QUANT_X86
// ---------------------------------------------------------------------------------------------
// AVX2 (+ FMA, F16C) kernels

#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

TARGET_AVX2 static AI float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// qact_quantize_portable with the same IEEE operations (max, the two divisions, x * id, rounding
// to nearest even), so the same bytes: 11 ns per 32 values instead of 48 on the EPYC (the portable
// one was a sixth of a 256 x 256 Q4_0 matvec, and x is quantized on one thread before it starts).
TARGET_AVX2 static void qact_quantize_avx2(const float *x, int n, QActBlock *out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    // packs and hadd work within 128-bit lanes: this puts their 4-byte pieces back in order
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int g = 0; g < n / QK; g++) {
        __m256 v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + g * QK + 8 * k);
        const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                       _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4), d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        out[g].d = d;
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)),
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)out[g].q, _mm256_permutevar8x32_epi32(bytes, order));
        const __m256i sum4 = _mm256_hadd_epi32(_mm256_hadd_epi32(q[0], q[1]), _mm256_hadd_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)out[g].sum8, _mm256_slli_epi32(_mm256_permutevar8x32_epi32(sum4, order), 3));
    }
}

// 8 weights from column c as fp32: bf16 is the top half of an fp32, fp16 converts with F16C
TARGET_AVX2 static AI __m256 load8_avx2(const void *w, int c, const int FMT) {
    if (FMT == QT_F32) return _mm256_loadu_ps((const float *)w + c);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + c));
    if (FMT == QT_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

TARGET_AVX2 static AI void dot_float_avx2(const void *w, size_t rb, const void *x, size_t xs, int cols, float *out,
                                          size_t os, const int FMT, const int MR, const int NX) {
    // two accumulators per (weight row, x row) pair (16 registers hold MR * NX * 2 <= 8 of them and
    // the loaded weights); with MR * NX >= 4 that is enough independent chains to hide FMA latency
    enum { U = 2 };
    const float *xf = (const float *)x;
    __m256 acc[4][NX_MAX][U];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++)
            for (int u = 0; u < U; u++) acc[m][j][u] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 * U <= cols; c += 8 * U)
        for (int u = 0; u < U; u++) {
            __m256 wv[4];
            for (int m = 0; m < MR; m++) wv[m] = load8_avx2(row_at(w, rb, m), c + 8 * u, FMT);
            if (FMT != QT_F32 && u == 0)
                for (int m = 0; m < MR; m++)
                    _mm_prefetch((const char *)row_at(w, rb, m) + (size_t)c * 2 + PREFETCH_BYTES, _MM_HINT_T1);
            for (int j = 0; j < NX; j++) {
                const __m256 xv = _mm256_loadu_ps(xf + j * xs + c + 8 * u);
                for (int m = 0; m < MR; m++) acc[m][j][u] = _mm256_fmadd_ps(wv[m], xv, acc[m][j][u]);
            }
        }
    for (; c + 8 <= cols; c += 8)
        for (int m = 0; m < MR; m++) {
            const __m256 wv = load8_avx2(row_at(w, rb, m), c, FMT);
            for (int j = 0; j < NX; j++) acc[m][j][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xf + j * xs + c), acc[m][j][0]);
        }
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++) {
            __m256 t = acc[m][j][0];
            for (int u = 1; u < U; u++) t = _mm256_add_ps(t, acc[m][j][u]);
            float s = hsum_avx2(t);
            for (int k = c; k < cols; k++) s += weight_at(row_at(w, rb, m), k, FMT) * xf[j * xs + k];
            out[j * os + m] = s;
        }
}

// weight group b as 32 bytes: Q8_0's signed codes, or Q4_0's unsigned codes 0..15 (low nibbles are
// weights 0..15, high nibbles 16..31)
TARGET_AVX2 static AI __m256i load_group_avx2(const void *w, int b, float *d, const int FMT) {
    if (FMT == QT_Q8_0) {
        const BlockQ8 *B = (const BlockQ8 *)w + b;
        *d = _cvtsh_ss(B->d);
        return _mm256_loadu_si256((const __m256i *)B->q);
    }
    const BlockQ4 *B = (const BlockQ4 *)w + b;
    *d = _cvtsh_ss(B->d);
    const __m128i raw = _mm_loadu_si128((const __m128i *)B->qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
}

// acc[m][j] += d_w * d_x * (8 int32 partial sums of group b). maddubs multiplies unsigned by
// signed bytes: Q8_0 gives it |w| and x with w's sign; Q4_0 gives it the codes 0..15 and takes
// 8 * (the sums of x) off after. |w| <= 127 and |x| <= 127 keep its int16 pair sums exact.
TARGET_AVX2 static AI void group_step_avx2(const void *w, size_t rb, const QActBlock *x, size_t xs, int b,
                                           __m256 acc[4][NX_MAX], const int FMT, const int MR, const int NX) {
    float dw[4];
    __m256i qw[4], aw[4];
    const __m256i ones = _mm256_set1_epi16(1);
    for (int m = 0; m < MR; m++) {
        qw[m] = load_group_avx2(row_at(w, rb, m), b, &dw[m], FMT);
        _mm_prefetch((const char *)row_at(w, rb, m) + (size_t)b * (FMT == QT_Q8_0 ? sizeof(BlockQ8) : sizeof(BlockQ4)) +
                         PREFETCH_BYTES, _MM_HINT_T1);
        aw[m] = FMT == QT_Q8_0 ? _mm256_sign_epi8(qw[m], qw[m]) : qw[m];
    }
    for (int j = 0; j < NX; j++) {
        const QActBlock *a = x + j * xs + b;
        const __m256i qx = _mm256_loadu_si256((const __m256i *)a->q);
        for (int m = 0; m < MR; m++) {
            __m256i p;
            if (FMT == QT_Q8_0) p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[m], _mm256_sign_epi8(qx, qw[m])), ones);
            else p = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(aw[m], qx), ones),
                                      _mm256_loadu_si256((const __m256i *)a->sum8));
            acc[m][j] = _mm256_fmadd_ps(_mm256_set1_ps(dw[m] * a->d), _mm256_cvtepi32_ps(p), acc[m][j]);
        }
    }
}

TARGET_AVX2 static AI void dot_q_avx2(const void *w, size_t rb, const void *x, size_t xs, int cols, float *out,
                                      size_t os, const int FMT, const int MR, const int NX) {
    const QActBlock *xa = (const QActBlock *)x;
    __m256 acc[4][NX_MAX];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++) acc[m][j] = _mm256_setzero_ps();
    for (int b = 0; b < cols / QK; b++) group_step_avx2(w, rb, xa, xs, b, acc, FMT, MR, NX);
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++) out[j * os + m] = hsum_avx2(acc[m][j]);
}

DEFINE_ROWS(rows_f32_avx2, TARGET_AVX2, dot_float_avx2, QT_F32)
DEFINE_ROWS(rows_bf16_avx2, TARGET_AVX2, dot_float_avx2, QT_BF16)
DEFINE_ROWS(rows_f16_avx2, TARGET_AVX2, dot_float_avx2, QT_F16)
DEFINE_ROWS(rows_q8_0_avx2, TARGET_AVX2, dot_q_avx2, QT_Q8_0)
DEFINE_ROWS(rows_q4_0_avx2, TARGET_AVX2, dot_q_avx2, QT_Q4_0)

// ---------------------------------------------------------------------------------------------
// AVX-512 (F, BW, VL) kernels: the float formats at twice the AVX2 width. The grouped formats keep
// the AVX2 kernels: the 34- and 18-byte blocks put two groups in one 512-bit register only through
// cross-lane inserts, and such kernels (two groups per register, Q4_0's nibbles spread by 128-bit
// inserts, w's sign applied under a mask) did not win: on the one AVX-512 CPU at hand (a Xeon,
// Cooper Lake, in a VM), one thread, interleaved with the AVX2 ones, best of 12, they ran at
// 0.81-1.01x (Q8_0) and 0.92-1.01x (Q4_0) of the AVX2 speed on 256x256, 1024x4096 and 8192x4096;
// the float formats ran at 0.98-1.20x (the gain on the in-cache 256x256).

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

TARGET_AVX512 static AI __m512 load16_avx512(const void *w, int c, const int FMT) {
    if (FMT == QT_F32) return _mm512_loadu_ps((const float *)w + c);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + c));
    if (FMT == QT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

TARGET_AVX512 static AI void dot_float_avx512(const void *w, size_t rb, const void *x, size_t xs, int cols,
                                              float *out, size_t os, const int FMT, const int MR, const int NX) {
    enum { U = 2 };  // as in dot_float_avx2
    const float *xf = (const float *)x;
    __m512 acc[4][NX_MAX][U];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++)
            for (int u = 0; u < U; u++) acc[m][j][u] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 * U <= cols; c += 16 * U)
        for (int u = 0; u < U; u++) {
            __m512 wv[4];
            for (int m = 0; m < MR; m++) wv[m] = load16_avx512(row_at(w, rb, m), c + 16 * u, FMT);
            if (FMT != QT_F32 && u == 0)
                for (int m = 0; m < MR; m++)
                    _mm_prefetch((const char *)row_at(w, rb, m) + (size_t)c * 2 + PREFETCH_BYTES, _MM_HINT_T1);
            for (int j = 0; j < NX; j++) {
                const __m512 xv = _mm512_loadu_ps(xf + j * xs + c + 16 * u);
                for (int m = 0; m < MR; m++) acc[m][j][u] = _mm512_fmadd_ps(wv[m], xv, acc[m][j][u]);
            }
        }
    for (; c + 16 <= cols; c += 16)
        for (int m = 0; m < MR; m++) {
            const __m512 wv = load16_avx512(row_at(w, rb, m), c, FMT);
            for (int j = 0; j < NX; j++) acc[m][j][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xf + j * xs + c), acc[m][j][0]);
        }
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < NX; j++) {
            __m512 t = acc[m][j][0];
            for (int u = 1; u < U; u++) t = _mm512_add_ps(t, acc[m][j][u]);
            float s = _mm512_reduce_add_ps(t);
            for (int k = c; k < cols; k++) s += weight_at(row_at(w, rb, m), k, FMT) * xf[j * xs + k];
            out[j * os + m] = s;
        }
}

DEFINE_ROWS(rows_f32_avx512, TARGET_AVX512, dot_float_avx512, QT_F32)
DEFINE_ROWS(rows_bf16_avx512, TARGET_AVX512, dot_float_avx512, QT_BF16)
DEFINE_ROWS(rows_f16_avx512, TARGET_AVX512, dot_float_avx512, QT_F16)
#endif

static const RowsFn KERNELS[QK_COUNT][QT_COUNT] = {
    {rows_f32_portable, rows_bf16_portable, rows_f16_portable, rows_q8_0_portable, rows_q4_0_portable},
#ifdef QUANT_X86
    {rows_f32_avx2, rows_bf16_avx2, rows_f16_avx2, rows_q8_0_avx2, rows_q4_0_avx2},
    {rows_f32_avx512, rows_bf16_avx512, rows_f16_avx512, rows_q8_0_avx2, rows_q4_0_avx2},
#endif
};

// ---------------------------------------------------------------------------------------------
// kernel selection

static const char *const KERNEL_NAMES[QK_COUNT] = {"portable", "avx2", "avx512"};
static QKernel g_kernel;
static pthread_once_t g_kernel_once = PTHREAD_ONCE_INIT;

const char *qkernel_name(QKernel k) { return (unsigned)k < QK_COUNT ? KERNEL_NAMES[k] : "unknown"; }

int qkernel_supported(QKernel k) {
    if (k == QK_PORTABLE) return 1;
#ifdef QUANT_X86
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    if (k == QK_AVX2) return avx2;
    if (k == QK_AVX512)
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

static void kernel_init(void) {
    g_kernel = qkernel_supported(QK_AVX512) ? QK_AVX512 : qkernel_supported(QK_AVX2) ? QK_AVX2 : QK_PORTABLE;
    const char *env = getenv("LAB_QKERNEL");
    if (!env || !*env) return;
    for (int k = 0; k < QK_COUNT; k++)
        if (strcmp(env, KERNEL_NAMES[k]) == 0) {
            if (!qkernel_supported((QKernel)k))
                lab_die("LAB_QKERNEL=%s: this CPU cannot run that kernel (it runs %s)", env, qkernel_name(g_kernel));
            g_kernel = (QKernel)k;
            return;
        }
    lab_die("LAB_QKERNEL: expected portable, avx2 or avx512, found '%s'", env);
}

QKernel qkernel_active(void) {
    pthread_once(&g_kernel_once, kernel_init);
    return g_kernel;
}

int qkernel_force(QKernel k) {
    pthread_once(&g_kernel_once, kernel_init);
    if ((unsigned)k >= QK_COUNT || !qkernel_supported(k)) return -1;
    g_kernel = k;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the product

typedef void (*ActFn)(const float *x, int n, QActBlock *out);

static ActFn act_fn(void) {
#ifdef QUANT_X86
    if (qkernel_active() != QK_PORTABLE) return qact_quantize_avx2;
#endif
    return qact_quantize_portable;
}

void qact_quantize(const float *x, int n, QActBlock *out) { act_fn()(x, n, out); }

// On 2 cores (AMD EPYC, libgomp; lab-qbench's small-matvec table, two quiet runs) an empty parallel
// region cost 1.4 us. A 256 x 256 matvec (65536 weights) took 3.3-5.8 us on one thread, and two
// threads ran it anywhere from 1.5x faster to 1.4x slower by format and run; from 512 x 256 on,
// two threads were faster (1.06-1.9x) in all readings but one (Q8_0, 0.87x). So a product takes a
// second thread from 2 x 65536 weights on.
static size_t g_parallel_min_weights = 65536;

void qmat_set_parallel_min_weights(size_t weights) { g_parallel_min_weights = weights; }
size_t qmat_parallel_min_weights(void) { return g_parallel_min_weights; }

int qmat_matmul_threads(const QMat *q, int N) {
    // inside any parallel region (even a team of one, where omp_in_parallel() is false) a product
    // runs on the calling thread: nested regions would start threads of their own
    const int max = omp_get_level() > 0 ? 1 : omp_get_max_threads();
    if (g_parallel_min_weights == 0) return max;
    const double per = (double)q->rows * q->cols * N / (double)g_parallel_min_weights;
    return per >= max ? max : per < 1 ? 1 : (int)per;
}

// OpenBLAS called from inside a parallel region must run on one thread: the OpenMP build does that
// by itself (and there openblas_set_num_threads would change our own thread count); the pthread
// build is told to, and restored after. (The same reasoning as backend_cpu.c's sgemm_split.)
static int blas_serial_begin(void) {
    if (openblas_get_parallel() == 2) return 0;
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return threads;
}

// y (N, rows) = x (N, cols) @ W^T by sgemm, each thread on its rows of W (in multiples of 16, the
// sgemm kernels' unroll)
static void sgemm_rows(const QMat *q, const float *x, int N, float *y, int threads) {
    const int rows = q->rows, cols = q->cols;
    const int blas_threads = blas_serial_begin();
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int per = ((rows + nt - 1) / nt + 15) / 16 * 16;
        const int r0 = t * per < rows ? t * per : rows, r1 = r0 + per < rows ? r0 + per : rows;
        if (r0 < r1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r1 - r0, cols, 1.0f, x, cols,
                        (const float *)q->data + (size_t)r0 * cols, cols, 0.0f, y + r0, rows);
    }
    if (blas_threads) openblas_set_num_threads(blas_threads);
}

// the quantized x of the grouped products, kept per calling thread and grown as needed
static _Thread_local QActBlock *g_act;
static _Thread_local size_t g_act_cap;

static QActBlock *act_buffer(size_t blocks) {
    if (blocks > g_act_cap) {
        g_act = lab_realloc(g_act, blocks * sizeof(QActBlock));
        g_act_cap = blocks;
    }
    return g_act;
}

void qmat_matmul(const QMat *q, const float *x, int N, float *y) {
    if (N <= 0) return;
    const int threads = qmat_matmul_threads(q, N), rows = q->rows, cols = q->cols;
    if (q->type == QT_F32 && N > NX_MAX) {
        sgemm_rows(q, x, N, y, threads);
        return;
    }
    const RowsFn rows_fn = KERNELS[qkernel_active()][q->type];
    const int grouped = qtype_is_grouped(q->type), nb = cols / QK;
    const void *xk = x;
    const ActFn quantize = act_fn();
    // x is quantized inside the parallel region only when there are rows of x to share out
    const int quantize_inside = grouped && threads > 1 && N >= threads;
    if (grouped) {
        QActBlock *xa = act_buffer((size_t)N * nb);
        if (!quantize_inside)
            for (int n = 0; n < N; n++) quantize(x + (size_t)n * cols, cols, xa + (size_t)n * nb);
        xk = xa;
    }
    if (threads == 1) {  // no parallel region at all: even a one-thread team costs a call into libgomp
        rows_fn(q, 0, rows, xk, N, y);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        if (quantize_inside) {
            QActBlock *xa = (QActBlock *)xk;
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) quantize(x + (size_t)n * cols, cols, xa + (size_t)n * nb);
        }
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        // shares start on multiples of 4, the batch-1 tile
        const int r0 = (int)((int64_t)rows * t / nt) & ~3, r1 = t == nt - 1 ? rows : (int)((int64_t)rows * (t + 1) / nt) & ~3;
        rows_fn(q, r0, r1, xk, N, y);
    }
}
