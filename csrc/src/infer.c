// infer: the forward with its three KV modes, the sampler, stop rules and the generation loop (see infer.h).
#include "infer.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

// ---------------------------------------------------------------------------------------------
// names

const char *kv_mode_name(KvMode m) {
    static const char *const names[] = {"none", "contiguous", "paged"};
    return m >= KV_NONE && m <= KV_PAGED ? names[m] : "unknown";
}

const char *kv_dtype_name(KvDtype t) { return t == KV_F32 ? "f32" : t == KV_F16 ? "f16" : "unknown"; }

int kv_mode_parse(const char *name, KvMode *out) {
    for (KvMode m = KV_NONE; m <= KV_PAGED; m++)
        if (!strcmp(name, kv_mode_name(m))) {
            *out = m;
            return 0;
        }
    return -1;
}

int kv_dtype_parse(const char *name, KvDtype *out) {
    for (KvDtype t = KV_F32; t <= KV_F16; t++)
        if (!strcmp(name, kv_dtype_name(t))) {
            *out = t;
            return 0;
        }
    return -1;
}

// ---------------------------------------------------------------------------------------------
// fp16

uint16_t infer_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, mag = x & 0x7fffffffu;
    if (mag > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((mag >> 13) & 0x3ffu));  // NaN, made quiet
    if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // >= 65520 (max half + half an ulp): inf
    if (mag >= 0x38800000u) {                                    // >= 2^-14: a normal half
        uint32_t h = (mag >> 13) - ((127u - 15u) << 10), rest = mag & 0x1fffu;
        h += rest > 0x1000u || (rest == 0x1000u && (h & 1u));   // a carry into the exponent is right
        return (uint16_t)(sign | h);
    }
    // a subnormal half: the value in units of 2^-24, rounded; 1024 units is the smallest normal
    int shift = 126 - (int)(mag >> 23);
    if (shift > 24) return (uint16_t)sign;  // below 2^-25: rounds to zero
    uint32_t m = (mag & 0x7fffffu) | 0x800000u, q = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    q += rest > half || (rest == half && (q & 1u));
    return (uint16_t)(sign | q);
}

float infer_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0x1f)
        x = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u);  // a NaN comes out quiet, as F16C does
    else if (e)
        x = sign | ((e + 112u) << 23) | (m << 13);
    else {
        float f = (float)m * 5.9604644775390625e-8f;  // m * 2^-24, exact
        memcpy(&x, &f, sizeof x);
        x |= sign;
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static inline void f16_store(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) dst[i] = infer_f32_to_f16(src[i]);
}

static inline void f16_load(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = infer_f16_to_f32(src[i]);
}

void infer_f16_store(uint16_t *dst, const float *src, size_t n) { f16_store(dst, src, n); }
void infer_f16_load(float *dst, const uint16_t *src, size_t n) { f16_load(dst, src, n); }

// ---------------------------------------------------------------------------------------------
// life cycle

void infer_init(InferState *s, const Model *m, int B, int T_max) { infer_init_ex(s, m, B, T_max, NULL); }

typedef enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, W_HEAD } WeightId;

// The matrices of one layer in WeightId order, with their shapes: w, rows (out), cols (in).
static const float *weight_matrix(const Model *m, int layer, WeightId which, int *rows, int *cols) {
    const ModelConfig *c = &m->cfg;
    const ParamTensors *p = &m->params;
    size_t C = c->dim, KVC = (size_t)c->n_kv_heads * (c->dim / c->n_heads), F = c->ffn_dim, l = layer;
    *rows = (int)C;
    *cols = (int)C;
    switch (which) {
    case W_Q: return p->wq + l * C * C;
    case W_K: *rows = (int)KVC; return p->wk + l * KVC * C;
    case W_V: *rows = (int)KVC; return p->wv + l * KVC * C;
    case W_O: return p->wo + l * C * C;
    case W_GATE: *rows = (int)F; return p->w_gate + l * F * C;
    case W_UP: *rows = (int)F; return p->w_up + l * F * C;
    case W_DOWN: *cols = (int)F; return p->w_down + l * C * F;
    case W_HEAD: *rows = c->vocab_size; return p->tok_emb;
    }
    return NULL;
}

static QMat *qweight(const InferState *s, int layer, WeightId which) {
    return &s->qw[which == W_HEAD ? 7 * s->m->cfg.n_layers : 7 * layer + (int)which];
}

// From this many rows on, a quantized product converts its matrix to fp32 and runs sgemm (the
// conversion reads the weights once, as one decode step does; sgemm then runs at its own rate).
#define PREFILL_DEQUANT_ROWS 32

static void quantize_weights(InferState *s) {
    const ModelConfig *c = &s->m->cfg;
    if (qtype_is_grouped(s->opt.weights) && (c->dim % QK || c->ffn_dim % QK))
        lab_die("infer_init: %s weights need dim and ffn multiples of %d, found dim %d, ffn %d",
                qtype_name(s->opt.weights), QK, c->dim, c->ffn_dim);
    s->qw = lab_calloc((size_t)7 * c->n_layers + 1, sizeof(QMat));
    for (int l = 0; l <= c->n_layers; l++)
        for (int k = 0; k < 7; k++) {
            WeightId which = l == c->n_layers ? W_HEAD : (WeightId)k;
            int rows, cols;
            const float *w = weight_matrix(s->m, l == c->n_layers ? 0 : l, which, &rows, &cols);
            qmat_quantize(qweight(s, l, which), s->opt.weights, w, rows, cols);
            if ((size_t)rows * cols > s->wdeq_size) s->wdeq_size = (size_t)rows * cols;
            if (which == W_HEAD) break;
        }
    s->wdeq = lab_malloc(s->wdeq_size * sizeof(float));
}

