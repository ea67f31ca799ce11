// tokens: one split of a tokens.h5 (codelm-lab/tokens/1) in memory, and the batches made from it.
//
// Training batches: row b of micro-batch `micro` of step `step` starts at a position drawn from
// (seed, step, micro, b) alone, uniformly over the split's token stream (documents concatenated,
// each ending in its eot token). No state carries from one batch to the next, so a run resumed at
// step s sees exactly the data an uninterrupted run sees from step s on.
// Validation batches: a fixed set of windows spread evenly over the split, the same at every
// evaluation and in every run.
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
} TokenSplit;

// Loads group /<split> of PATH; dies naming the file and the splits it has when the split is absent.
// Checks every token id against vocab_size and the offsets for consistency.
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
