// quant: names, parsing and bits per weight (bytes * 8 / weights exactly); fp16 / bf16 rounding of
// chosen values (ties to even, subnormals, overflow to inf, NaN stays NaN), every fp16 and bf16
// value decoded against an ldexp reference and round-tripped, fp32 -> fp16 against F16C on random
// bit patterns where the CPU has it and against a nearest-neighbour check everywhere;
// quantize -> dequantize error bounds per format (Q8_0 and Q4_0 within d/2 of every weight, bf16 and
// fp16 within 2^-8 and 2^-11 relative) on weights with zero groups, outliers, tiny groups and
// groups that defeat Q4_0's -m/8 scale; the activation quantization of every kernel bit for bit
// against a scalar re-implementation. For every format and every kernel this CPU runs: the product against a double
// reference that reads the documented block bytes and does the same math (integer group sums for
// Q8_0 / Q4_0) within a float rounding bound, and against the true fp32 product within the bound
// the quantization errors allow, on odd shapes and N = 1, 3, 4, 17. The same bytes and the same
// products for 1 and 2 threads; LAB_QKERNEL honoured and checked; bad shapes and weights die.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "test_util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---------------------------------------------------------------------------------------------
// independent decoders of the stored formats, for the references

static double ref_fp16(uint16_t h) {
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

static double ref_bf16(uint16_t h) {
    int e = (h >> 7) & 0xFF, m = h & 0x7F;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
    return h & 0x8000 ? -v : v;
}

static size_t block_bytes(QType t) { return t == QT_Q8_0 ? 34 : 18; }

static const uint8_t *block_at(const QMat *q, int r, int g) {
    return (const uint8_t *)q->data + (size_t)r * qmat_row_bytes(q->type, q->cols) + (size_t)g * block_bytes(q->type);
}

static double block_scale(const QMat *q, int r, int g) {
    const uint8_t *p = block_at(q, r, g);
    return ref_fp16((uint16_t)(p[0] | p[1] << 8));
}

// the integer code of weight i of group g (the value is code * scale)
static int block_code(const QMat *q, int r, int g, int i) {
    const uint8_t *p = block_at(q, r, g) + 2;
    if (q->type == QT_Q8_0) return (int8_t)p[i];
    return i < 16 ? (p[i] & 0x0F) - 8 : (p[i - 16] >> 4) - 8;
}

// the stored weight (r, c) in double, from the bytes
static double stored_weight(const QMat *q, int r, int c) {
    const uint8_t *row = (const uint8_t *)q->data + (size_t)r * qmat_row_bytes(q->type, q->cols);
    switch (q->type) {
    case QT_F32: return ((const float *)row)[c];
    case QT_BF16: return ref_bf16(((const uint16_t *)row)[c]);
    case QT_F16: return ref_fp16(((const uint16_t *)row)[c]);
    default: return block_code(q, r, c / QK, c % QK) * block_scale(q, r, c / QK);
    }
}

// ---------------------------------------------------------------------------------------------
// test data

// Weights (rows, cols): N(0,1) times a per-row scale from 1e-3 to 1, and per row (cycling) a zero
// first group, an outlier, a group whose opposite extremes are 1 and 0.97 (Q4_0's -m/8 scale would
// clamp the 0.97), one whose extremes are 1 and 0.9 (it would not), and a group of ~1e-6 (an fp16
// scale far below the smallest normal).
static float *make_weights(int rows, int cols, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    float *w = lab_malloc((size_t)rows * cols * sizeof(float));
    for (int r = 0; r < rows; r++) {
        float scale = powf(10.0f, -3.0f * rng_uniform(&rng)), *wr = w + (size_t)r * cols;
        for (int c = 0; c < cols; c++) wr[c] = scale * rng_normal(&rng);
        int n = cols < QK ? cols : QK;
        switch (r % 6) {
        case 1:
            for (int c = 0; c < n; c++) wr[c] = 0;
            break;
        case 2: wr[n / 2] = 20 * scale; break;
        case 3:
            for (int c = 0; c < n; c++) wr[c] = 0.5f * scale * (rng_uniform(&rng) - 0.5f);
            wr[0] = -scale;
            if (n > 5) wr[5] = 0.97f * scale;
            break;
        case 4:
            for (int c = 0; c < n; c++) wr[c] = 0.5f * scale * (rng_uniform(&rng) - 0.5f);
            wr[0] = scale;
            if (n > 7) wr[7] = -0.9f * scale;
            break;
        case 5:
            for (int c = 0; c < n; c++) wr[c] = 1e-6f * rng_normal(&rng);
            break;
        }
    }
    return w;
}

// x (N, cols): N(0,1), with the second group of row 1 zero (a zero activation scale)
static float *make_x(int N, int cols, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    float *x = lab_malloc((size_t)N * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)N * cols; i++) x[i] = rng_normal(&rng);
    if (N > 1 && cols >= 2 * QK) memset(x + cols + QK, 0, QK * sizeof(float));
    return x;
}