void infer_roundtrip_weights(Model *m, QType t) {
    const ModelConfig *c = &m->cfg;
    for (int l = 0; l <= c->n_layers; l++)
        for (int k = 0; k < 7; k++) {
            WeightId which = l == c->n_layers ? W_HEAD : (WeightId)k;
            int rows, cols;
            float *w = (float *)weight_matrix(m, l == c->n_layers ? 0 : l, which, &rows, &cols);
            QMat q;
            qmat_quantize(&q, t, w, rows, cols);
            qmat_dequantize(&q, w);
            qmat_free(&q);
            if (which == W_HEAD) break;
        }
}

size_t infer_weight_bytes(const InferState *s) {
    const ModelConfig *c = &s->m->cfg;
    size_t norms = sizeof(float) * (size_t)c->dim * (2 * (size_t)c->n_layers + 1);
    if (!s->qw) return sizeof(float) * model_num_params(c);
    size_t b = norms;
    for (int i = 0; i < 7 * c->n_layers + 1; i++) b += s->qw[i].bytes;
    return b;
}

// the whole pages inside [p, p + n)
static void release_pages(const void *p, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) / page * page, b = ((uintptr_t)p + n) / page * page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

void infer_release_source_weights(InferState *s) {
    if (!s->qw) return;
    const ModelConfig *c = &s->m->cfg;
    for (int l = 0; l <= c->n_layers; l++)
        for (int k = 0; k < 7; k++) {
            WeightId which = l == c->n_layers ? W_HEAD : (WeightId)k;
            int rows, cols;
            const float *w = weight_matrix(s->m, l == c->n_layers ? 0 : l, which, &rows, &cols);
            release_pages(w, (size_t)rows * cols * sizeof(float));
            if (which == W_HEAD) break;
        }
}

void infer_init_ex(InferState *s, const Model *m, int B, int T_max, const InferOptions *opt) {
    const ModelConfig *c = &m->cfg;
    if (m->lora) lab_die("infer_init: expected a model without an attached adapter (merge it first), found one");
    if (B < 1 || T_max < 1 || T_max > c->max_seq_len)
        lab_die("infer_init: expected B >= 1 and 1 <= T_max <= max_seq_len (%d), found B=%d T_max=%d",
                c->max_seq_len, B, T_max);
    InferOptions o = opt ? *opt : (InferOptions){.mode = KV_CONTIGUOUS, .dtype = KV_F32};
    if (o.mode < KV_NONE || o.mode > KV_PAGED) lab_die("infer_init: expected a KV mode 0..2, found %d", (int)o.mode);
    if (o.dtype != KV_F32 && o.dtype != KV_F16) lab_die("infer_init: expected a KV dtype 0..1, found %d", (int)o.dtype);
    memset(s, 0, sizeof *s);
    s->m = m;
    s->B = B;
    s->T_max = T_max;
    s->len = lab_calloc(B, sizeof(int));
    s->elem_bytes = o.dtype == KV_F16 ? 2 : 4;
    if (o.mode == KV_PAGED) {
        if (o.block_size == 0) o.block_size = T_max < 16 ? T_max : 16;
        if (o.block_size < 1 || o.block_size > T_max)
            lab_die("infer_init: expected a paged block_size of 1 to T_max (%d), found %d", T_max, o.block_size);
        s->max_blocks = (T_max + o.block_size - 1) / o.block_size;
        if (o.n_blocks == 0) o.n_blocks = B * s->max_blocks;
        if (o.n_blocks < 1) lab_die("infer_init: expected a paged pool of >= 1 block, found %d", o.n_blocks);
        s->block_size = o.block_size;
        s->n_blocks = o.n_blocks;
    } else {
        // one block per row, fixed (KV_NONE: the per-call scratch is laid out the same way)
        o.block_size = s->block_size = T_max;
        o.n_blocks = s->n_blocks = o.mode == KV_CONTIGUOUS ? B : 0;
        s->max_blocks = 1;
    }
    s->opt = o;
    int HD = c->dim / c->n_heads, half = HD / 2, KVC = c->n_kv_heads * HD;
    if (o.weights != QT_F32) quantize_weights(s);
    s->pool_bytes = (size_t)c->n_layers * s->n_blocks * s->block_size * KVC * s->elem_bytes;
    if (s->pool_bytes) {
        // calloc: the pages of a large pool become resident only as positions are written
        s->k_pool = lab_calloc(s->pool_bytes, 1);
        s->v_pool = lab_calloc(s->pool_bytes, 1);
    }
    s->block_table = lab_malloc((size_t)B * s->max_blocks * sizeof(int));
    for (int i = 0; i < B * s->max_blocks; i++) s->block_table[i] = o.mode == KV_CONTIGUOUS ? i : -1;
    s->n_held = lab_calloc(B, sizeof(int));
    s->promised = lab_calloc(B, sizeof(int));
    if (o.mode == KV_PAGED) {
        s->free_blocks = lab_malloc((size_t)s->n_blocks * sizeof(int));
        for (int i = 0; i < s->n_blocks; i++) s->free_blocks[i] = s->n_blocks - 1 - i;  // block 0 is taken first
        s->n_free = s->n_blocks;
    }
    if (o.mode == KV_NONE) s->history = lab_malloc((size_t)B * T_max * sizeof(int32_t));
    s->rope_cos = lab_malloc((size_t)T_max * half * sizeof(float));
    s->rope_sin = lab_malloc((size_t)T_max * half * sizeof(float));
    model_rope_tables(c, T_max, s->rope_cos, s->rope_sin);
    s->row_logits = lab_calloc((size_t)B * c->vocab_size, sizeof(float));
}

