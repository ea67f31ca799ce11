// metrics: pass@k against hand-computed values, against exact integer binomials (every n <= 30,
// every c, every k <= n) and against a long double product of the other form for large n;
// monotone in k and c, exactly 1 when n - c < k, NaN when k > n, bad arguments die. The UTF-8
// decoder on chosen well-formed and ill-formed sequences; Levenshtein over characters against a
// naive full-matrix DP on thousands of random texts built from known units (multibyte and invalid
// UTF-8 included), classic examples, symmetry, identity, bounds, the triangle inequality; over
// token ids against the same DP; edit similarity in [0, 1] and its definition; exact match and
// the normalization against a split/strip/join reference.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics.h"
#include "test_util.h"

// ---------------------------------------------------------------------------------------------
// pass@k

static void test_pass_at_k_hand(void) {
    CHECK(fabs(metrics_pass_at_k(10, 1, 1) - 0.1) < 1e-15, "n=10 c=1 k=1: expected 0.1, found %.17g",
          metrics_pass_at_k(10, 1, 1));
    double want = 1.0 - 21.0 / 252.0;  // 1 - C(7,5)/C(10,5)
    CHECK(fabs(metrics_pass_at_k(10, 3, 5) - want) < 1e-15, "n=10 c=3 k=5: expected %.17g, found %.17g", want,
          metrics_pass_at_k(10, 3, 5));
    want = 1.0 - 190.0 / 200.0 * 189.0 / 199.0;  // 1 - C(198,10)/C(200,10)
    CHECK(fabs(metrics_pass_at_k(200, 2, 10) - want) < 1e-15, "n=200 c=2 k=10: expected %.17g, found %.17g", want,
          metrics_pass_at_k(200, 2, 10));
    CHECK(metrics_pass_at_k(10, 0, 1) == 0.0 && metrics_pass_at_k(200, 0, 100) == 0.0, "no passing sample: exactly 0");
    CHECK(metrics_pass_at_k(10, 10, 1) == 1.0, "every sample passes: exactly 1");
    CHECK(metrics_pass_at_k(5, 3, 3) == 1.0, "n - c = 2 < k = 3: exactly 1");
    CHECK(metrics_pass_at_k(1, 1, 1) == 1.0 && metrics_pass_at_k(1, 0, 1) == 0.0, "n = 1");
    CHECK(isnan(metrics_pass_at_k(5, 2, 6)), "k > n: expected NaN, found %g", metrics_pass_at_k(5, 2, 6));
    CHECK(isnan(metrics_pass_at_k(0, 0, 1)), "no samples: expected NaN");
    CHECK(isnan(metrics_pass_at_k(99, 99, 100)), "k > n with every sample passing is still NaN");
}

// Every n <= 30, c <= n, k <= n against 1 - C(n-c,k)/C(n,k) from exact Pascal's-triangle integers.
static void test_pass_at_k_exhaustive(void) {
    enum { N = 30 };
    uint64_t binom[N + 1][N + 1] = {{0}};
    for (int n = 0; n <= N; n++) {
        binom[n][0] = 1;
        for (int k = 1; k <= n; k++) binom[n][k] = binom[n - 1][k - 1] + binom[n - 1][k];
    }
    double maxerr = 0;
    int bad_exact = 0, bad_monotone = 0, cases = 0;
    for (int n = 1; n <= N; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++, cases++) {
                double got = metrics_pass_at_k(n, c, k);
                long double ref = (long double)(binom[n][k] - binom[n - c][k]) / (long double)binom[n][k];
                maxerr = fmax(maxerr, fabs((double)((long double)got - ref)));
                if (n - c < k && got != 1.0) bad_exact++;
                if (c == 0 && got != 0.0) bad_exact++;
                // The true values are non-decreasing in k and in c; allow rounding of a few ulps.
                if (k > 1 && got < metrics_pass_at_k(n, c, k - 1) - 1e-15) bad_monotone++;
                if (c > 0 && got < metrics_pass_at_k(n, c - 1, k) - 1e-15) bad_monotone++;
            }
    CHECK(maxerr < 1e-14, "pass@k vs exact binomials over %d cases: max error %.3g (tolerance 1e-14)", cases, maxerr);
    CHECK(bad_exact == 0, "%d cases not exactly 1 (n - c < k) or 0 (c = 0)", bad_exact);
    CHECK(bad_monotone == 0, "%d cases where pass@k decreases in k or c", bad_monotone);
    printf("pass@k: %d cases n <= %d, max |error| vs exact binomials %.3g\n", cases, N, maxerr);
}