// ---------------------------------------------------------------------------------------------
// names, sizes

static void test_names_and_sizes(void) {
    const char *names[QT_COUNT] = {"f32", "bf16", "f16", "q8_0", "q4_0"};
    const double bits[QT_COUNT] = {32, 16, 16, 8.5, 4.5};
    for (int t = 0; t < QT_COUNT; t++) {
        QType p;
        CHECK(strcmp(qtype_name((QType)t), names[t]) == 0, "type %d: expected name %s, found %s", t, names[t],
              qtype_name((QType)t));
        CHECK(qtype_parse(names[t], &p) == 0 && p == (QType)t, "parse %s: expected type %d", names[t], t);
        CHECK(qtype_bits_per_weight((QType)t) == bits[t], "%s: expected %g bits per weight, found %g", names[t], bits[t],
              qtype_bits_per_weight((QType)t));
        const int shapes[3][2] = {{37, 96}, {5, 32}, {130, 1024}};
        for (int s = 0; s < 3; s++) {
            int rows = shapes[s][0], cols = shapes[s][1];
            float *w = make_weights(rows, cols, 1);
            QMat q;
            qmat_quantize(&q, (QType)t, w, rows, cols);
            double got = q.bytes * 8.0 / ((double)rows * cols);
            CHECK(got == bits[t], "%s %d x %d: bytes * 8 / weights = %.17g, expected %g", names[t], rows, cols, got, bits[t]);
            CHECK(q.rows == rows && q.cols == cols && q.type == (QType)t && ((uintptr_t)q.data % 64) == 0,
                  "%s: shape, type or 64-byte alignment not kept", names[t]);
            qmat_free(&q);
            free(w);
        }
    }
    QType p = QT_F32;
    CHECK(qtype_parse("q5_0", &p) == -1 && qtype_parse("F32", &p) == -1 && qtype_parse("", &p) == -1,
          "unknown type names must not parse");
    CHECK(strcmp(qkernel_name(QK_PORTABLE), "portable") == 0 && strcmp(qkernel_name(QK_AVX2), "avx2") == 0 &&
              strcmp(qkernel_name(QK_AVX512), "avx512") == 0, "kernel names");
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16

static void test_half_rounding_values(void) {
    const struct { float f; uint16_t h; const char *why; } fp16[] = {
        {1.0f, 0x3C00, "one"},
        {-2.0f, 0xC000, "minus two"},
        {0.0f, 0x0000, "zero"},
        {-0.0f, 0x8000, "negative zero keeps its sign"},
        {1.0f + 0x1p-11f, 0x3C00, "tie between 1 and 1+2^-10 goes to even 1"},
        {1.0f + 3 * 0x1p-11f, 0x3C02, "tie between 1+2^-10 and 1+2^-9 goes to even"},
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3C01, "just above the tie rounds up"},
        {65504.0f, 0x7BFF, "largest finite"},
        {65519.0f, 0x7BFF, "below 65520 rounds to 65504"},
        {65520.0f, 0x7C00, "65520 ties to even: inf"},
        {1e6f, 0x7C00, "overflow to inf"},
        {-1e6f, 0xFC00, "overflow to -inf"},
        {INFINITY, 0x7C00, "inf"},
        {0x1p-14f, 0x0400, "smallest normal"},
        {0x1p-24f, 0x0001, "smallest subnormal"},
        {1023 * 0x1p-24f, 0x03FF, "largest subnormal"},
        {1023.5f * 0x1p-24f, 0x0400, "tie above the largest subnormal goes to even: smallest normal"},
        {0x1p-25f, 0x0000, "half the smallest subnormal ties to 0"},
        {0x1.8p-25f, 0x0001, "three quarters of the smallest subnormal rounds up"},
        {3 * 0x1p-25f, 0x0002, "1.5 subnormal steps ties to even 2"},
        {1e-10f, 0x0000, "underflow to 0"},
    };
    for (size_t i = 0; i < sizeof fp16 / sizeof fp16[0]; i++) {
        uint16_t got = qfp32_to_fp16(fp16[i].f);
        CHECK(got == fp16[i].h, "fp16(%a) (%s): expected 0x%04X, found 0x%04X", fp16[i].f, fp16[i].why, fp16[i].h, got);
    }
    const struct { uint32_t f; uint16_t h; const char *why; } bf16[] = {
        {0x3F800000, 0x3F80, "one"},
        {0x3F808000, 0x3F80, "tie goes to even (down)"},
        {0x3F818000, 0x3F82, "tie goes to even (up)"},
        {0x3F808001, 0x3F81, "just above the tie rounds up"},
        {0x7F7FFFFF, 0x7F80, "FLT_MAX rounds to inf"},
        {0xFF7FFFFF, 0xFF80, "-FLT_MAX rounds to -inf"},
        {0x7F800000, 0x7F80, "inf"},
        {0x80000000, 0x8000, "negative zero"},
        {0x00000001, 0x0000, "the smallest fp32 subnormal rounds to 0"},
    };
    for (size_t i = 0; i < sizeof bf16 / sizeof bf16[0]; i++) {
        uint16_t got = qfp32_to_bf16(from_bits(bf16[i].f));
        CHECK(got == bf16[i].h, "bf16(0x%08X) (%s): expected 0x%04X, found 0x%04X", bf16[i].f, bf16[i].why, bf16[i].h, got);
    }
    // NaN stays NaN, quiet or signalling, either sign; a payload in the dropped bits only must not become inf
    const uint32_t nans[] = {0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FBFFFFF, 0x7F802000};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        float f = from_bits(nans[i]);
        uint16_t h = qfp32_to_fp16(f), b = qfp32_to_bf16(f);
        CHECK((h & 0x7C00) == 0x7C00 && (h & 0x3FF) && (h >> 15) == (nans[i] >> 31), "fp16(NaN 0x%08X) = 0x%04X: not a NaN of the same sign", nans[i], h);
        CHECK((b & 0x7F80) == 0x7F80 && (b & 0x7F) && (b >> 15) == (nans[i] >> 31), "bf16(NaN 0x%08X) = 0x%04X: not a NaN of the same sign", nans[i], b);
        CHECK(isnan(qfp16_to_fp32(h)) && isnan(qbf16_to_fp32(b)), "NaN 0x%08X does not decode to NaN", nans[i]);
    }
}

