// minhash: near-duplicate detection for source files with MinHash signatures, LSH banding and an
// exact Jaccard check of every candidate pair.
//
// A file's shingles are its runs of k consecutive tokens, a token being a maximal run of
// [A-Za-z0-9_] or non-ASCII bytes (punctuation and whitespace separate tokens and are otherwise
// ignored, so reformatting a file barely moves it). Each shingle is a 64-bit hash; the signature
// holds, for each of n_perm hash functions h_i(x) = (a_i x + b_i) >> 32 (a_i odd, mod 2^64), the
// minimum over the file's shingles. Two signatures agree in a slot with probability equal to the
// Jaccard similarity of the shingle sets.
//
// LSH: the signature is cut into `bands` bands of `rows` slots; two files become a candidate pair
// when any band agrees. Every candidate is then checked with the exact Jaccard of the two shingle
// sets, so the threshold that decides is exactly the one asked for; the bands only have to make
// sure that pairs at the threshold become candidates (see minhash_auto_bands).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_perm;     // signature length (hash functions)
    int bands;      // LSH bands
    int rows;       // slots per band; bands * rows <= n_perm
    int shingle;    // tokens per shingle
    uint64_t seed;  // derives the hash functions
    uint64_t *a, *b;
} MinHash;

// bands <= 0: chosen by minhash_auto_bands for `threshold`. Dies when bands * rows > n_perm.
void minhash_init(MinHash *m, int n_perm, int bands, int shingle, double threshold, uint64_t seed);
void minhash_free(MinHash *m);

// The most rows per band (fewest chance candidates) with which a pair of Jaccard `threshold`
// still becomes a candidate with probability >= 0.99: 1 - (1 - t^r)^b, b = n_perm / r.
// 128 permutations, threshold 0.85: 16 bands of 8 rows (a pair at 0.85 is a candidate with
// probability 0.994; one at 0.5 with 0.06).
void minhash_auto_bands(int n_perm, double threshold, int *bands, int *rows);
// Probability that a pair of Jaccard similarity j shares at least one band.
double minhash_candidate_probability(int bands, int rows, double j);

// The sorted, distinct shingle hashes of text[0..n). *out is malloc'ed (NULL when there are none);
// returns how many. A text with fewer than k tokens has one shingle made of all its tokens.
size_t minhash_shingles(const uint8_t *text, size_t n, int k, uint64_t **out);
// Jaccard similarity of two sorted distinct sets (0 when both are empty).
double minhash_jaccard_sets(const uint64_t *x, size_t nx, const uint64_t *y, size_t ny);
// Exact Jaccard similarity of the shingle sets of two texts.
double minhash_jaccard(const uint8_t *x, size_t nx, const uint8_t *y, size_t ny, int k);

// sig has n_perm entries. Returns 0 (and fills sig with UINT32_MAX) when the text has no tokens.
int minhash_signature(const MinHash *m, const uint8_t *text, size_t n, uint32_t *sig);
// Fraction of agreeing slots: an estimate of the Jaccard similarity (std ~ sqrt(j(1-j)/n_perm)).
double minhash_estimate(const uint32_t *x, const uint32_t *y, int n_perm);

// Near-duplicate removal over n documents taken in index order. A document is a duplicate when
// its Jaccard similarity with an earlier document that was kept is >= threshold; the first of
// every group therefore stays, and which one that is depends only on the order. Documents with
// active[i] == 0 take no part (NULL: all do), and neither do those without tokens. A candidate
// whose MinHash estimate is more than 0.15 below the threshold (over 3 standard deviations at 128
// permutations) is rejected without computing the exact Jaccard.
// Writes dup_of[i] = the kept document that i duplicates, or -1. Returns the number of duplicates.
// Signatures are computed in parallel (OpenMP); show_progress: progress lines on stderr.
size_t minhash_dedup(const MinHash *m, double threshold, size_t n, const uint8_t *const *text,
                     const size_t *len, const uint8_t *active, int64_t *dup_of, int show_progress);