void infer_reset_row(InferState *s, int row) {
    if (row < 0 || row >= s->B) lab_die("infer_reset_row: expected a row 0..%d, found %d", s->B - 1, row);
    if (s->opt.mode == KV_PAGED) {
        int *tab = s->block_table + (size_t)row * s->max_blocks;
        for (int j = s->n_held[row] - 1; j >= 0; j--) {
            s->free_blocks[s->n_free++] = tab[j];
            tab[j] = -1;
        }
    }
    s->n_held[row] = 0;
    s->promised[row] = 0;
    s->len[row] = 0;
}

void infer_reset(InferState *s) {
    for (int b = 0; b < s->B; b++) infer_reset_row(s, b);
}

static void scratch_free(InferState *s) {
    float **bufs[] = {&s->x, &s->xn, &s->rstd, &s->q, &s->k, &s->v, &s->ao, &s->proj, &s->gate, &s->up};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
}

void infer_free(InferState *s) {
    if (s->qw)
        for (int i = 0; i < 7 * s->m->cfg.n_layers + 1; i++) qmat_free(&s->qw[i]);
    free(s->qw);
    free(s->wdeq);
    scratch_free(s);
    free(s->logits);
    free(s->att_scratch);
    free(s->pos);
    free(s->vrow);
    free(s->vtok);
    free(s->vtable);
    free(s->len);
    free(s->k_pool);
    free(s->v_pool);
    free(s->block_table);
    free(s->n_held);
    free(s->promised);
    free(s->free_blocks);
    free(s->history);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->row_logits);
    memset(s, 0, sizeof *s);
}

// attention converts fp16 keys and values this many positions at a time
#define ATT_CHUNK 64

// activations for N entries, logits for n_out of them, attention's per-thread scratch
static void scratch_reserve(InferState *s, int N, int n_out) {
    const ModelConfig *c = &s->m->cfg;
    size_t C = c->dim, HD = C / c->n_heads, KVC = (size_t)c->n_kv_heads * HD, F = c->ffn_dim;
    if (N > s->cap) {
        scratch_free(s);
        size_t n = N;
        s->x = lab_malloc(n * C * sizeof(float));
        s->xn = lab_malloc(n * C * sizeof(float));
        s->rstd = lab_malloc(n * sizeof(float));
        s->q = lab_malloc(n * C * sizeof(float));
        s->k = lab_malloc(n * KVC * sizeof(float));
        s->v = lab_malloc(n * KVC * sizeof(float));
        s->ao = lab_malloc(n * C * sizeof(float));
        s->proj = lab_malloc(n * C * sizeof(float));
        s->gate = lab_malloc(n * F * sizeof(float));
        s->up = lab_malloc(n * F * sizeof(float));
        s->cap = N;
    }
    if (n_out > s->cap_out) {
        free(s->logits);
        s->logits = lab_malloc((size_t)n_out * c->vocab_size * sizeof(float));
        s->cap_out = n_out;
    }
    int threads = omp_get_max_threads();
    if (threads > s->threads) {
        size_t group = c->n_heads / c->n_kv_heads;
        free(s->att_scratch);
        s->att_scratch = lab_malloc((size_t)threads * (group * s->T_max + ATT_CHUNK * HD) * sizeof(float));
        s->threads = threads;
    }
}

static void entries_reserve(InferState *s, int N) {
    if (N <= s->cap_entries) return;
    s->pos = lab_realloc(s->pos, (size_t)N * sizeof(int));
    s->vrow = lab_realloc(s->vrow, (size_t)N * sizeof(int));
    s->vtok = lab_realloc(s->vtok, (size_t)N * sizeof(int32_t));
    s->cap_entries = N;
}

// ---------------------------------------------------------------------------------------------
// paged blocks

int infer_blocks_for(const InferState *s, int n_tokens) {
    return s->opt.mode == KV_PAGED ? (n_tokens + s->block_size - 1) / s->block_size : 0;
}

// free blocks that no row has been promised
static int blocks_unpromised(const InferState *s) {
    int owed = 0;
    for (int b = 0; b < s->B; b++) owed += s->promised[b] > s->n_held[b] ? s->promised[b] - s->n_held[b] : 0;
    return s->n_free - owed;
}

int infer_admit(InferState *s, int row, int n_tokens) {
    if (row < 0 || row >= s->B) lab_die("infer_admit: expected a row 0..%d, found %d", s->B - 1, row);
    if (n_tokens < 1 || n_tokens > s->T_max)
        lab_die("infer_admit: expected 1 to T_max (%d) positions, found %d", s->T_max, n_tokens);
    if (s->len[row] != 0 || s->promised[row] != 0)
        lab_die("infer_admit: expected an empty row (infer_reset_row first), found row %d holding %d positions",
                row, s->len[row]);
    if (s->opt.mode != KV_PAGED) return 0;
    int need = infer_blocks_for(s, n_tokens);
    if (blocks_unpromised(s) < need) return -1;
    s->promised[row] = need;
    return 0;
}

// row takes a block for its logical block j
static void take_block(InferState *s, int row, int j) {
    if (s->n_held[row] >= s->promised[row] && blocks_unpromised(s) < 1)
        lab_die("infer_forward: the paged KV pool is exhausted: row %d needs a block, and the %d free of %d blocks "
                "(%d positions each) are promised to other rows (admit rows with infer_admit, or make the pool larger)",
                row, s->n_free, s->n_blocks, s->block_size);
    s->block_table[(size_t)row * s->max_blocks + j] = s->free_blocks[--s->n_free];
    s->n_held[row]++;
}