#ifdef HAVE_X86
__attribute__((target("f16c"))) static uint16_t hw_fp16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) static float hw_fp16_to_fp32(uint16_t h) { return _cvtsh_ss(h); }
#endif

// every 16-bit value: decodes to ref_fp16 / ref_bf16 exactly and encodes back to itself
static void test_half_exhaustive(void) {
    int bad16 = 0, bad_bf = 0, bad_hw = 0;
#ifdef HAVE_X86
    const int f16c = __builtin_cpu_supports("f16c");
#endif
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qfp16_to_fp32((uint16_t)h), b = qbf16_to_fp32((uint16_t)h);
        double rf = ref_fp16((uint16_t)h), rb = ref_bf16((uint16_t)h);
        if (isnan(rf) ? !isnan(f) : (f != rf || qfp32_to_fp16(f) != h || !!signbit(f) != !!(h & 0x8000))) bad16++;
        if (isnan(rb) ? !isnan(b) : (b != rb || qfp32_to_bf16(b) != h || !!signbit(b) != !!(h & 0x8000))) bad_bf++;
#ifdef HAVE_X86
        if (f16c && !isnan(rf) && hw_fp16_to_fp32((uint16_t)h) != f) bad_hw++;
#endif
    }
    CHECK(bad16 == 0, "%d fp16 values decode wrong or do not round-trip", bad16);
    CHECK(bad_bf == 0, "%d bf16 values decode wrong or do not round-trip", bad_bf);
    CHECK(bad_hw == 0, "%d fp16 values decode differently from F16C", bad_hw);
}

