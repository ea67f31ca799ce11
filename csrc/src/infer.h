// infer: generation on the CPU with a KV cache in one of three modes, sampling, and stop rules.
//
// An InferState runs the same math as model_forward (model.c) over a loaded Model's parameters
// (host memory: the CPU backend; an adapter must be merged first with lora_merge). How it keeps
// each layer's keys and values (after RoPE) is chosen at infer_init_ex:
//   KV_NONE        no cache: each row keeps only its tokens, and every forward recomputes the keys
//                  and values of the row's whole sequence so far (the cost a cache saves).
//   KV_CONTIGUOUS  T_max positions reserved per row up front: (L, B, T_max, NKV*HD).
//   KV_PAGED       a pool of fixed-size blocks (16 positions by default) and a block table per row,
//                  as in PagedAttention (Kwon et al. 2023): a row takes a block when it grows into
//                  it and gives its blocks back when reset, so only the last block is part-empty.
// Keys and values are stored as fp32 or fp16 (round to nearest even; attention reads them back
// as fp32). All three fp32 modes give the same logits up to float rounding (KV_NONE runs its
// matmuls over more rows, which OpenBLAS may round differently); the tests hold them to 1e-5.
//
// Generation (infer_generate) prefills a batch of prompts of different lengths in one pass, then
// decodes one token per unfinished row per step; a row whose completion stops takes the next request
// at once (continuous batching), its prompt fed in the same forward as the other rows' tokens. Each
// sequence draws from its own Rng seeded by the caller, so the same requests and seeds give the same
// tokens; across batch sizes they agree too (checked in the tests), except that one row goes through
// sgemv and several through sgemm, whose rounding may differ and could flip an exact near-tie.
//
// How a completion stops, and what it keeps (the completion is the text after the prompt):
//   eot         the model sampled the eot token: the text is everything before it.
//   stop        the text contains a stop string (first occurrence of any of them, earliest
//               position): the text is cut just before it; the stop string and any bytes after it
//               in the same token are not kept.
//   dedent      a line of the completion begins with a non-whitespace byte at an indentation (count
//               of leading ' ' and '\t' bytes) smaller than that of the body's first line (the
//               first line of the completion, started at a line start, that has a non-whitespace
//               byte): the text is cut just before the '\n' that opens the dedented line.
//   max_tokens  max_new_tokens were generated: the text is all of them.
//   context     the sequence filled the cache (T_max): the text is all that was generated.
// The first rule that applies after a token is appended wins, checked in that order. n_tokens
// counts every sampled token, the one that triggered the stop (eot included) too.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "bpe.h"
#include "common.h"
#include "model.h"
#include "quant.h"

// ---------------------------------------------------------------------------------------------
// the cached forward

typedef enum { KV_NONE, KV_CONTIGUOUS, KV_PAGED } KvMode;
typedef enum { KV_F32, KV_F16 } KvDtype;
const char *kv_mode_name(KvMode m);     // "none", "contiguous", "paged"
const char *kv_dtype_name(KvDtype t);   // "f32", "f16"
int kv_mode_parse(const char *name, KvMode *out);    // 0, or -1 for an unknown name
int kv_dtype_parse(const char *name, KvDtype *out);

typedef struct {
    KvMode mode;
    KvDtype dtype;
    int block_size;   // KV_PAGED: positions per block; 0: 16 (T_max when smaller)
    int n_blocks;     // KV_PAGED: blocks in the pool; 0: B * ceil(T_max / block_size), enough for all rows full
    // Weight format. QT_F32 (the default): the model's own fp32 weights. Otherwise every weight
    // matrix, the tied embedding / output head included, is quantized at infer_init_ex (quant.h)
    // and every product runs on the quantized copy (prefill's, of 32 rows or more, convert the
    // matrix to fp32 scratch first and run sgemm); the embedding rows are dequantized from it.
    QType weights;
} InferOptions;

