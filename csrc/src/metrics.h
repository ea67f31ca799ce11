// metrics: the scores of the evaluation suite. pass@k of functional correctness, Levenshtein
// distance over characters and over tokens, edit similarity, exact match.
//
// Exact definitions
// -----------------
// pass@k (one task). n samples were drawn, c of them pass every test. pass@k is the unbiased
//   estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on Code", eq. 1):
//       pass@k = 1 - C(n-c, k) / C(n, k)
//   the probability that k samples drawn without replacement from the n include a passing one.
//   It is computed in double in the product form that never forms a binomial coefficient:
//       pass@k = 1 - prod_{i=n-c+1}^{n} (1 - k/i)
//   and it is exactly 1.0 when n - c < k (every k-subset holds a passing sample) and exactly 0.0
//   when c = 0. When k > n the estimator is undefined: the value is NaN, meaning "not reported".
//   Arguments outside 1 <= k, 0 <= c <= n die (a caller's bug, not a data condition).
// pass@k (a set of tasks). The unweighted mean over tasks of the per-task value. NaN (not
//   reported) when there are no tasks or when any task has n < k: a mean over only the tasks that
//   allow k would change the task set from one k to the next.
// Reported k. METRICS_PASS_K = {1, 10, 100}, each only where every task has n >= k
//   (metrics_pass_k_reportable).
//
// Characters. A text is UTF-8 bytes; its characters are Unicode code points. A well-formed
//   sequence (the shortest encoding of a scalar value U+0000..U+10FFFF, no surrogates
//   U+D800..U+DFFF: Unicode table 3-7) is one unit whose value is the code point. Any byte that
//   does not start a well-formed sequence is one unit on its own, with the value 0x110000 + byte,
//   so it equals no code point and only the same invalid byte; decoding resumes at the next byte.
//   Hence "E2 82" (a truncated euro sign) is 2 units, "C0 80" (overlong) is 2, "ED A0 80" (a
//   surrogate) is 3. No normalization (NFC, case, whitespace) is applied.
// Tokens. int32 ids, compared for equality; any values (negative ones included) are allowed.
// Levenshtein distance lev(a, b): the fewest insertions, deletions and substitutions of one unit
//   each (unit cost) that turn a into b. Computed with the two-row dynamic programme over the
//   shorter sequence: O(len a * len b) time, O(min(len a, len b)) memory.
// Edit similarity: es(a, b) = 1 - lev(a, b) / max(len a, len b), lengths in the same units
//   (code points or tokens), and 1.0 when both are empty. It lies in [0, 1]; 1 iff a == b. This is
//   NOT fuzzywuzzy's / rapidfuzz's `ratio`, which is 2 * M / (len a + len b) with M the matches
//   that difflib's SequenceMatcher finds (a heuristic that depends on the library and its
//   version; "ab" vs "ba" gives ratio 0.5, es 0.0). Some papers report es * 100.
// Exact match. metrics_exact_match: byte equality, no normalization at all.
//   metrics_exact_match_normalized: byte equality after metrics_normalize, which removes the
//   trailing whitespace (space, \t, \r, \f, \v) of every line (lines end at \n) and then every
//   trailing \n of the text: "x = 1  \r\n\n" and "x = 1" match; leading indentation, blank lines
//   inside the text and every other byte still count.
#pragma once
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// pass@k

#define METRICS_N_PASS_K 3
extern const int64_t METRICS_PASS_K[METRICS_N_PASS_K];  // {1, 10, 100}

// pass@k of one task with n samples of which c pass; NaN when k > n.
double metrics_pass_at_k(int64_t n, int64_t c, int64_t k);
// Mean pass@k over n_tasks tasks (n[t] samples, c[t] passing); NaN when n_tasks == 0 or any n[t] < k.
double metrics_pass_at_k_mean(const int64_t *n, const int64_t *c, size_t n_tasks, int64_t k);
// 1 when pass@k is reported for these tasks: n_tasks > 0 and every n[t] >= k.
int metrics_pass_k_reportable(const int64_t *n, size_t n_tasks, int64_t k);

// ---------------------------------------------------------------------------------------------
// characters

// Decodes text[0..n) into units as defined above; out (room for n units) may be NULL to count only.
// Returns the number of units.
size_t metrics_utf8_units(const uint8_t *text, size_t n, uint32_t *out);
// Writes text[0..n) to out (room for 3 n bytes) with each invalid byte replaced by U+FFFD (EF BF BD),
// so the result is well-formed UTF-8, as HDF5 strings declared UTF-8 must be. Returns its length.
size_t metrics_utf8_sanitize(const char *text, size_t n, char *out);

// ---------------------------------------------------------------------------------------------
// Levenshtein distance and edit similarity

// Over any 32-bit unit sequences (what the others reduce to).
size_t metrics_levenshtein_u32(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);
// Over the characters (code points) of two UTF-8 texts.
size_t metrics_levenshtein_chars(const char *a, size_t na, const char *b, size_t nb);
// Over two token id sequences.
size_t metrics_levenshtein_tokens(const int32_t *a, size_t na, const int32_t *b, size_t nb);

double metrics_edit_similarity_chars(const char *a, size_t na, const char *b, size_t nb);
double metrics_edit_similarity_tokens(const int32_t *a, size_t na, const int32_t *b, size_t nb);

// ---------------------------------------------------------------------------------------------
// exact match

int metrics_exact_match(const char *a, size_t na, const char *b, size_t nb);
// Writes the normalized text[0..n) to out (room for n bytes; out == text is allowed) and returns its length.
size_t metrics_normalize(const char *text, size_t n, char *out);
int metrics_exact_match_normalized(const char *a, size_t na, const char *b, size_t nb);