// For random bit patterns: the result is the nearest representable value, ties to the even
// code (checked against the two neighbouring codes in double), and equal to F16C where present.
static void test_half_random(void) {
    Rng rng;
    rng_seed(&rng, 11);
    int bad_near16 = 0, bad_nearbf = 0, bad_hw = 0, compared_hw = 0;
#ifdef HAVE_X86
    const int f16c = __builtin_cpu_supports("f16c");
#endif
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rng_u64(&rng);
        // half the draws in the exponent range where fp16 is normal or subnormal
        if (i & 1) u = (u & 0x807FFFFF) | (uint32_t)(100 + rng_below(&rng, 44)) << 23;
        float f = from_bits(u);
        if (isnan(f)) continue;
        uint16_t h = qfp32_to_fp16(f), b = qfp32_to_bf16(f);
        double fd = f, ef = fabs(ref_fp16(h) - fd), eb = fabs(ref_bf16(b) - fd);
        for (int step = -1; step <= 1; step += 2) {
            uint16_t nh = (uint16_t)(h + step), nb = (uint16_t)(b + step);
            // a neighbour code of the same sign class that is finite and strictly closer (or as close
            // and even while h is odd) means h is not the round-to-nearest-even result
            if ((nh & 0x7C00) != 0x7C00 && (nh & 0x8000) == (h & 0x8000) && isfinite(ref_fp16(h))) {
                double en = fabs(ref_fp16(nh) - fd);
                if (en < ef || (en == ef && (h & 1))) bad_near16++;
            }
            if ((nb & 0x7F80) != 0x7F80 && (nb & 0x8000) == (b & 0x8000) && isfinite(ref_bf16(b))) {
                double en = fabs(ref_bf16(nb) - fd);
                if (en < eb || (en == eb && (b & 1))) bad_nearbf++;
            }
        }
#ifdef HAVE_X86
        if (f16c) {
            compared_hw++;
            if (hw_fp16(f) != h) bad_hw++;
        }
#endif
    }
    CHECK(bad_near16 == 0, "%d fp32 -> fp16 conversions are not the nearest (ties to even)", bad_near16);
    CHECK(bad_nearbf == 0, "%d fp32 -> bf16 conversions are not the nearest (ties to even)", bad_nearbf);
    CHECK(bad_hw == 0, "%d of %d fp32 -> fp16 conversions differ from F16C", bad_hw, compared_hw);
    printf("fp16/bf16: 2M random patterns nearest-even; %d compared with F16C\n", compared_hw);
}

// ---------------------------------------------------------------------------------------------
// quantize -> dequantize