typedef struct {
    const Model *m;
    int B, T_max;          // rows, positions per row (<= cfg.max_seq_len)
    int *len;              // (B) positions filled in each row
    InferOptions opt;      // as resolved by infer_init_ex (defaults filled in)
    // Key and value storage, one pool each: L layers of n_blocks blocks of block_size positions of
    // NKV*HD elements (elem_bytes each). KV_CONTIGUOUS is the case of one block of T_max per row,
    // block b being row b's; KV_NONE keeps none between calls (its pool is per-call scratch).
    size_t elem_bytes;
    int block_size, n_blocks, max_blocks;   // max_blocks: a row's block-table width, ceil(T_max / block_size)
    void *k_pool, *v_pool;
    size_t pool_bytes;     // bytes of each of k_pool and v_pool
    int *block_table;      // (B, max_blocks) physical block of each logical block of a row; -1: none
    int *n_held;           // (B) blocks each row holds
    int *promised;         // (B) blocks promised to each row by infer_admit
    int *free_blocks;      // stack of the free block ids; n_free of them
    int n_free;
    int32_t *history;      // KV_NONE: (B, T_max) every token fed to each row
    float *rope_cos, *rope_sin;// (T_max, HD/2), from model_rope_tables
    // scratch for N rows at a time, grown on demand
    int cap, cap_out, threads;
    float *x, *xn, *rstd, *q, *k, *v, *ao, *proj, *gate, *up, *logits;
    float *att_scratch;    // (threads, group*T_max scores + a chunk of converted keys or values)
    // per entry: its position; KV_NONE also keeps there, after the N entries of the call, the
    // entries it runs (the touched rows' history in front): position, pool row and token
    int *pos, *vrow;
    int32_t *vtok;
    int *vtable;           // KV_NONE: (2B) the scratch pool's block table, then each row's pool row
    int cap_entries, cap_vtable;
    float *row_logits;     // (B, V) infer_prefill's result
    QMat *qw;              // (7 L + 1) with quantized weights: wq wk wv wo w_gate w_up w_down of each layer, then the head
    float *wdeq;           // with quantized weights: the largest matrix in fp32, for prefill's products
    size_t wdeq_size;
} InferState;

// infer_init: KV_CONTIGUOUS with fp32 keys and values. infer_init_ex: the mode, type and pool of
// *opt (NULL: infer_init's); dies naming the field when an option is out of range.
void infer_init(InferState *s, const Model *m, int B, int T_max);
void infer_init_ex(InferState *s, const Model *m, int B, int T_max, const InferOptions *opt);
void infer_reset(InferState *s);                 // empties every row
void infer_reset_row(InferState *s, int row);    // empties one row: its blocks and its promise go back to the pool
void infer_free(InferState *s);
// Bytes of the weights the engine reads per forward: the matrices in their format (the fp32 model's
// for QT_F32) plus the fp32 norms.
size_t infer_weight_bytes(const InferState *s);
// Quantizes every weight matrix of m (the tied embedding too) to t and back in place: the model then
// computes what an engine with t weights computes, up to the activation rounding of the Q8_0/Q4_0
// kernels (quant.h). For quality measurements (lab-eval ppl --format).
void infer_roundtrip_weights(Model *m, QType t);
// With quantized weights: gives the pages of the model's fp32 matrices back to the OS, so that a
// process holds what a server loading the quantized file would (for memory measurements). The
// engine never reads them again; the Model is good for nothing else afterwards (its matrices read
// as zeros). Does nothing with QT_F32.
void infer_release_source_weights(InferState *s);

// Feeds N tokens: entry i is token tokens[i] of row rows[i], at that row's next position. Entries of
// one row must come in order; all of an entry's row up to and including it is attended to. Returns
// the logits (N, V), valid until the next call. Dies when a row would pass T_max, or when a paged
// row needs a block and none is free beyond those promised to other rows (see infer_admit).
const float *infer_forward(InferState *s, int N, const int *rows, const int32_t *tokens);
// Prefill: row b gets prompts[b][0..lens[b]) after what it holds. Returns the logits (B, V) of each
// row's last prompt token (rows with lens[b] == 0 keep zeros).
const float *infer_prefill(InferState *s, const int32_t *const *prompts, const int *lens);

// Admission for a scheduler: promises an empty row the blocks for n_tokens positions (prompt and
// output), so that it can never run out of blocks on the way. Returns 0, or -1 (nothing changed)
// when the free blocks not already promised are too few; always 0 outside KV_PAGED. The blocks are
// still taken one at a time as the row grows (the memory accounting below sees that); the promise
// ends at infer_reset_row.
int infer_admit(InferState *s, int row, int n_tokens);
int infer_blocks_for(const InferState *s, int n_tokens);   // KV_PAGED: ceil(n / block_size); else 0