// Large n against C(n-c,k)/C(n,k) = prod_{i<k} (n-c-i)/(n-i) in long double (a product over k
// factors, where the code under test multiplies c factors).
static void test_pass_at_k_large(void) {
    Rng rng;
    rng_seed(&rng, 7);
    const int64_t ns[] = {100, 200, 1000, 5000};
    double maxerr = 0;
    for (int a = 0; a < 4; a++)
        for (int trial = 0; trial < 200; trial++) {
            int64_t n = ns[a], c = rng_below(&rng, (uint32_t)n + 1);
            for (int j = 0; j < METRICS_N_PASS_K; j++) {
                int64_t k = METRICS_PASS_K[j];
                long double miss = 1.0L;
                // stops at the factor n-c-i = 0, when every k-subset holds a passing sample
                for (int64_t i = 0; i < k && miss > 0; i++) miss *= (long double)(n - c - i) / (long double)(n - i);
                double got = metrics_pass_at_k(n, c, k);
                maxerr = fmax(maxerr, fabs((double)((long double)got - (1.0L - miss))));
            }
        }
    CHECK(maxerr < 1e-12, "pass@k for n up to 5000 vs the long double k-factor product: max error %.3g", maxerr);
}

static void test_pass_at_k_mean(void) {
    int64_t n[164], c[164];
    Rng rng;
    rng_seed(&rng, 3);
    for (int t = 0; t < 164; t++) {
        n[t] = 200;
        c[t] = rng_below(&rng, 201);
    }
    for (int j = 0; j < METRICS_N_PASS_K; j++) {
        int64_t k = METRICS_PASS_K[j];
        double sum = 0;
        for (int t = 0; t < 164; t++) sum += metrics_pass_at_k(n[t], c[t], k);
        double got = metrics_pass_at_k_mean(n, c, 164, k);
        CHECK(fabs(got - sum / 164) < 1e-15, "mean pass@%lld: expected %.17g, found %.17g", (long long)k, sum / 164, got);
        CHECK(metrics_pass_k_reportable(n, 164, k), "n = 200 reports pass@%lld", (long long)k);
    }
    n[17] = 50;
    c[17] = 50;
    CHECK(!metrics_pass_k_reportable(n, 164, 100) && isnan(metrics_pass_at_k_mean(n, c, 164, 100)),
          "one task with n = 50 < 100: pass@100 not reported");
    CHECK(metrics_pass_k_reportable(n, 164, 10) && !isnan(metrics_pass_at_k_mean(n, c, 164, 10)),
          "one task with n = 50: pass@10 still reported");
    n[17] = 99;
    CHECK(!metrics_pass_k_reportable(n, 164, 100), "one task with n = 99: pass@100 not reported");
    n[17] = 100;
    CHECK(metrics_pass_k_reportable(n, 164, 100) && !isnan(metrics_pass_at_k_mean(n, c, 164, 100)),
          "the smallest n = 100: pass@100 reported");
    CHECK(!metrics_pass_k_reportable(n, 0, 1) && isnan(metrics_pass_at_k_mean(n, c, 0, 1)), "no tasks: not reported");
    int64_t n2[2] = {10, 10}, c2[2] = {1, 3};
    CHECK(fabs(metrics_pass_at_k_mean(n2, c2, 2, 1) - 0.2) < 1e-15, "mean pass@1 of c = 1, 3 of 10: expected 0.2");
    CHECK(fabs(metrics_pass_at_k_mean(n2, c2, 2, 5) - (0.5 * (1.0 - 126.0 / 252.0) + 0.5 * (1.0 - 21.0 / 252.0))) < 1e-15,
          "mean pass@5 of c = 1, 3 of 10");
}