static void test_quantize_bounds(void) {
    const int rows = 61, cols = 320;
    float *w = make_weights(rows, cols, 3), *back = lab_malloc((size_t)rows * cols * sizeof(float));
    for (int t = 0; t < QT_COUNT; t++) {
        QMat q;
        qmat_quantize(&q, (QType)t, w, rows, cols);
        qmat_dequantize(&q, back);
        int bad = 0, bad_stored = 0, big_code = 0;
        double worst = 0;  // max error / allowed error
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                size_t i = (size_t)r * cols + c;
                double err = fabs((double)back[i] - w[i]), allowed;
                if (back[i] != (float)stored_weight(&q, r, c)) bad_stored++;
                if (t == QT_F32) allowed = 0;
                else if (t == QT_BF16) allowed = ldexp(fabs(w[i]), -8);
                else if (t == QT_F16) allowed = fmax(ldexp(fabs(w[i]), -11), 0x1p-25);  // subnormal spacing 2^-24
                else {
                    double d = fabs(block_scale(&q, r, c / QK));
                    // d/2, plus the rounding of code * d in fp32 (dequantize) and of w / d
                    allowed = d / 2 + ldexp(fabs(w[i]) + d, -22);
                    if (t == QT_Q8_0 && abs(block_code(&q, r, c / QK, c % QK)) > 127) big_code++;
                }
                if (err > allowed) bad++;
                if (allowed > 0) worst = fmax(worst, err / allowed);
            }
        CHECK(bad == 0, "%s: %d weights beyond the error bound (worst at %.3f of the bound)", qtype_name((QType)t), bad, worst);
        CHECK(bad_stored == 0, "%s: %d dequantized weights differ from the bytes read by the documented layout",
              qtype_name((QType)t), bad_stored);
        CHECK(big_code == 0, "%s: %d codes outside [-127, 127]", qtype_name((QType)t), big_code);
        printf("%-4s quantize -> dequantize: worst error at %.3f of the bound\n", qtype_name((QType)t), worst);
        if (t == QT_Q4_0) {
            // which groups took d = -m/8: those where every weight then rounds into [-8, 7] (the
            // documented rule), which excludes the first group of rows 3 mod 6 and includes that of
            // rows 4 mod 6 (built so)
            int symmetric = 0, wrong = 0;
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < cols / QK; g++) {
                    const float *wg = w + (size_t)r * cols + g * QK;
                    float m = 0;
                    for (int i = 0; i < QK; i++)
                        if (fabsf(wg[i]) > fabsf(m)) m = wg[i];
                    const double d = ref_fp16(qfp32_to_fp16(-m / 8));
                    int fits = d != 0;
                    for (int i = 0; i < QK; i++) fits &= fabs(nearbyint(wg[i] / d) + 0.5) <= 8;  // in [-8, 7]
                    const int took_m8 = block_scale(&q, r, g) == d;
                    symmetric += !took_m8;
                    wrong += took_m8 != fits && m != 0;
                    if (g == 0 && r % 6 == 3) wrong += took_m8;
                    if (g == 0 && r % 6 == 4) wrong += !took_m8;
                }
            CHECK(wrong == 0, "q4_0: %d groups took the wrong scale rule", wrong);
            printf("q4_0: %d of %d groups took the symmetric scale max|w|/7\n", symmetric, rows * cols / QK);
        }
        qmat_free(&q);
    }
    // Q4_0 by hand: m = -1 gives d = 1/8 and every weight on the grid; m = -1 with 0.97 on the other
    // side takes d = 1/7 (rounded up to fp16) instead, so 0.97 is not clamped to 7/8.
    float g[QK] = {0};
    for (int i = 0; i < QK; i++) g[i] = (i % 16 - 8) / 8.0f;
    QMat q;
    qmat_quantize(&q, QT_Q4_0, g, 1, QK);
    float out[QK];
    qmat_dequantize(&q, out);
    CHECK(block_scale(&q, 0, 0) == 0.125 && memcmp(out, g, sizeof g) == 0, "Q4_0 of (i%%16 - 8)/8: expected d = 1/8 "
          "and exact values, found d = %g", block_scale(&q, 0, 0));
    qmat_free(&q);
    g[3] = 0.97f;
    qmat_quantize(&q, QT_Q4_0, g, 1, QK);
    double d = block_scale(&q, 0, 0);
    CHECK(d >= 1.0 / 7 && d < 1.0 / 7 * (1 + 0x1p-10), "Q4_0 with extremes -1 and 0.97: expected d = 1/7 rounded up, found %.9g", d);
    qmat_free(&q);
    // Q8_0 by hand: max |w| = 127 gives d = 1 and integers stay exact
    for (int i = 0; i < QK; i++) g[i] = (float)(i * 8 - 127);
    qmat_quantize(&q, QT_Q8_0, g, 1, QK);
    qmat_dequantize(&q, out);
    CHECK(block_scale(&q, 0, 0) == 1.0 && memcmp(out, g, sizeof g) == 0, "Q8_0 of integers up to 127: expected d = 1 and exact");
    qmat_free(&q);
    free(w);
    free(back);
}

// the activation side: qact_quantize against a scalar re-implementation, bit for bit, and ties to even
static void ref_act_quantize(const float *x, int n, QActBlock *out) {
    for (int g = 0; g < n / QK; g++) {
        float amax = 0;
        for (int i = 0; i < QK; i++)
            if (fabsf(x[g * QK + i]) > amax) amax = fabsf(x[g * QK + i]);
        float d = amax / 127.0f, id = amax > 0 ? 1.0f / d : 0.0f;
        out[g].d = d;
        for (int i = 0; i < QK; i++) out[g].q[i] = (int8_t)lrintf(x[g * QK + i] * id);
        for (int l = 0; l < QK / 4; l++) {
            out[g].sum8[l] = 0;
            for (int i = 4 * l; i < 4 * l + 4; i++) out[g].sum8[l] += 8 * out[g].q[i];
        }
    }
}