// KV memory accounting, in bytes, keys and values together, all layers:
//   token_bytes      one position: 2 * L * NKV * HD * elem_bytes
//   capacity_bytes   what is allocated for keys and values now (KV_NONE: its scratch, sized by the
//                    largest forward so far; nothing in it outlives the call)
//   allocated_bytes  what rows hold: KV_CONTIGUOUS T_max positions for every row holding a
//                    sequence, KV_PAGED the blocks held, KV_NONE 0
//   used_bytes       positions filled: sum of len over rows (KV_NONE 0) times token_bytes
// The waste of an allocation scheme is 1 - used / allocated.
size_t infer_kv_token_bytes(const InferState *s);
size_t infer_kv_capacity_bytes(const InferState *s);
size_t infer_kv_allocated_bytes(const InferState *s);
size_t infer_kv_used_bytes(const InferState *s);

// fp16 conversion, round to nearest even (overflow to inf, NaN kept quiet), as the KV cache stores
// it: the scalar portable functions, and the bulk ones the cache uses (F16C where compiled for it).
uint16_t infer_f32_to_f16(float f);
float infer_f16_to_f32(uint16_t h);
void infer_f16_store(uint16_t *dst, const float *src, size_t n);
void infer_f16_load(float *dst, const uint16_t *src, size_t n);

// ---------------------------------------------------------------------------------------------
// sampling

typedef struct {
    float temperature;  // <= 0: greedy (argmax, lowest id on ties)
    int top_k;          // keep the k most probable tokens; 0: all
    float top_p;        // keep the smallest most-probable set whose mass reaches top_p; 1: all
} SamplerConfig;

// Draws one token from softmax(logits / temperature) restricted by top_k then top_p (ties in
// probability ordered by id, so the draw is deterministic given the Rng). top_k == 1, or a top_p
// small enough to keep one token, gives the argmax. work: V floats and V ints of scratch.
int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *work_p,
                 int *work_idx);

// ---------------------------------------------------------------------------------------------
// stop rules

typedef enum { STOP_NONE, STOP_EOT, STOP_STRING, STOP_DEDENT, STOP_MAX_TOKENS, STOP_CONTEXT } StopReason;
const char *stop_reason_name(StopReason r);  // "none", "eot", "stop", "dedent", "max_tokens", "context"

// HumanEval's stop strings: "\ndef", "\nclass", "\nif", "\nprint", "\n#"
extern const char *const humaneval_stops[5];

// Checks the completion text (len bytes) against the stop strings and, when dedent != 0, the dedent
// rule; at_line_start: whether the completion begins at the start of a line (the prompt ended in
// '\n'). Returns STOP_STRING or STOP_DEDENT with *keep = the bytes to keep, or STOP_NONE.
StopReason stop_check(const char *text, size_t len, int at_line_start, const char *const *stops,
                      int n_stops, int dedent, size_t *keep);

// ---------------------------------------------------------------------------------------------
// generation

typedef struct {
    int max_new_tokens;
    SamplerConfig sampler;
    const char *const *stops; int n_stops;
    int stop_on_dedent;
    int eot;              // token id that ends a completion; -1: none
} GenConfig;

typedef struct {
    const int32_t *prompt; int prompt_len;  // >= 1 token
    int at_line_start;                      // the prompt's text ends in '\n'
    uint64_t seed;
} GenRequest;

typedef struct {
    char *text; size_t len;   // the completion's text, NUL-terminated (free())
    int32_t *tokens;          // (n_tokens) sampled ids (free())
    int n_tokens;
    StopReason stop;
} Completion;

// Generates a completion for each of the n requests (out[i] for reqs[i]), up to s->B at a time,
// decoding text through bpe. Uses and resets s's cache. With KV_PAGED a request takes a free row
// once infer_admit promises it every position it may feed (prompt + max_new_tokens - 1, at most
// T_max); dies when a request alone needs more than the pool.
void infer_generate(InferState *s, const Bpe *bpe, const GenConfig *gc, const GenRequest *reqs,
                    int n, Completion *out);
void completion_free(Completion *c);