// ---------------------------------------------------------------------------------------------
// memory accounting

size_t infer_kv_token_bytes(const InferState *s) {
    const ModelConfig *c = &s->m->cfg;
    return 2 * (size_t)c->n_layers * c->n_kv_heads * (c->dim / c->n_heads) * s->elem_bytes;
}

size_t infer_kv_capacity_bytes(const InferState *s) { return 2 * s->pool_bytes; }

size_t infer_kv_allocated_bytes(const InferState *s) {
    size_t positions = 0;
    for (int b = 0; b < s->B; b++) {
        if (s->opt.mode == KV_CONTIGUOUS && s->len[b] > 0) positions += s->T_max;
        if (s->opt.mode == KV_PAGED) positions += (size_t)s->n_held[b] * s->block_size;
    }
    return positions * infer_kv_token_bytes(s);
}

size_t infer_kv_used_bytes(const InferState *s) {
    if (s->opt.mode == KV_NONE) return 0;
    size_t positions = 0;
    for (int b = 0; b < s->B; b++) positions += s->len[b];
    return positions * infer_kv_token_bytes(s);
}

// ---------------------------------------------------------------------------------------------
// the weight products


// out (OC) = W (OC,IC) inp. The rows of W are split over the OpenMP threads, each making a one-thread
// sgemv (OpenBLAS's OpenMP build runs serially inside a parallel region). Left to itself, OpenBLAS
// threads a product with its own team, whose threads wait for each other in sched_yield loops: on a
// busy machine that showed as system time, a third of lab-generate's CPU time. The pthread build of
// OpenBLAS would start its own pool from each of our threads, so there it makes the one call.
// out (N, OC) = inp (N, IC) @ W^T for weight `which` of `layer` (W_HEAD: the tied embedding; layer
// unused). Every weight product of the engine goes through here. Quantized weights: quant.h's
// kernels. fp32 weights: up to 4 rows (decode) through quant.h's fp32 kernel on a view of the
// model's matrix, which threads only matrices big enough to pay for it (a sgemv split over 2
// threads ran 6x slower than 1 thread per decode step on the default model, V 4096, C 256, on a
// loaded machine); more rows through the backend's matmul (the same thread split as training).
static void linear(const InferState *s, int layer, WeightId which, const float *inp, int N, float *out) {
    if (s->qw && N >= PREFILL_DEQUANT_ROWS) {
        // prefill: the matrix once to fp32, then sgemm: N times the work amortizes the conversion
        const QMat *q = qweight(s, layer, which);
        qmat_dequantize(q, s->wdeq);
        s->m->be->matmul_forward(out, inp, s->wdeq, N, q->cols, q->rows, 1.0f, 0.0f);
        return;
    }
    if (s->qw) {
        qmat_matmul(qweight(s, layer, which), inp, N, out);
        return;
    }
    int OC, IC;
    const float *w = weight_matrix(s->m, layer, which, &OC, &IC);
    if (N <= 4) {
        QMat view = {QT_F32, OC, IC, (void *)w, (size_t)OC * IC * sizeof(float)};
        qmat_matmul(&view, inp, N, out);
    } else
        s->m->be->matmul_forward(out, inp, w, N, IC, OC, 1.0f, 0.0f);
}

// ---------------------------------------------------------------------------------------------
// the forward over N entries

// Where the keys and values of a forward live: layer l's pool at k + l * layer_bytes, blocks of bs
// positions of KVC elements; position u of pool row r in block table[r * table_stride + u / bs].
typedef struct {
    char *k, *v;
    size_t layer_bytes;
    int bs, table_stride;
    const int *table;
} KvView;

// A parallel region costs a barrier: a few microseconds on an idle machine, a scheduler time slice
// when another job holds a core. Rotating one entry is a few hundred multiplies, so a decode step's
// rotations run on one thread.
#define ROPE_PARALLEL_MIN 64