static void die_bad_pass_args(const char *which) {
    if (!strcmp(which, "k0")) metrics_pass_at_k(10, 1, 0);
    if (!strcmp(which, "c>n")) metrics_pass_at_k(10, 11, 1);
    if (!strcmp(which, "c<0")) metrics_pass_at_k(10, -1, 1);
}

static void test_pass_at_k_errors(void) {
    const char *cases[3][2] = {{"k0", "expected k >= 1, found k = 0"},
                               {"c>n", "found c = 11, n = 10"},
                               {"c<0", "found c = -1, n = 10"}};
    for (int i = 0; i < 3; i++) {
        char err[512];
        int code = test_run_child(die_bad_pass_args, cases[i][0], err, sizeof err);
        CHECK(code == 1 && strstr(err, cases[i][1]), "pass@k with %s: expected exit 1 and '%s', found %d '%s'",
              cases[i][0], cases[i][1], code, err);
    }
}

// ---------------------------------------------------------------------------------------------
// UTF-8 units

static void expect_units(const char *bytes, size_t n, const uint32_t *want, size_t n_want, const char *what) {
    uint32_t got[16];
    size_t m = metrics_utf8_units((const uint8_t *)bytes, n, got);
    int same = m == n_want && memcmp(got, want, m * sizeof *got) == 0;
    CHECK(same, "%s: expected %zu units, found %zu (first 0x%X)", what, n_want, m, m ? got[0] : 0);
    CHECK(metrics_utf8_units((const uint8_t *)bytes, n, NULL) == m, "%s: counting alone gives another count", what);
}
#define EXPECT_UNITS(bytes, what, ...) do { const uint32_t w_[] = {__VA_ARGS__}; \
    expect_units(bytes, sizeof(bytes) - 1, w_, sizeof w_ / sizeof *w_, what); } while (0)

static void test_utf8_units(void) {
    EXPECT_UNITS("a\x7f", "ASCII", 'a', 0x7F);
    EXPECT_UNITS("caf\xc3\xa9", "2 bytes", 'c', 'a', 'f', 0xE9);
    EXPECT_UNITS("\xe2\x82\xac\xef\xbf\xbd", "3 bytes", 0x20AC, 0xFFFD);
    EXPECT_UNITS("\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80", "3-byte edges", 0x800, 0xD7FF, 0xE000);
    EXPECT_UNITS("\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xf0\x90\x80\x80", "4 bytes", 0x1F600, 0x10FFFF, 0x10000);
    EXPECT_UNITS("\xe2\x82x", "truncated", 0x1100E2, 0x110082, 'x');
    EXPECT_UNITS("\xe2\x82", "truncated at the end", 0x1100E2, 0x110082);
    EXPECT_UNITS("\xc0\x80", "overlong 2", 0x1100C0, 0x110080);
    EXPECT_UNITS("\xe0\x80\x80", "overlong 3", 0x1100E0, 0x110080, 0x110080);
    EXPECT_UNITS("\xed\xa0\x80", "surrogate", 0x1100ED, 0x1100A0, 0x110080);
    EXPECT_UNITS("\xf4\x90\x80\x80", "beyond U+10FFFF", 0x1100F4, 0x110090, 0x110080, 0x110080);
    EXPECT_UNITS("\xff\xfe\xf5", "never valid", 0x1100FF, 0x1100FE, 0x1100F5);
    EXPECT_UNITS("\x80\xc3\xa9\xbf", "lone continuations", 0x110080, 0xE9, 0x1100BF);
    CHECK(metrics_utf8_units((const uint8_t *)"", 0, NULL) == 0, "empty text: 0 units");
}