// for every kernel this CPU runs (each has its own activation quantization)
static void test_act_quantize(void) {
    const int n = 1024;
    float *x = make_x(2, n, 5);
    for (int i = 96; i < 128; i++) x[i] *= 1e-30f;  // a group with a tiny scale (and 1/d near 1e32)
    static QActBlock got[2 * 1024 / QK], want[2 * 1024 / QK];
    ref_act_quantize(x, 2 * n, want);
    for (int k = 0; k < QK_COUNT; k++) {
        if (qkernel_force((QKernel)k) != 0) continue;
        memset(got, 0, sizeof got);
        qact_quantize(x, 2 * n, got);
        CHECK(memcmp(got, want, sizeof got) == 0, "%s kernel: qact_quantize differs from the scalar reference",
              qkernel_name((QKernel)k));
        CHECK(got[n / QK + 1].d == 0 && got[n / QK + 1].q[0] == 0 && got[n / QK + 1].sum8[0] == 0,
              "%s kernel: an all-zero group: expected d = 0, q = 0", qkernel_name((QKernel)k));
        float t[QK] = {127, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f, -127};
        QActBlock b;
        qact_quantize(t, QK, &b);
        CHECK(b.d == 1 && b.q[0] == 127 && b.q[1] == 2 && b.q[2] == 4 && b.q[3] == -2 && b.q[4] == 0 && b.q[5] == 0 &&
                  b.q[6] == 2 && b.q[7] == -127 && b.sum8[0] == 8 * 131 && b.sum8[1] == 8 * (0 + 0 + 2 - 127),
              "%s kernel: activation ties: expected 127 2 4 -2 0 0 2 -127 (sums 131, -125), found %d %d %d %d %d %d %d %d "
              "(sums %d, %d)", qkernel_name((QKernel)k), b.q[0], b.q[1], b.q[2], b.q[3], b.q[4], b.q[5], b.q[6], b.q[7],
              b.sum8[0] / 8, b.sum8[1] / 8);
    }
    free(x);
}

// ---------------------------------------------------------------------------------------------
// the product

typedef struct {
    double same_math;  // worst |y - same-math reference| / its rounding bound
    double true_fp32;  // worst |y - true fp32 product| / the quantization bound
    int bad_same, bad_true;
} ProductErrors;

// Checks y (N, rows) = x @ W^T for q (quantized from w) against both references; accumulates into e.
static void check_product(const QMat *q, const float *w, const float *x, int N, const float *y, ProductErrors *e) {
    const int rows = q->rows, cols = q->cols, nb = cols / QK, grouped = qtype_is_grouped(q->type);
    QActBlock *xa = grouped ? lab_malloc((size_t)N * nb * sizeof(QActBlock)) : NULL;
    if (grouped) ref_act_quantize(x, N * cols, xa);
    for (int n = 0; n < N; n++)
        for (int r = 0; r < rows; r++) {
            const float *xn = x + (size_t)n * cols, *wr = w + (size_t)r * cols;
            double ref = 0, mag = 0, truth = 0, quant_bound = 0, tol;
            for (int c = 0; c < cols; c++) truth += (double)wr[c] * xn[c];
            if (grouped) {
                for (int g = 0; g < nb; g++) {
                    const QActBlock *a = xa + (size_t)n * nb + g;
                    double dw = block_scale(q, r, g), sabs_x = 0, sabs_w = 0;
                    long isum = 0, iabs = 0;
                    for (int i = 0; i < QK; i++) {
                        int code = block_code(q, r, g, i);
                        isum += code * a->q[i];
                        iabs += labs((long)code * a->q[i]);
                        sabs_x += fabs(xn[g * QK + i]);
                        sabs_w += fabs(code * dw);
                    }
                    ref += dw * a->d * (double)isum;
                    mag += fabs(dw * a->d) * (double)iabs;
                    quant_bound += fabs(dw) / 2 * sabs_x + a->d / 2 * sabs_w;
                }
                tol = (nb + 24) * 0x1p-24 * mag;
            } else {
                double rel = q->type == QT_F32 ? 0 : q->type == QT_BF16 ? 0x1p-8 : 0x1p-11;
                for (int c = 0; c < cols; c++) {
                    double ws = stored_weight(q, r, c);
                    ref += ws * xn[c];
                    mag += fabs(ws * xn[c]);
                    quant_bound += rel * fabs((double)wr[c] * xn[c]) + (q->type == QT_F16 ? 0x1p-25 * fabs(xn[c]) : 0);
                }
                tol = (cols + 24) * 0x1p-24 * mag;
            }
            // the quantization bound is exact arithmetic; allow the divisions behind it one part in 2^20
            quant_bound = quant_bound * (1 + 0x1p-20) + tol;
            double got = y[(size_t)n * rows + r], err_same = fabs(got - ref), err_true = fabs(got - truth);
            if (!(err_same <= tol)) e->bad_same++;
            if (!(err_true <= quant_bound)) e->bad_true++;
            if (tol > 0) e->same_math = fmax(e->same_math, err_same / tol);
            if (quant_bound > 0) e->true_fp32 = fmax(e->true_fp32, err_true / quant_bound);
        }
    free(xa);
}