// rotates entry n's NH heads (x: (N, NH*HD)) by its position pos[n]
static void rope(const InferState *s, float *x, const int *pos, int N, int NH, int HD) {
    int half = HD / 2;
#pragma omp parallel for schedule(static) if (N >= ROPE_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *cs = s->rope_cos + (size_t)pos[n] * half, *sn = s->rope_sin + (size_t)pos[n] * half;
        for (int h = 0; h < NH; h++) {
            float *v = x + ((size_t)n * NH + h) * HD;
            for (int i = 0; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * cs[i] - x1 * sn[i];
                v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

// Eight partial sums in a fixed order: the loop vectorises without -ffast-math, and the result
// does not depend on where the keys are stored.
static inline float dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int e = 0;
    for (; e + 8 <= n; e += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[e + j] * b[e + j];
    float tail = 0.0f;
    for (; e < n; e++) tail += a[e] * b[e];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// Keys or values of kv head g at positions u0.. of a row (block table tab): returns how many lie
// in one block from u0 (at most ATT_CHUNK, none past nk), with *out pointing at the first one and
// *stride the floats between consecutive ones; fp16 ones are converted into conv first.
static inline int kv_span(const KvView *kv, const char *base, size_t es, const int *tab, int u0, int nk, int g,
                          int HD, int KVC, float *conv, const float **out, size_t *stride) {
    int off = u0 % kv->bs, n = kv->bs - off;
    n = n < nk - u0 ? n : nk - u0;
    n = n < ATT_CHUNK ? n : ATT_CHUNK;
    const char *src = base + (((size_t)tab[u0 / kv->bs] * kv->bs + off) * KVC + (size_t)g * HD) * es;
    if (es == sizeof(float)) {
        *out = (const float *)src;
        *stride = KVC;
        return n;
    }
    for (int j = 0; j < n; j++) f16_load(conv + (size_t)j * HD, (const uint16_t *)src + (size_t)j * KVC, HD);
    *out = conv;
    *stride = HD;
    return n;
}

// Causal attention of every entry over its row's positions 0..pos[i], read from kv (layer l).
// The threads take (entry, kv head) pairs; a pair's query heads share each converted span.
static void attention(InferState *s, const KvView *kv, int l, int N, const int *vrow, const int *pos) {
    const ModelConfig *c = &s->m->cfg;
    int C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = C / NH, KVC = NKV * HD, group = NH / NKV;
    int T_max = s->T_max;
    size_t es = s->elem_bytes, per_thread = (size_t)group * T_max + ATT_CHUNK * HD;
    const char *kbase = kv->k + l * kv->layer_bytes, *vbase = kv->v + l * kv->layer_bytes;
    float scale = 1.0f / sqrtf((float)HD);
#pragma omp parallel
    {
        float *sc = s->att_scratch + (size_t)omp_get_thread_num() * per_thread, *conv = sc + (size_t)group * T_max;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < N * NKV; task++) {
            int i = task / NKV, g = task % NKV, nk = pos[i] + 1;
            const int *tab = kv->table + (size_t)vrow[i] * kv->table_stride;
            const float *q = s->q + (size_t)i * C + (size_t)g * group * HD, *span;
            size_t stride;
            for (int u0 = 0, n; u0 < nk; u0 += n) {
                n = kv_span(kv, kbase, es, tab, u0, nk, g, HD, KVC, conv, &span, &stride);
                for (int h = 0; h < group; h++) {
                    float *sh = sc + (size_t)h * T_max + u0;
                    for (int j = 0; j < n; j++) sh[j] = dot(q + (size_t)h * HD, span + j * stride, HD) * scale;
                }
            }
            for (int h = 0; h < group; h++) {
                float *sh = sc + (size_t)h * T_max, maxv = -INFINITY, sum = 0.0f;
                for (int u = 0; u < nk; u++) maxv = sh[u] > maxv ? sh[u] : maxv;
                for (int u = 0; u < nk; u++) {
                    sh[u] = expf(sh[u] - maxv);
                    sum += sh[u];
                }
                float inv = 1.0f / sum;
                for (int u = 0; u < nk; u++) sh[u] *= inv;
                memset(s->ao + (size_t)i * C + (size_t)(g * group + h) * HD, 0, HD * sizeof(float));
            }
            for (int u0 = 0, n; u0 < nk; u0 += n) {
                n = kv_span(kv, vbase, es, tab, u0, nk, g, HD, KVC, conv, &span, &stride);
                for (int h = 0; h < group; h++) {
                    const float *ph = sc + (size_t)h * T_max + u0;
                    float *oh = s->ao + (size_t)i * C + (size_t)(g * group + h) * HD;
                    for (int j = 0; j < n; j++) {
                        const float *vr = span + j * stride;
                        float w = ph[j];
                        for (int e = 0; e < HD; e++) oh[e] += w * vr[e];
                    }
                }
            }
        }
    }
}

// Runs N entries (token tokens[i] of pool row vrow[i], at position pos[i]) through the model; every
// entry's key and value go into kv before any entry attends, so an entry sees the earlier entries
// of its row in the same call. Returns the logits of entries first_out..N-1.
static const float *forward_core(InferState *s, const KvView *kv, int N, const int *vrow, const int *pos,
                                 const int32_t *tokens, int first_out) {
    const Model *m = s->m;
    const ModelConfig *c = &m->cfg;
    const ParamTensors *p = &m->params;
    const Backend *be = m->be;  // the row-wise ops are the model's own, so the math is the same
    int C = c->dim, L = c->n_layers, NH = c->n_heads, NKV = c->n_kv_heads, HD = C / NH, KVC = NKV * HD;
    int F = c->ffn_dim, n_out = N - first_out;
    size_t es = s->elem_bytes, row_bytes = (size_t)KVC * es;
    scratch_reserve(s, N, n_out);
    if (s->qw) {
        // rows of the quantized table: one row of a QMat is a QMat of one row
        const QMat *h = qweight(s, 0, W_HEAD);
        size_t rb = qmat_row_bytes(h->type, (int)C);
        for (int i = 0; i < N; i++) {
            QMat row = {h->type, 1, (int)C, (char *)h->data + (size_t)tokens[i] * rb, rb};
            qmat_dequantize(&row, s->x + (size_t)i * C);
        }
    } else {
        be->embedding_forward(s->x, tokens, p->tok_emb, N, C);
    }
    for (int l = 0; l < L; l++) {
        be->rmsnorm_forward(s->xn, s->rstd, s->x, p->attn_norm + (size_t)l * C, N, C, c->norm_eps);
        linear(s, l, W_Q, s->xn, N, s->q);
        linear(s, l, W_K, s->xn, N, s->k);
        linear(s, l, W_V, s->xn, N, s->v);
        rope(s, s->q, pos, N, NH, HD);
        rope(s, s->k, pos, N, NKV, HD);
        char *kl = kv->k + l * kv->layer_bytes, *vl = kv->v + l * kv->layer_bytes;
        for (int i = 0; i < N; i++) {
            size_t at = ((size_t)kv->table[(size_t)vrow[i] * kv->table_stride + pos[i] / kv->bs] * kv->bs +
                         pos[i] % kv->bs) * row_bytes;
            if (es == sizeof(float)) {
                memcpy(kl + at, s->k + (size_t)i * KVC, row_bytes);
                memcpy(vl + at, s->v + (size_t)i * KVC, row_bytes);
            } else {
                f16_store((uint16_t *)(kl + at), s->k + (size_t)i * KVC, KVC);
                f16_store((uint16_t *)(vl + at), s->v + (size_t)i * KVC, KVC);
            }
        }
        attention(s, kv, l, N, vrow, pos);
        linear(s, l, W_O, s->ao, N, s->proj);
        for (size_t j = 0; j < (size_t)N * C; j++) s->x[j] += s->proj[j];

        be->rmsnorm_forward(s->xn, s->rstd, s->x, p->ffn_norm + (size_t)l * C, N, C, c->norm_eps);
        linear(s, l, W_GATE, s->xn, N, s->gate);
        linear(s, l, W_UP, s->xn, N, s->up);
        be->swiglu_forward(s->gate, s->gate, s->up, (size_t)N * F);
        linear(s, l, W_DOWN, s->gate, N, s->proj);
        for (size_t j = 0; j < (size_t)N * C; j++) s->x[j] += s->proj[j];
    }
    be->rmsnorm_forward(s->xn, s->rstd, s->x + (size_t)first_out * C, p->final_norm, n_out, C, c->norm_eps);
    linear(s, 0, W_HEAD, s->xn, n_out, s->logits);
    return s->logits;
}

// KV_NONE: the rows the entries touch are run again from position 0, their history in front of
// the new entries, through a scratch pool of one block per touched row; only the new entries'
// logits are computed.
static const float *forward_recompute(InferState *s, int N, const int *rows, const int32_t *tokens) {
    const ModelConfig *c = &s->m->cfg;
    int B = s->B, R = 0, H = 0, longest = 0;
    if (s->cap_vtable < B) {
        s->vtable = lab_realloc(s->vtable, (size_t)2 * B * sizeof(int));
        s->cap_vtable = B;
    }
    int *pool_row = s->vtable + B;  // each touched row's pool row; -1: untouched
    for (int b = 0; b < B; b++) pool_row[b] = -1;
    for (int i = 0; i < N; i++)
        if (pool_row[rows[i]] < 0) {
            s->vtable[R] = R;  // pool row v is block v
            pool_row[rows[i]] = R++;
            H += s->pos[i];    // the row's first new position: the tokens it held before
            longest = s->len[rows[i]] > longest ? s->len[rows[i]] : longest;
        }
    int total = H + N;
    // the expanded entries go after the caller's positions in the entries scratch
    entries_reserve(s, N + total);
    int *xpos = s->pos + N, *xrow = s->vrow + N;
    int32_t *xtok = s->vtok + N;
    // each row's history, rows in the order of their first entry (the one whose pool row is next)
    int k = 0, next = 0;
    for (int i = 0; i < N; i++) {
        int r = rows[i];
        if (pool_row[r] != next) continue;
        next++;
        for (int t = 0; t < s->pos[i]; t++) {
            xrow[k] = pool_row[r];
            xpos[k] = t;
            xtok[k++] = s->history[(size_t)r * s->T_max + t];
        }
    }
    for (int i = 0; i < N; i++) {
        xrow[H + i] = pool_row[rows[i]];
        xpos[H + i] = s->pos[i];
        xtok[H + i] = tokens[i];
    }
    int KVC = c->n_kv_heads * (c->dim / c->n_heads);
    size_t layer_bytes = (size_t)R * longest * KVC * s->elem_bytes, need = layer_bytes * c->n_layers;
    if (need > s->pool_bytes) {
        free(s->k_pool);
        free(s->v_pool);
        s->k_pool = lab_malloc(need);
        s->v_pool = lab_malloc(need);
        s->pool_bytes = need;
    }
    KvView kv = {s->k_pool, s->v_pool, layer_bytes, longest, 1, s->vtable};
    return forward_core(s, &kv, total, xrow, xpos, xtok, H);
}

const float *infer_forward(InferState *s, int N, const int *rows, const int32_t *tokens) {
    int V = s->m->cfg.vocab_size, T_max = s->T_max;
    if (N < 1) lab_die("infer_forward: expected at least one entry, found %d", N);
    for (int i = 0; i < N; i++) {
        if (rows[i] < 0 || rows[i] >= s->B) lab_die("infer_forward: row %d outside 0..%d", rows[i], s->B - 1);
        if (tokens[i] < 0 || tokens[i] >= V)
            lab_die("infer_forward: token id %d outside the vocabulary (0..%d)", tokens[i], V - 1);
    }
    entries_reserve(s, N);
    // positions: each entry takes its row's next one (and, paged, a new block at each block start)
    for (int i = 0; i < N; i++) {
        int r = rows[i];
        if (s->len[r] >= T_max)
            lab_die("infer_forward: row %d is full: expected at most T_max = %d positions", r, T_max);
        int t = s->pos[i] = s->len[r]++;
        if (s->opt.mode == KV_PAGED && t % s->block_size == 0) take_block(s, r, t / s->block_size);
        if (s->opt.mode == KV_NONE) s->history[(size_t)r * T_max + t] = tokens[i];
    }
    if (s->opt.mode == KV_NONE) return forward_recompute(s, N, rows, tokens);
    const ModelConfig *c = &s->m->cfg;
    KvView kv = {s->k_pool, s->v_pool, s->pool_bytes / c->n_layers, s->block_size, s->max_blocks, s->block_table};
    return forward_core(s, &kv, N, rows, s->pos, tokens, 0);
}

const float *infer_prefill(InferState *s, const int32_t *const *prompts, const int *lens) {
    int N = 0, V = s->m->cfg.vocab_size;
    for (int b = 0; b < s->B; b++) N += lens[b];
    int *rows = lab_malloc((size_t)(N ? N : 1) * sizeof(int));
    int32_t *toks = lab_malloc((size_t)(N ? N : 1) * sizeof(int32_t));
    int *last = lab_malloc((size_t)s->B * sizeof(int));
    int n = 0;
    for (int b = 0; b < s->B; b++) {
        for (int t = 0; t < lens[b]; t++) {
            rows[n] = b;
            toks[n++] = prompts[b][t];
        }
        last[b] = n - 1;
    }
    memset(s->row_logits, 0, (size_t)s->B * V * sizeof(float));
    if (N > 0) {
        const float *lg = infer_forward(s, N, rows, toks);
        for (int b = 0; b < s->B; b++)
            if (lens[b] > 0) memcpy(s->row_logits + (size_t)b * V, lg + (size_t)last[b] * V, V * sizeof(float));
    }
    free(rows);
    free(toks);
    free(last);
    return s->row_logits;
}

// ---------------------------------------------------------------------------------------------
// sampling

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// qsort's comparator has no context argument; thread-local, so rows may sample in parallel
static _Thread_local const float *sort_probs;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_probs[i] != sort_probs[j]) return sort_probs[i] > sort_probs[j] ? -1 : 1;
    return (i > j) - (i < j);
}

int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *prob, int *idx) {
    if (sc->temperature <= 0.0f || sc->top_k == 1) return argmax(logits, V);
    int best = argmax(logits, V);
    float maxv = logits[best], inv_t = 1.0f / sc->temperature;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        prob[i] = expf((logits[i] - maxv) * inv_t);
        sum += prob[i];
    }
    for (int i = 0; i < V; i++) prob[i] = (float)(prob[i] / sum);
    int n = V;
    int k_limit = sc->top_k > 0 && sc->top_k < V ? sc->top_k : V;
    if (k_limit < V || sc->top_p < 1.0f) {
        // The kept tokens are a prefix of the order by probability, and the tokens of probability >=
        // tau are a prefix of it too: when they hold top_k tokens, or reach top_p within their first
        // top_k, sorting them alone decides the same set as sorting all. Otherwise tau falls (at 0
        // every token is in), so the result is always that of the full sort.
        for (float tau = prob[best] * (1.0f / 64);; tau *= 1.0f / 64) {
            int m = 0;
            for (int i = 0; i < V; i++)
                if (prob[i] >= tau) idx[m++] = i;
            sort_probs = prob;
            qsort(idx, m, sizeof *idx, by_prob_desc);
            n = m < k_limit ? m : k_limit;
            int decided = m >= k_limit || m == V;
            if (sc->top_p < 1.0f) {
                double mass = 0.0;
                int keep = 0;
                while (keep < n) {
                    mass += prob[idx[keep++]];
                    if (mass >= sc->top_p) {
                        decided = 1;
                        break;
                    }
                }
                n = keep;
            }
            if (decided) break;
        }
    } else {
        for (int i = 0; i < V; i++) idx[i] = i;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) total += prob[idx[i]];
    double u = rng_uniform(rng) * total, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += prob[idx[i]];
        if (u < acc) return idx[i];
    }
    return idx[n - 1];  // u within rounding of the total
}