// ---------------------------------------------------------------------------------------------
// Levenshtein over characters

// The reference: the full (na+1) x (nb+1) matrix.
static size_t naive_lev(const int64_t *a, size_t na, const int64_t *b, size_t nb) {
    size_t *d = lab_malloc((na + 1) * (nb + 1) * sizeof(size_t));
#define D(i, j) d[(i) * (nb + 1) + (j)]
    for (size_t i = 0; i <= na; i++) D(i, 0) = i;
    for (size_t j = 0; j <= nb; j++) D(0, j) = j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = D(i - 1, j - 1) + (a[i - 1] != b[j - 1]), del = D(i - 1, j) + 1, ins = D(i, j - 1) + 1;
            D(i, j) = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    size_t r = D(na, nb);
#undef D
    free(d);
    return r;
}

// Pieces of text with the units they must decode to. Every ill-formed piece is complete in itself
// (a truncated sequence is followed by 'x'), so pieces never merge across their boundary.
typedef struct { const char *bytes; int n_units; uint32_t units[4]; } Piece;
static const Piece PIECES[] = {
    {"a", 1, {'a'}}, {"b", 1, {'b'}}, {"c", 1, {'c'}}, {" ", 1, {' '}}, {"\n", 1, {'\n'}},
    {"\xc3\xa9", 1, {0xE9}}, {"\xc3\xa8", 1, {0xE8}}, {"\xe2\x82\xac", 1, {0x20AC}}, {"\xe6\x97\xa5", 1, {0x65E5}},
    {"\xf0\x9f\x98\x80", 1, {0x1F600}}, {"\xf0\x9f\x98\x81", 1, {0x1F601}},
    {"\x80", 1, {0x110080}}, {"\xa9", 1, {0x1100A9}}, {"\xc0", 1, {0x1100C0}}, {"\xff", 1, {0x1100FF}},
    {"\xe2\x82x", 3, {0x1100E2, 0x110082, 'x'}}, {"\xf0\x9f\x98x", 4, {0x1100F0, 0x11009F, 0x110098, 'x'}},
    {"\xed\xa0\x80", 3, {0x1100ED, 0x1100A0, 0x110080}}, {"\xe0\x80\xaf", 3, {0x1100E0, 0x110080, 0x1100AF}},
};
enum { N_PIECES = sizeof PIECES / sizeof *PIECES, MAX_PIECES = 40 };

typedef struct { char bytes[MAX_PIECES * 4 + 1]; size_t n; int64_t units[MAX_PIECES * 4]; size_t n_units; } Text;

static void text_from_pieces(Text *t, const int *pieces, int n) {
    t->n = t->n_units = 0;
    for (int i = 0; i < n; i++) {
        const Piece *p = &PIECES[pieces[i]];
        size_t len = strlen(p->bytes);
        memcpy(t->bytes + t->n, p->bytes, len);
        t->n += len;
        for (int u = 0; u < p->n_units; u++) t->units[t->n_units++] = p->units[u];
    }
}

// A random text, or (half the time) a few random edits of `base`'s pieces, so that distances
// cover both near and far pairs.
static int random_pieces(Rng *rng, int *out, const int *base, int n_base) {
    int n = 0;
    if (base && rng_below(rng, 2)) {
        int edits = (int)rng_below(rng, 5);
        memcpy(out, base, (size_t)n_base * sizeof *out);
        n = n_base;
        for (int e = 0; e < edits; e++) {
            int op = (int)rng_below(rng, 3), at = n ? (int)rng_below(rng, (uint32_t)n) : 0;
            if (op == 0 && n < MAX_PIECES) {
                memmove(out + at + 1, out + at, (size_t)(n - at) * sizeof *out);
                out[at] = (int)rng_below(rng, N_PIECES);
                n++;
            } else if (op == 1 && n > 0) {
                memmove(out + at, out + at + 1, (size_t)(n - at - 1) * sizeof *out);
                n--;
            } else if (n > 0) out[at] = (int)rng_below(rng, N_PIECES);
        }
        return n;
    }
    n = (int)rng_below(rng, MAX_PIECES / 2 + 1);
    // Mostly a 4-piece alphabet, so that random texts share many units.
    for (int i = 0; i < n; i++) out[i] = (int)(rng_below(rng, 4) ? rng_below(rng, 4) : rng_below(rng, N_PIECES));
    return n;
}

