// metrics: pass@k, Levenshtein distance, edit similarity, exact match (definitions in metrics.h).
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------------------------------------
// pass@k

const int64_t METRICS_PASS_K[METRICS_N_PASS_K] = {1, 10, 100};

double metrics_pass_at_k(int64_t n, int64_t c, int64_t k) {
    if (k < 1) lab_die("metrics: pass@k expected k >= 1, found k = %lld", (long long)k);
    if (c < 0 || c > n)
        lab_die("metrics: pass@k expected 0 <= c <= n passing samples, found c = %lld, n = %lld", (long long)c,
                (long long)n);
    if (k > n) return NAN;
    // Every k-subset holds a passing sample (the product below would reach its zero factor at i = k).
    if (n - c < k) return 1.0;
    // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (i - k) / i: no binomial coefficient is formed, so
    // nothing overflows for any n, and every factor lies in (0, 1).
    double miss = 1.0;
    for (int64_t i = n - c + 1; i <= n; i++) miss *= 1.0 - (double)k / (double)i;
    return 1.0 - miss;
}

int metrics_pass_k_reportable(const int64_t *n, size_t n_tasks, int64_t k) {
    if (n_tasks == 0) return 0;
    for (size_t t = 0; t < n_tasks; t++)
        if (n[t] < k) return 0;
    return 1;
}

double metrics_pass_at_k_mean(const int64_t *n, const int64_t *c, size_t n_tasks, int64_t k) {
    if (!metrics_pass_k_reportable(n, n_tasks, k)) return NAN;
    double sum = 0;
    for (size_t t = 0; t < n_tasks; t++) sum += metrics_pass_at_k(n[t], c[t], k);
    return sum / (double)n_tasks;
}

// ---------------------------------------------------------------------------------------------
// characters

// Length of the well-formed UTF-8 sequence at s[0..n) (Unicode table 3-7), 0 when there is none.
static size_t utf8_sequence_len(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte; later ones are always 80..BF
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) lo = 0xA0;        // below: overlong
        else if (b == 0xED) hi = 0x9F;   // above: surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) lo = 0x90;        // below: overlong
        else if (b == 0xF4) hi = 0x8F;   // above: beyond U+10FFFF
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

size_t metrics_utf8_units(const uint8_t *text, size_t n, uint32_t *out) {
    size_t units = 0;
    for (size_t i = 0; i < n; units++) {
        size_t len = utf8_sequence_len(text + i, n - i);
        uint32_t v;
        if (len == 0) {
            v = 0x110000u + text[i];
            len = 1;
        } else if (len == 1) v = text[i];
        else {
            v = text[i] & (0x7Fu >> len);
            for (size_t j = 1; j < len; j++) v = (v << 6) | (text[i + j] & 0x3Fu);
        }
        if (out) out[units] = v;
        i += len;
    }
    return units;
}

size_t metrics_utf8_sanitize(const char *text, size_t n, char *out) {
    const uint8_t *t = (const uint8_t *)text;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence_len(t + i, n - i);
        if (len == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memmove(out + o, text + i, len);
            o += len;
            i += len;
        }
    }
    return o;
}

// ---------------------------------------------------------------------------------------------
// Levenshtein distance

size_t metrics_levenshtein_u32(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    // A common prefix or suffix never needs an edit, and trimming it is free on near-identical pairs.
    while (na && nb && a[0] == b[0]) a++, b++, na--, nb--;
    while (na && nb && a[na - 1] == b[nb - 1]) na--, nb--;
    if (nb > na) {
        const uint32_t *t = a; a = b; b = t;
        size_t tn = na; na = nb; nb = tn;
    }
    if (nb == 0) return na;
    // prev[j] = lev(a[0..i-1), b[0..j)), cur[j] = lev(a[0..i), b[0..j)); rows run over the shorter b.
    size_t *rows = lab_malloc(2 * (nb + 1) * sizeof(size_t)), *prev = rows, *cur = rows + nb + 1;
    for (size_t j = 0; j <= nb; j++) prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        size_t *t = prev; prev = cur; cur = t;
    }
    size_t d = prev[nb];
    free(rows);
    return d;
}

// lev over the code points of two texts; *ua and *ub get their lengths in units.
static size_t levenshtein_chars(const char *a, size_t na, const char *b, size_t nb, size_t *ua, size_t *ub) {
    uint32_t *pa = lab_malloc((na + nb + 1) * sizeof(uint32_t)), *pb;
    *ua = metrics_utf8_units((const uint8_t *)a, na, pa);
    pb = pa + *ua;
    *ub = metrics_utf8_units((const uint8_t *)b, nb, pb);
    size_t d = metrics_levenshtein_u32(pa, *ua, pb, *ub);
    free(pa);
    return d;
}

size_t metrics_levenshtein_chars(const char *a, size_t na, const char *b, size_t nb) {
    size_t ua, ub;
    return levenshtein_chars(a, na, b, nb, &ua, &ub);
}

// Equality of int32 ids is equality of their bit patterns, so the ids are read as uint32 (a
// signed/unsigned pair of the same type may alias).
size_t metrics_levenshtein_tokens(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return metrics_levenshtein_u32((const uint32_t *)a, na, (const uint32_t *)b, nb);
}

static double edit_similarity(size_t d, size_t na, size_t nb) {
    size_t longest = na > nb ? na : nb;
    return longest == 0 ? 1.0 : 1.0 - (double)d / (double)longest;
}

double metrics_edit_similarity_chars(const char *a, size_t na, const char *b, size_t nb) {
    size_t ua, ub;
    size_t d = levenshtein_chars(a, na, b, nb, &ua, &ub);
    return edit_similarity(d, ua, ub);
}

double metrics_edit_similarity_tokens(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return edit_similarity(metrics_levenshtein_tokens(a, na, b, nb), na, nb);
}

// ---------------------------------------------------------------------------------------------
// exact match

int metrics_exact_match(const char *a, size_t na, const char *b, size_t nb) {
    return na == nb && memcmp(a, b, na) == 0;
}

static int is_trailing_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

size_t metrics_normalize(const char *text, size_t n, char *out) {
    // The write position never passes the read position, so out may be text.
    size_t m = 0, line_start = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n') {
            while (m > line_start && is_trailing_space(out[m - 1])) m--;
            out[m++] = '\n';
            line_start = m;
        } else out[m++] = text[i];
    }
    while (m > line_start && is_trailing_space(out[m - 1])) m--;
    while (m > 0 && out[m - 1] == '\n') m--;
    return m;
}

int metrics_exact_match_normalized(const char *a, size_t na, const char *b, size_t nb) {
    char *pa = lab_malloc(na + nb + 1), *pb = pa + na;
    size_t ma = metrics_normalize(a, na, pa);
    size_t mb = metrics_normalize(b, nb, pb);
    int same = metrics_exact_match(pa, ma, pb, mb);
    free(pa);
    return same;
}