// ---------------------------------------------------------------------------------------------
// stop rules

const char *const humaneval_stops[5] = {"\ndef", "\nclass", "\nif", "\nprint", "\n#"};

const char *stop_reason_name(StopReason r) {
    static const char *const names[] = {"none", "eot", "stop", "dedent", "max_tokens", "context"};
    return r >= STOP_NONE && r <= STOP_CONTEXT ? names[r] : "unknown";
}

StopReason stop_check(const char *text, size_t len, int at_line_start, const char *const *stops,
                      int n_stops, int dedent, size_t *keep) {
    size_t best = len + 1;
    for (int j = 0; j < n_stops; j++) {
        size_t sl = strlen(stops[j]);
        for (size_t i = 0; sl > 0 && i + sl <= len && i < best; i++)
            if (memcmp(text + i, stops[j], sl) == 0) {
                best = i;
                break;
            }
    }
    if (best <= len) {
        *keep = best;
        return STOP_STRING;
    }
    if (!dedent) return STOP_NONE;
    // walk the lines that begin at a line start; body_indent: the first non-blank one's indentation
    long body_indent = -1;
    size_t start = 0;
    int line_ok = at_line_start;
    while (start <= len) {
        size_t end = start;
        while (end < len && text[end] != '\n') end++;
        if (line_ok) {
            size_t ind = start;
            while (ind < end && (text[ind] == ' ' || text[ind] == '\t')) ind++;
            if (ind < end) {  // a non-whitespace byte: the line's indentation is known
                long indent = (long)(ind - start);
                if (body_indent < 0)
                    body_indent = indent;
                else if (indent < body_indent) {
                    *keep = start - 1;  // before the '\n' that opens this line
                    return STOP_DEDENT;
                }
            }
        }
        if (end == len) break;
        start = end + 1;
        line_ok = 1;
    }
    return STOP_NONE;
}