static size_t lev_text(const Text *a, const Text *b) { return metrics_levenshtein_chars(a->bytes, a->n, b->bytes, b->n); }

static void test_lev_chars_examples(void) {
    struct { const char *a, *b; size_t d; } ex[] = {
        {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"intention", "execution", 5}, {"Saturday", "Sunday", 3},
        {"", "abc", 3}, {"abc", "", 3}, {"", "", 0}, {"abc", "abc", 0}, {"ab", "ba", 2},
        {"caf\xc3\xa9", "cafe", 1}, {"na\xc3\xafve", "naive", 1}, {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac", 1},
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x81", 1}, {"\xe2\x82\xac", "\xe2\x82", 2}, {"\xff", "\xc3\xbf", 1},
    };
    for (size_t i = 0; i < sizeof ex / sizeof *ex; i++) {
        size_t d = metrics_levenshtein_chars(ex[i].a, strlen(ex[i].a), ex[i].b, strlen(ex[i].b));
        CHECK(d == ex[i].d, "lev(\"%s\", \"%s\"): expected %zu, found %zu", ex[i].a, ex[i].b, ex[i].d, d);
    }
    double es = metrics_edit_similarity_chars("kitten", 6, "sitting", 7);
    CHECK(fabs(es - (1.0 - 3.0 / 7.0)) < 1e-15, "es(kitten, sitting): expected 4/7, found %.17g", es);
    CHECK(metrics_edit_similarity_chars("", 0, "", 0) == 1.0, "es of two empty texts: expected 1");
    CHECK(metrics_edit_similarity_chars("ab", 2, "ba", 2) == 0.0, "es(ab, ba): expected 0 (difflib's ratio says 0.5)");
    es = metrics_edit_similarity_chars("caf\xc3\xa9", 5, "cafe", 4);
    CHECK(fabs(es - 0.75) < 1e-15, "es(café, cafe) over code points: expected 0.75, found %.17g", es);
}

static void test_lev_chars_random(void) {
    Rng rng;
    rng_seed(&rng, 11);
    enum { PAIRS = 4000 };
    int pa[MAX_PIECES], pb[MAX_PIECES], pc[MAX_PIECES];
    static Text a, b, c;
    int bad_ref = 0, bad_decode = 0, bad_sym = 0, bad_ident = 0, bad_bounds = 0, bad_tri = 0, bad_es = 0;
    size_t max_d = 0, multibyte = 0;
    for (int trial = 0; trial < PAIRS; trial++) {
        int na = random_pieces(&rng, pa, NULL, 0);
        int nb = random_pieces(&rng, pb, pa, na);
        int nc = random_pieces(&rng, pc, pb, nb);
        text_from_pieces(&a, pa, na);
        text_from_pieces(&b, pb, nb);
        text_from_pieces(&c, pc, nc);
        multibyte += a.n != a.n_units;

        uint32_t units[MAX_PIECES * 4];
        size_t m = metrics_utf8_units((const uint8_t *)a.bytes, a.n, units);
        int same = m == a.n_units;
        for (size_t i = 0; same && i < m; i++) same = units[i] == (uint32_t)a.units[i];
        bad_decode += !same;

        size_t ab = lev_text(&a, &b), ref = naive_lev(a.units, a.n_units, b.units, b.n_units);
        bad_ref += ab != ref;
        max_d = ab > max_d ? ab : max_d;
        bad_sym += lev_text(&b, &a) != ab;
        int equal = a.n_units == b.n_units && memcmp(a.units, b.units, a.n_units * sizeof *a.units) == 0;
        bad_ident += lev_text(&a, &a) != 0 || (ab == 0) != equal;
        size_t lo = a.n_units > b.n_units ? a.n_units - b.n_units : b.n_units - a.n_units;
        size_t hi = a.n_units > b.n_units ? a.n_units : b.n_units;
        bad_bounds += ab < lo || ab > hi;
        bad_tri += lev_text(&a, &c) > ab + lev_text(&b, &c);

        double es = metrics_edit_similarity_chars(a.bytes, a.n, b.bytes, b.n);
        double want = hi == 0 ? 1.0 : 1.0 - (double)ref / (double)hi;
        bad_es += !(es >= 0.0 && es <= 1.0) || es != want || (es == 1.0) != equal;
    }
    CHECK(bad_decode == 0, "%d random texts decode to other units than they were built from", bad_decode);
    CHECK(bad_ref == 0, "%d of %d random pairs differ from the full-matrix DP", bad_ref, PAIRS);
    CHECK(bad_sym == 0, "%d pairs where lev(a,b) != lev(b,a)", bad_sym);
    CHECK(bad_ident == 0, "%d pairs where lev(a,a) != 0 or lev(a,b) == 0 for a != b", bad_ident);
    CHECK(bad_bounds == 0, "%d pairs outside |len a - len b| <= lev <= max(len a, len b)", bad_bounds);
    CHECK(bad_tri == 0, "%d triples break the triangle inequality", bad_tri);
    CHECK(bad_es == 0, "%d pairs with edit similarity outside [0,1] or not 1 - lev/max", bad_es);
    CHECK(multibyte > PAIRS / 2 && max_d > 20, "the random texts were too tame: %zu multibyte, max distance %zu",
          multibyte, max_d);
}

// ---------------------------------------------------------------------------------------------
// Levenshtein over tokens

static void test_lev_tokens(void) {
    Rng rng;
    rng_seed(&rng, 13);
    const int32_t pool[] = {0, 1, 2, 3, 50256, -1, INT32_MIN, INT32_MAX};
    enum { PAIRS = 3000 };
    int32_t a[64], b[64];
    int64_t a64[64], b64[64];
    int bad = 0, bad_es = 0;
    for (int trial = 0; trial < PAIRS; trial++) {
        size_t na = rng_below(&rng, 49), nb = rng_below(&rng, 49);
        int narrow = (int)rng_below(&rng, 2);  // half the pairs over 3 ids: many matches
        for (size_t i = 0; i < na; i++) a64[i] = a[i] = pool[rng_below(&rng, narrow ? 3 : 8)];
        for (size_t i = 0; i < nb; i++) b64[i] = b[i] = pool[rng_below(&rng, narrow ? 3 : 8)];
        if (trial % 4 == 0 && na > 0) {  // a near copy: one substitution
            memcpy(b, a, na * sizeof *a);
            memcpy(b64, a64, na * sizeof *a64);
            nb = na;
            b64[na / 2] = b[na / 2] = pool[rng_below(&rng, 8)];
        }
        size_t d = metrics_levenshtein_tokens(a, na, b, nb), ref = naive_lev(a64, na, b64, nb);
        bad += d != ref;
        double es = metrics_edit_similarity_tokens(a, na, b, nb);
        size_t hi = na > nb ? na : nb;
        bad_es += !(es >= 0 && es <= 1) || es != (hi ? 1.0 - (double)ref / (double)hi : 1.0);
    }
    CHECK(bad == 0, "%d of %d random token pairs differ from the full-matrix DP", bad, PAIRS);
    CHECK(bad_es == 0, "%d token pairs with a wrong edit similarity", bad_es);

    // A long sequence against a short one: the rows run over the short one.
    enum { LONG = 3000, SHORT = 25 };
    int32_t *la = lab_malloc(LONG * sizeof *la);
    int64_t *la64 = lab_malloc(LONG * sizeof *la64);
    for (int i = 0; i < LONG; i++) la64[i] = la[i] = pool[rng_below(&rng, 4)];
    for (int i = 0; i < SHORT; i++) b64[i] = b[i] = pool[rng_below(&rng, 4)];
    size_t ref = naive_lev(la64, LONG, b64, SHORT);
    CHECK(metrics_levenshtein_tokens(la, LONG, b, SHORT) == ref && metrics_levenshtein_tokens(b, SHORT, la, LONG) == ref,
          "long vs short: expected %zu", ref);
    CHECK(metrics_levenshtein_tokens(la, LONG, NULL, 0) == LONG, "against nothing: the length");
    free(la);
    free(la64);
}

// ---------------------------------------------------------------------------------------------
// exact match

// The reference normalization: split at \n, strip each line's trailing whitespace, join, strip the
// trailing \n.
static size_t naive_normalize(const char *s, size_t n, char *out) {
    size_t m = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\n') continue;
        size_t end = i;
        while (end > start && strchr(" \t\r\f\v", s[end - 1])) end--;
        if (start > 0) out[m++] = '\n';
        memcpy(out + m, s + start, end - start);
        m += end - start;
        start = i + 1;
    }
    while (m > 0 && out[m - 1] == '\n') m--;
    return m;
}

