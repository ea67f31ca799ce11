// infer: generation on the CPU with a contiguous KV cache, sampling, and stop rules.
//
// An InferState runs the same math as model_forward (model.c) over a loaded Model's parameters
// (host memory: the CPU backend; an adapter must be merged first with lora_merge), but keeps each
// layer's keys and values, after RoPE, in a cache of shape (B, T_max, NKV, HD), so that a new token
// costs one row through every layer instead of the whole sequence.
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

// ---------------------------------------------------------------------------------------------
// the cached forward

typedef struct {
    const Model *m;
    int B, T_max;          // rows of the cache, positions per row (<= cfg.max_seq_len)
    int *len;              // (B) positions filled in each row
    float *k_cache, *v_cache;  // (L, B, T_max, NKV*HD), keys after RoPE
    float *rope_cos, *rope_sin;// (T_max, HD/2), from model_rope_tables
    // scratch for N rows at a time, grown on demand
    int cap;
    float *x, *xn, *rstd, *q, *k, *v, *ao, *proj, *gate, *up, *logits;
    float *scores;         // (threads, T_max)
    float *row_logits;     // (B, V) infer_prefill's result
} InferState;

void infer_init(InferState *s, const Model *m, int B, int T_max);
void infer_reset(InferState *s);   // empties every row of the cache
void infer_free(InferState *s);

// Feeds N tokens: entry i is token tokens[i] of row rows[i], at that row's next position. Entries of
// one row must come in order; all of an entry's row up to and including it is attended to. Returns
// the logits (N, V), valid until the next call. Dies when a row would pass T_max.
const float *infer_forward(InferState *s, int N, const int *rows, const int32_t *tokens);
// Prefill: row b gets prompts[b][0..lens[b]) after what it holds. Returns the logits (B, V) of each
// row's last prompt token (rows with lens[b] == 0 keep zeros).
const float *infer_prefill(InferState *s, const int32_t *const *prompts, const int *lens);

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
// decoding text through bpe. Uses and resets s's cache.
void infer_generate(InferState *s, const Bpe *bpe, const GenConfig *gc, const GenRequest *reqs,
                    int n, Completion *out);
void completion_free(Completion *c);