// ---------------------------------------------------------------------------------------------
// generation

void completion_free(Completion *c) {
    free(c->text);
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

typedef struct {
    Rng rng;
    char *text; size_t len, cap;
    int done;
} RowState;

static void row_append(RowState *r, const uint8_t *bytes, size_t n) {
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->text = lab_realloc(r->text, r->cap);
    }
    memcpy(r->text + r->len, bytes, n);
    r->len += n;
    r->text[r->len] = '\0';
}

// Appends token `tok` to request q's completion and decides whether it stops there.
static void accept_token(const InferState *s, const Bpe *bpe, const GenConfig *gc, const GenRequest *q,
                         RowState *r, Completion *out, int tok) {
    out->tokens[out->n_tokens++] = tok;
    if (tok == gc->eot) {
        out->stop = STOP_EOT;
        r->done = 1;
        return;
    }
    size_t nb;
    const uint8_t *bytes = bpe_token_bytes(bpe, (uint32_t)tok, &nb);
    row_append(r, bytes, nb);
    size_t keep;
    StopReason why = stop_check(r->text, r->len, q->at_line_start, gc->stops, gc->n_stops, gc->stop_on_dedent, &keep);
    if (why != STOP_NONE) {
        r->len = keep;
        r->text[keep] = '\0';
        out->stop = why;
        r->done = 1;
    } else if (out->n_tokens >= gc->max_new_tokens) {
        out->stop = STOP_MAX_TOKENS;
        r->done = 1;
    } else if (q->prompt_len + out->n_tokens >= s->T_max) {
        // the token just sampled still needs a position to be fed back
        out->stop = STOP_CONTEXT;
        r->done = 1;
    }
}

