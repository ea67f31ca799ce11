// quant: weights stored as fp32, bf16, fp16, int8 groups (Q8_0) or 4-bit groups (Q4_0), and the
// matmul y = x @ W^T on each of them, with AVX2 / AVX-512 kernels picked at run time and a
// portable fallback. The group formats are llama.cpp's Q8_0 and Q4_0 byte for byte:
//   Q8_0: per 32 weights, an fp16 scale d and 32 int8 q:        w = q * d         (34 bytes, 8.5 bits/weight)
//   Q4_0: per 32 weights, an fp16 scale d and 16 bytes of nibbles: w = (q - 8) * d (18 bytes, 4.5 bits/weight);
//         byte j holds weight j in its low nibble and weight j + 16 in its high nibble.
// The Q8_0/Q4_0 products quantize each row of x to int8 groups of 32 first (QActBlock) and sum
// integer products inside a group, as llama.cpp does; everything else works in fp32.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { QT_F32, QT_BF16, QT_F16, QT_Q8_0, QT_Q4_0 } QType;
#define QT_COUNT 5
#define QK 32  // weights per group in Q8_0 and Q4_0

const char *qtype_name(QType t);           // "f32", "bf16", "f16", "q8_0", "q4_0"
int qtype_parse(const char *s, QType *t);  // 0 ok, -1 unknown
double qtype_bits_per_weight(QType t);     // 32, 16, 16, 8.5, 4.5
int qtype_is_grouped(QType t);             // Q8_0 and Q4_0: cols must be a multiple of QK

// W (rows = out features, cols = in features), row-major, in `bytes` bytes at data (64-byte aligned).
typedef struct {
    QType type;
    int rows, cols;
    void *data;
    size_t bytes;
} QMat;

size_t qmat_row_bytes(QType t, int cols);

// Quantizes w (rows, cols): bf16 and fp16 round to nearest even (overflow to inf, NaN stays NaN).
// Q8_0: d = max|w| / 127 rounded up to fp16, q = round(w / d). Q4_0: d = -m / 8 (m the group's
// weight of largest magnitude, so m itself is exact) when every weight then rounds into [-8, 7],
// else d = max|w| / 7 rounded up to fp16; q = round(w / d) + 8. Either way every weight is within
// d/2 of its value. Rounding is to nearest even throughout, so the bytes depend on w alone.
// Dies when cols is not a multiple of 32 for Q8_0/Q4_0, or a weight is not finite or too large
// for an fp16 scale.
void qmat_quantize(QMat *q, QType t, const float *w, int rows, int cols);
void qmat_dequantize(const QMat *q, float *w);  // w (rows, cols)
void qmat_free(QMat *q);

// y (N, rows) = x (N, cols) @ W^T. Parallel over output rows (OpenMP); each weight row is read once
// per 4 rows of x, and with one row of x (decode) four weight rows share each load of x. Each y
// value is computed the same way whatever the thread count, so results are identical for any
// count; the exception is F32 with N > 4, which goes to OpenBLAS sgemm.
void qmat_matmul(const QMat *q, const float *x, int N, float *y);

// The product threads only when each thread gets at least this many weights (rows * cols * N):
// below it, OpenMP's fork and join cost more than they save (see tests/bench/quant_bench.sh).
// Counted in weights, not bytes, since a Q4_0 weight costs about as much time as an fp32 one.
// 0 threads every product; for benchmarks and tests.
void qmat_set_parallel_min_weights(size_t weights);
size_t qmat_parallel_min_weights(void);
int qmat_matmul_threads(const QMat *q, int N);  // the thread count qmat_matmul(q, x, N, y) uses now

// x quantized for the Q8_0/Q4_0 products: per group of 32, d = max|x| / 127 (fp32, not rounded),
// q = round-to-nearest-even(x * (1/d)); d = 0 and q = 0 for an all-zero group. sum8 lets the SIMD
// kernels multiply Q4_0's codes 0..15 as they are stored and take the offset 8 off afterwards, per
// int32 lane of their group sums.
typedef struct {
    float d;
    int8_t q[QK];
    int32_t sum8[QK / 4];  // sum8[l] = 8 * (q[4l] + q[4l+1] + q[4l+2] + q[4l+3])
} QActBlock;
void qact_quantize(const float *x, int n, QActBlock *out);  // n % QK == 0; out (n / QK)

// fp32 <-> bf16 / fp16, round to nearest even, NaN kept (made quiet), fp16 overflow to inf.
uint16_t qfp32_to_bf16(float f);
float qbf16_to_fp32(uint16_t h);
uint16_t qfp32_to_fp16(float f);
float qfp16_to_fp32(uint16_t h);

// Kernel selection: the best one this CPU runs, unless env LAB_QKERNEL=portable|avx2|avx512 says
// otherwise (read at first use; dies naming the value when unknown or not runnable here). avx512
// has 512-bit kernels for fp32, bf16 and fp16 and runs the AVX2 ones for Q8_0 and Q4_0 (quant.c
// says why).
typedef enum { QK_PORTABLE, QK_AVX2, QK_AVX512 } QKernel;
#define QK_COUNT 3
QKernel qkernel_active(void);
const char *qkernel_name(QKernel k);           // "portable", "avx2", "avx512"
int qkernel_supported(QKernel k);              // 1 if this CPU runs k
int qkernel_force(QKernel k);                  // 0, or -1 (nothing changed) if this CPU can't run k
