// tokens: one split of a tokens.h5 (codelm-lab/tokens/1) in memory, and the batches made from it.
//
// Training batches: row b of micro-batch `micro` of step `step` starts at a position drawn from
// (seed, step, micro, b) alone, uniformly over the split's token stream (documents concatenated,
// each ending in its eot token). No state carries from one batch to the next, so a run resumed at
// step s sees exactly the data an uninterrupted run sees from step s on.
// Validation batches: a fixed set of windows spread evenly over the split, the same at every
// evaluation and in every run.
//
// Pairs files (lab-tokenizer encode-pairs) hold one prompt + completion + eot document per pair
// and say how many of each document's first tokens are prompt (doc_prompt_tokens). Their batches
// are one document per row, from its start, and only the completion is scored: the prompt is
// context, as at generation time, where it is given and the completion sampled after it.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *path, *split;
    int vocab_size, eot_token;
    int32_t *tokens; uint64_t n_tokens;
    uint64_t *doc_offsets; uint64_t n_docs;   // n_docs + 1 offsets
    int32_t *doc_package;                     // (n_docs) row in packages
    uint64_t *doc_bytes;                      // (n_docs)
    char **packages; uint64_t n_packages;     // names, from the file's /packages
    uint32_t *token_bytes;                    // (vocab_size) bytes each token stands for
    uint64_t *doc_prompt_tokens;              // (n_docs) prompt tokens at each document's start;
                                              // NULL unless the file is a pairs file
} TokenSplit;

// Loads group /<split> of PATH; dies naming the file and the splits it has when the split is absent.
// Checks every token id against vocab_size and the offsets for consistency, and that each
// document's prompt (pairs files) leaves at least its eot after it.
void tokens_load(TokenSplit *ts, const char *path, const char *split);
void tokens_free(TokenSplit *ts);

// inputs and targets (B, T): row b is tokens[s, s+T) and tokens[s+1, s+T+1), s from
// (seed, step, micro, b). Dies when the split holds fewer than T+1 tokens.
void tokens_train_batch(const TokenSplit *ts, uint64_t seed, int64_t step, int micro, int B, int T,
                        int32_t *inputs, int32_t *targets);
// Validation batch i of n_batches: B windows at evenly spaced positions (window i*B + b of
// n_batches*B spread over the split, overlapping when the split is short).
void tokens_val_batch(const TokenSplit *ts, int i, int n_batches, int B, int T, int32_t *inputs,
                      int32_t *targets);
// Entropy (nats) of the unigram distribution of the split's tokens: the loss of a model that
// knows only token frequencies. A trained model must beat it.
double tokens_unigram_entropy(const TokenSplit *ts);

// ---------------------------------------------------------------------------------------------
// pairs: one document per row, the loss on its completion only (ts->doc_prompt_tokens != NULL)

// inputs and targets (B, T): row b holds document d = lab_hash64(h ^ b) mod n_docs, with h =
// lab_hash64(lab_hash64(lab_hash64(seed) ^ step) ^ micro) (the hash tokens_train_batch draws its
// starts from): drawn from (seed, step, micro, b) alone, uniformly over the documents. With x the document (prompt p tokens, then the completion, then
// eot; length n): inputs[t] = x[t] for t < n and eot after it (padding); targets[t] = x[t+1] when
// p <= t+1 < n (a completion token or the final eot), else -1 (prompt and padding: not scored).
// A document longer than T+1 tokens is cut: its tokens from x[T+1] on are not seen.
void tokens_pairs_train_batch(const TokenSplit *ts, uint64_t seed, int64_t step, int micro, int B, int T,
                              int32_t *inputs, int32_t *targets);
// Validation batch i of n_batches: row b holds document floor(w (n_docs-1) / (W-1)), w = i*B + b,
// W = n_batches*B (documents evenly spaced from the first to the last; some repeat when
// W > n_docs, and some are skipped when W < n_docs); rows built as in the train batch.
void tokens_pairs_val_batch(const TokenSplit *ts, int i, int n_batches, int B, int T, int32_t *inputs,
                            int32_t *targets);
// Scored targets of document d in a row of T positions.
uint64_t tokens_pairs_scored(const TokenSplit *ts, uint64_t d, int T);
// Total scored targets of all documents (each once) in rows of T positions; dies naming the file,
// split and document when one has none (its prompt is longer than T, or it is eot alone).
uint64_t tokens_pairs_check(const TokenSplit *ts, int T);