void infer_generate(InferState *s, const Bpe *bpe, const GenConfig *gc, const GenRequest *reqs, int n,
                    Completion *out) {
    int V = s->m->cfg.vocab_size, B = s->B, T_max = s->T_max;
    if (bpe->vocab_size != V)
        lab_die("infer_generate: expected a tokenizer of the model's vocab_size %d, found %d", V, bpe->vocab_size);
    if (gc->max_new_tokens < 1) lab_die("infer_generate: expected max_new_tokens >= 1, found %d", gc->max_new_tokens);
    for (int i = 0; i < n; i++)
        if (reqs[i].prompt_len < 1 || reqs[i].prompt_len >= T_max)
            lab_die("infer_generate: prompt %d has %d tokens: expected 1 to %d (the context less one)", i,
                    reqs[i].prompt_len, T_max - 1);
    float *prob = lab_malloc((size_t)V * sizeof(float));
    int *idx = lab_malloc((size_t)V * sizeof(int));
    RowState *rs = lab_calloc(B, sizeof(RowState));
    int *slot = lab_malloc((size_t)B * sizeof(int));     // the request in each row, -1: idle
    int *last = lab_malloc((size_t)B * sizeof(int));     // each row's entry whose logits it samples from
    size_t cap = (size_t)B * (T_max + 1);
    int *rows = lab_malloc(cap * sizeof(int));
    int32_t *toks = lab_malloc(cap * sizeof(int32_t));
    for (int b = 0; b < B; b++) slot[b] = -1;
    infer_reset(s);
    // Continuous batching: a row whose completion stopped takes the next request at once, its
    // prompt fed in the same forward as the other rows' next tokens.
    int next_req = 0, N = 0;
    for (;;) {
        for (int b = 0; b < B && next_req < n; b++) {
            if (slot[b] >= 0) continue;
            const GenRequest *q = &reqs[next_req];
            // KV_PAGED: a request enters a row once the pool can promise every position it may feed
            int fed = q->prompt_len + gc->max_new_tokens - 1;
            fed = fed < T_max ? fed : T_max;
            if (infer_admit(s, b, fed) != 0) {
                if (N == 0)
                    lab_die("infer_generate: the paged KV pool (%d blocks of %d positions) cannot hold request %d: "
                            "expected room for %d blocks, found %d", s->n_blocks, s->block_size, next_req,
                            infer_blocks_for(s, fed), s->n_blocks);
                break;
            }
            slot[b] = next_req++;
            rng_seed(&rs[b].rng, q->seed);
            rs[b].len = 0;
            rs[b].done = 0;
            row_append(&rs[b], (const uint8_t *)"", 0);
            Completion *c = &out[slot[b]];
            memset(c, 0, sizeof *c);
            c->tokens = lab_malloc((size_t)gc->max_new_tokens * sizeof(int32_t));
            for (int t = 0; t < q->prompt_len; t++) {
                rows[N] = b;
                toks[N++] = q->prompt[t];
            }
            last[b] = N - 1;
        }
        if (N == 0) break;
        const float *lg = infer_forward(s, N, rows, toks);
        N = 0;
        for (int b = 0; b < B; b++) {
            if (slot[b] < 0) continue;
            Completion *c = &out[slot[b]];
            int tok = sample_token(lg + (size_t)last[b] * V, V, &gc->sampler, &rs[b].rng, prob, idx);
            accept_token(s, bpe, gc, &reqs[slot[b]], &rs[b], c, tok);
            if (rs[b].done) {
                c->text = rs[b].text;
                c->len = rs[b].len;
                rs[b].text = NULL;
                rs[b].cap = 0;
                slot[b] = -1;
                infer_reset_row(s, b);
            } else {
                rows[N] = b;
                toks[N] = tok;
                last[b] = N++;
            }
        }
    }
    free(prob);
    free(idx);
    free(rs);
    free(slot);
    free(last);
    free(rows);
    free(toks);
}