static void test_exact_match(void) {
    CHECK(metrics_exact_match("x = 1", 5, "x = 1", 5), "equal bytes match");
    CHECK(!metrics_exact_match("x = 1\n", 6, "x = 1", 5), "a trailing newline counts in exact match");
    CHECK(!metrics_exact_match("caf\xc3\xa9", 5, "cafe\xcc\x81", 6), "no Unicode normalization (NFC vs NFD)");
    CHECK(metrics_exact_match("", 0, "", 0), "two empty texts match");
    struct { const char *a, *b; int same; } ex[] = {
        {"x = 1  \r\n\n", "x = 1", 1}, {"a \nb\t\n", "a\nb", 1}, {"", "\n\n  \n", 1}, {"  x", "x", 0},
        {"a\n\nb", "a\nb", 0}, {"a\n \nb", "a\n\nb", 1}, {"def f():\n    pass", "def f():\n  pass", 0},
    };
    for (size_t i = 0; i < sizeof ex / sizeof *ex; i++)
        CHECK(metrics_exact_match_normalized(ex[i].a, strlen(ex[i].a), ex[i].b, strlen(ex[i].b)) == ex[i].same,
              "normalized match of \"%s\" and \"%s\": expected %d", ex[i].a, ex[i].b, ex[i].same);

    Rng rng;
    rng_seed(&rng, 17);
    const char alphabet[] = "ab \t\r\n\n";
    int bad = 0, bad_inplace = 0;
    for (int trial = 0; trial < 3000; trial++) {
        char s[16], got[16], ref[16];
        size_t n = rng_below(&rng, 15);
        for (size_t i = 0; i < n; i++) s[i] = alphabet[rng_below(&rng, sizeof alphabet - 1)];
        size_t m = metrics_normalize(s, n, got), r = naive_normalize(s, n, ref);
        bad += m != r || memcmp(got, ref, m) != 0;
        bad_inplace += metrics_normalize(s, n, s) != r || memcmp(s, ref, r) != 0;
    }
    CHECK(bad == 0, "%d random texts normalize unlike the split/strip/join reference", bad);
    CHECK(bad_inplace == 0, "%d random texts normalize differently in place", bad_inplace);
}

int main(int argc, char **argv) {
    lab_init("test_metrics", argc, argv);
    double t0 = lab_now();
    test_pass_at_k_hand();
    test_pass_at_k_exhaustive();
    test_pass_at_k_large();
    test_pass_at_k_mean();
    test_pass_at_k_errors();
    test_utf8_units();
    test_lev_chars_examples();
    test_lev_chars_random();
    test_lev_tokens();
    test_exact_match();
    printf("test_metrics: %.2f s\n", lab_now() - t0);
    return test_summary();
}