static void test_products(void) {
    // Q shapes: 1, 3 (odd), 10 and 32 groups; float shapes: tails after 64, 32, 16 and 8 columns
    const int qshapes[][2] = {{13, 32}, {37, 96}, {101, 320}, {7, 1024}};
    const int fshapes[][2] = {{37, 53}, {101, 300}, {7, 1001}, {3, 5}};
    const int Ns[] = {1, 3, 4, 17};
    for (int k = 0; k < QK_COUNT; k++) {
        if (!qkernel_supported((QKernel)k)) {
            CHECK(qkernel_force((QKernel)k) == -1, "forcing %s on a CPU without it must fail", qkernel_name((QKernel)k));
            printf("kernel %s: not supported by this CPU, not tested here\n", qkernel_name((QKernel)k));
            continue;
        }
        CHECK(qkernel_force((QKernel)k) == 0 && qkernel_active() == (QKernel)k, "forcing %s", qkernel_name((QKernel)k));
        for (int t = 0; t < QT_COUNT; t++) {
            ProductErrors e = {0};
            int cases = 0;
            for (int s = 0; s < 4; s++) {
                const int rows = qtype_is_grouped((QType)t) ? qshapes[s][0] : fshapes[s][0];
                const int cols = qtype_is_grouped((QType)t) ? qshapes[s][1] : fshapes[s][1];
                float *w = make_weights(rows, cols, 100 + s);
                QMat q;
                qmat_quantize(&q, (QType)t, w, rows, cols);
                for (int i = 0; i < 4; i++, cases++) {
                    float *x = make_x(Ns[i], cols, 200 + s * 10 + i), *y = lab_malloc((size_t)Ns[i] * rows * sizeof(float));
                    qmat_matmul(&q, x, Ns[i], y);
                    check_product(&q, w, x, Ns[i], y, &e);
                    free(x);
                    free(y);
                }
                qmat_free(&q);
                free(w);
            }
            CHECK(e.bad_same == 0, "%s kernel, %s: %d outputs beyond the rounding bound of the same-math reference "
                  "(worst %.3g of it)", qkernel_name((QKernel)k), qtype_name((QType)t), e.bad_same, e.same_math);
            CHECK(e.bad_true == 0, "%s kernel, %s: %d outputs beyond the quantization bound of the true fp32 product "
                  "(worst %.3g of it)", qkernel_name((QKernel)k), qtype_name((QType)t), e.bad_true, e.true_fp32);
            printf("kernel %-8s %-4s: %d products, worst error %.3f of the rounding bound (same math), %.3f of the "
                   "quantization bound (true fp32)\n", qkernel_name((QKernel)k), qtype_name((QType)t), cases, e.same_math,
                   e.true_fp32);
        }
    }
}

// Quantized bytes and products equal for 1 and 2 threads (every product forced to thread), and
// the products equal across kernels where the math is the same integers (the grouped formats:
// only the fp32 summation order differs, so they are compared within rounding by test_products).
static void test_thread_determinism(void) {
    const int rows = 203, cols = 512, Ns[] = {1, 3, 17};
    float *w = make_weights(rows, cols, 9);
    const size_t saved = qmat_parallel_min_weights();
    const int threads = omp_get_max_threads();
    qmat_set_parallel_min_weights(0);
    int compared = 0;
    for (int t = 0; t < QT_COUNT; t++) {
        QMat q1, q2;
        omp_set_num_threads(1);
        qmat_quantize(&q1, (QType)t, w, rows, cols);
        omp_set_num_threads(2);
        qmat_quantize(&q2, (QType)t, w, rows, cols);
        CHECK(q1.bytes == q2.bytes && memcmp(q1.data, q2.data, q1.bytes) == 0, "%s: quantized bytes differ between 1 "
              "and 2 threads", qtype_name((QType)t));
        for (int k = 0; k < QK_COUNT; k++) {
            if (qkernel_force((QKernel)k) != 0) continue;
            for (int i = 0; i < 3; i++) {
                if (t == QT_F32 && Ns[i] > 4) continue;  // sgemm: not promised
                float *x = make_x(Ns[i], cols, 300 + i);
                float *y1 = lab_malloc((size_t)Ns[i] * rows * sizeof(float)), *y2 = lab_malloc((size_t)Ns[i] * rows * sizeof(float));
                omp_set_num_threads(1);
                qmat_matmul(&q1, x, Ns[i], y1);
                omp_set_num_threads(2);
                qmat_matmul(&q1, x, Ns[i], y2);
                CHECK(memcmp(y1, y2, (size_t)Ns[i] * rows * sizeof(float)) == 0, "%s kernel, %s, N = %d: products differ "
                      "between 1 and 2 threads", qkernel_name((QKernel)k), qtype_name((QType)t), Ns[i]);
                compared++;
                free(x);
                free(y1);
                free(y2);
            }
        }
        qmat_free(&q1);
        qmat_free(&q2);
    }
    printf("thread determinism: %d products and %d quantizations compared for 1 and 2 threads\n", compared, QT_COUNT);
    omp_set_num_threads(threads);
    qmat_set_parallel_min_weights(saved);
    free(w);
}

// ---------------------------------------------------------------------------------------------
// errors and the environment (each in a child process: lab_die exits, and the kernel choice from
// LAB_QKERNEL is made once per process)

static void quantize_bad_cols(const char *type) {
    QType t;
    qtype_parse(type, &t);
    float w[3 * 100] = {0};
    QMat q;
    qmat_quantize(&q, t, w, 3, 100);
}

static void quantize_nonfinite(const char *what) {
    float w[2 * 64] = {0};
    w[64 + 40] = strcmp(what, "nan") == 0 ? NAN : strcmp(what, "inf") == 0 ? INFINITY : 1e9f;
    QMat q;
    qmat_quantize(&q, QT_Q8_0, w, 2, 64);
}

static void kernel_from_env(const char *value) {
    setenv("LAB_QKERNEL", value, 1);
    _exit(10 + (int)qkernel_active());
}

static void test_errors(void) {
    char err[1024];
    const char *types[] = {"q8_0", "q4_0"};
    for (int i = 0; i < 2; i++) {
        int code = test_run_child(quantize_bad_cols, types[i], err, sizeof err);
        CHECK(code == 1 && strstr(err, "multiple of 32") && strstr(err, "3 x 100") && strstr(err, types[i]),
              "%s with 100 columns: expected exit 1 naming the type, 'multiple of 32' and the shape, found %d '%s'",
              types[i], code, err);
    }
    const char *bad[] = {"nan", "inf", "huge"};
    for (int i = 0; i < 3; i++) {
        int code = test_run_child(quantize_nonfinite, bad[i], err, sizeof err);
        CHECK(code == 1 && strstr(err, "row 1, column 40"), "q8_0 of a %s weight: expected exit 1 naming row 1, column 40, "
              "found %d '%s'", bad[i], code, err);
    }
    for (int k = 0; k < QK_COUNT; k++) {
        int code = test_run_child(kernel_from_env, qkernel_name((QKernel)k), err, sizeof err);
        if (qkernel_supported((QKernel)k))
            CHECK(code == 10 + k, "LAB_QKERNEL=%s: expected that kernel active, found exit %d '%s'", qkernel_name((QKernel)k),
                  code, err);
        else
            CHECK(code == 1 && strstr(err, "cannot run"), "LAB_QKERNEL=%s on a CPU without it: expected exit 1, found %d '%s'",
                  qkernel_name((QKernel)k), code, err);
    }
    int code = test_run_child(kernel_from_env, "sse9", err, sizeof err);
    CHECK(code == 1 && strstr(err, "sse9") && strstr(err, "portable"), "LAB_QKERNEL=sse9: expected exit 1 naming the "
          "value and the choices, found %d '%s'", code, err);
}

int main(int argc, char **argv) {
    lab_init("test_quant", argc, argv);
    unsetenv("LAB_QKERNEL");
    test_errors();
    test_names_and_sizes();
    test_half_rounding_values();
    test_half_exhaustive();
    test_half_random();
    test_quantize_bounds();
    test_act_quantize();
    test_products();
    test_thread_determinism();
    printf("kernels this CPU runs:");
    for (int k = 0; k < QK_COUNT; k++)
        if (qkernel_supported((QKernel)k)) printf(" %s", qkernel_name((QKernel)k));
    printf("\n");
    return test_summary();
}
