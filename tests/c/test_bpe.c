// bpe: the pre-tokenizer's chunks on chosen strings; training against a naive reference that
// recounts every pair at every merge over the same chunks (same merges, and encoding every chunk
// gives the reference's final tokens); exact round trips on random bytes (invalid UTF-8
// included), synthetic Python and every file of a real corpus (the standard library's .py files);
// the cache changes nothing; tokenizer.h5 saves, loads and encodes the same, and a tampered one is
// refused.
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe.h"
#include "common.h"
#include "h5io.h"
#include "test_util.h"

// ---------------------------------------------------------------------------------------------
// helpers

typedef struct { uint8_t *data; size_t n, cap; } Buf;

static void buf_add(Buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->data = lab_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->n, p, n);
    b->n += n;
}
static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

// Encodes, checks the ids are in range, decodes and compares; returns the token count.
static size_t roundtrip(const Bpe *b, BpeCache *cache, const uint8_t *s, size_t n, const char *what) {
    BpeTokens t = {0};
    bpe_encode(b, cache, s, n, &t);
    size_t m = 0;
    uint8_t *back = bpe_decode(b, t.ids, t.n, &m);
    CHECK(back != NULL, "%s: decode refused the ids encode made", what);
    int same = back && m == n && memcmp(back, s, n) == 0;
    CHECK(same, "%s: round trip of %zu bytes gave %zu bytes%s", what, n, m, m == n ? " that differ" : "");
    for (size_t i = 0; i < t.n; i++)
        if (t.ids[i] >= (uint32_t)b->eot) { CHECK(0, "%s: encode made id %u >= eot", what, t.ids[i]); break; }
    size_t ntok = t.n;
    free(back);
    bpe_tokens_free(&t);
    return ntok;
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizer

static void expect_chunks(const char *text, size_t n, const char *const *want, int n_want) {
    int k = 0, ok = 1;
    char got[2048] = "";
    for (size_t i = 0, len; i < n; i += len, k++) {
        len = bpe_chunk_len((const uint8_t *)text + i, n - i);
        if (k >= n_want || strlen(want[k]) != len || memcmp(want[k], text + i, len) != 0) ok = 0;
        size_t g = strlen(got);
        snprintf(got + g, sizeof got - g, "[%.*s]", (int)len, text + i);
    }
    CHECK(ok && k == n_want, "chunks of \"%s\": found %s", text, got);
}
#define EXPECT_CHUNKS(text, ...) do { const char *const w_[] = {__VA_ARGS__}; \
    expect_chunks(text, sizeof(text) - 1, w_, (int)(sizeof w_ / sizeof *w_)); } while (0)

static void test_pretokenizer(void) {
    EXPECT_CHUNKS("def foo(x):\n    return x + 42\n",
                  "def", " foo", "(", "x", "):", "\n    ", "return", " x", " +", " 42", "\n");
    EXPECT_CHUNKS("class A_b2(Base):\n\n        pass", "class", " A_b2", "(", "Base", "):", "\n\n        ", "pass");
    EXPECT_CHUNKS("a  = 1", "a", " ", " =", " 1");
    EXPECT_CHUNKS("    x", "   ", " x");
    EXPECT_CHUNKS("x   \n", "x", "   ", "\n");
    EXPECT_CHUNKS("x\t= 3.14e-5", "x", "\t", "=", " 3.14e", "-", "5");
    EXPECT_CHUNKS("0xFF 1_000 10j v3.11.2", "0xFF", " 1_000", " 10j", " v3", ".", "11.2");
    EXPECT_CHUNKS("x = 1.\n", "x", " =", " 1", ".", "\n");
    EXPECT_CHUNKS("\r\n  y\n  \n\tz", "\r\n  ", "y", "\n  ", "\n\t", "z");
    EXPECT_CHUNKS("\"\"\"Doc.\"\"\"", "\"\"\"", "Doc", ".\"\"\"");
    EXPECT_CHUNKS("#########", "####", "####", "#");
    EXPECT_CHUNKS("f(**kw) -> None:", "f", "(**", "kw", ")", " ->", " None", ":");
    EXPECT_CHUNKS("caf\xc3\xa9 na\xc3\xafve \xe2\x86\x92", "caf", "\xc3\xa9", " na", "\xc3\xaf", "ve", " \xe2\x86\x92");
    EXPECT_CHUNKS("a\x01\x7f b", "a", "\x01", "\x7f", " b");
    EXPECT_CHUNKS("x  \x01", "x", "  ", "\x01");
    EXPECT_CHUNKS(" ", " ");
    EXPECT_CHUNKS("  ", "  ");

    // Every byte's class: " X" is one chunk for punctuation, letters, digits and bytes >= 0x80, two
    // for control bytes (and a lone space before a line break or a tab stays on its own).
    for (int c = 0; c < 256; c++) {
        uint8_t s2[2] = {' ', (uint8_t)c};
        int joins = (c >= 0x21 && c <= 0x7e) || c >= 0x80;
        size_t len = bpe_chunk_len(s2, 2);
        int want = joins ? 2 : (c == ' ' || c == '\t' || c == '\f' || c == '\v') ? 2 : 1;
        CHECK(len == (size_t)want, "chunk of \" \\x%02x\": expected %d bytes, found %zu", c, want, len);
    }

    // The length cap: a 300-byte identifier is cut into 128 + 128 + 44; a space before it counts.
    char longid[301];
    memset(longid, 'a', 300);
    longid[300] = 0;
    size_t a = bpe_chunk_len((uint8_t *)longid, 300), b = bpe_chunk_len((uint8_t *)longid + 128, 172);
    CHECK(a == BPE_MAX_CHUNK && b == BPE_MAX_CHUNK && bpe_chunk_len((uint8_t *)longid + 256, 44) == 44,
          "a 300-byte identifier: expected chunks 128, 128, 44, found %zu, %zu", a, b);
    longid[0] = ' ';
    CHECK(bpe_chunk_len((uint8_t *)longid, 300) == BPE_MAX_CHUNK, "a space + long identifier is capped too");

    // On random bytes chunks tile the text, each 1..BPE_MAX_CHUNK long.
    Rng r;
    rng_seed(&r, 7);
    uint8_t *s = lab_malloc(1 << 16);
    for (int i = 0; i < 1 << 16; i++) s[i] = (uint8_t)rng_below(&r, i % 3 ? 256 : 128);
    size_t total = 0, bad = 0;
    for (size_t i = 0, len; i < 1 << 16; i += len) {
        len = bpe_chunk_len(s + i, (1 << 16) - i);
        if (len < 1 || len > BPE_MAX_CHUNK) bad++;
        total += len;
    }
    CHECK(total == 1 << 16 && bad == 0, "chunks of random bytes: %zu bad lengths, total %zu", bad, total);
    free(s);
}

// ---------------------------------------------------------------------------------------------
// synthetic Python

static const char *const NAMES[] = {"self", "value", "items", "result", "index", "count", "data",
    "key", "node", "parent", "buffer", "offset", "length", "config", "path", "name", "x", "y", "i"};
static const char *const FUNCS[] = {"get", "update", "parse_args", "__init__", "read", "write",
    "append", "len", "isinstance", "range", "sorted", "format"};

static void synthetic_python(Buf *out, uint64_t seed, int n_funcs) {
    Rng r;
    rng_seed(&r, seed);
#define PICK(a) a[rng_below(&r, sizeof a / sizeof *a)]
    char line[512];
    for (int f = 0; f < n_funcs; f++) {
        snprintf(line, sizeof line, "def %s_%u(%s, %s=%u):\n    \"\"\"Return the %s of %s.\"\"\"\n",
                 PICK(FUNCS), rng_below(&r, 100), PICK(NAMES), PICK(NAMES), rng_below(&r, 1000),
                 PICK(NAMES), PICK(NAMES));
        buf_str(out, line);
        int n_lines = 2 + (int)rng_below(&r, 8);
        for (int l = 0; l < n_lines; l++) {
            int depth = 1 + (int)rng_below(&r, 3);
            for (int d = 0; d < depth; d++) buf_str(out, "    ");
            switch (rng_below(&r, 5)) {
            case 0: snprintf(line, sizeof line, "%s = %s.%s(%s)\n", PICK(NAMES), PICK(NAMES), PICK(FUNCS), PICK(NAMES)); break;
            case 1: snprintf(line, sizeof line, "if %s > %u:\n", PICK(NAMES), rng_below(&r, 64)); break;
            case 2: snprintf(line, sizeof line, "for %s in %s(%s):\n", PICK(NAMES), PICK(FUNCS), PICK(NAMES)); break;
            case 3: snprintf(line, sizeof line, "%s[%s] += %u.%u  # caf\xc3\xa9 \xe2\x86\x92\n", PICK(NAMES), PICK(NAMES),
                             rng_below(&r, 10), rng_below(&r, 100)); break;
            default: snprintf(line, sizeof line, "return %s\n", PICK(NAMES)); break;
            }
            buf_str(out, line);
        }
        buf_str(out, rng_below(&r, 2) ? "\n\n" : "\n   \n");
    }
#undef PICK
}

// ---------------------------------------------------------------------------------------------
// naive reference: recount every pair over every chunk at every merge

typedef struct { const uint8_t *p; size_t n; } Span;

static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

typedef struct { int n_merges; int32_t *merges; uint32_t **words; size_t *wlen; Span *chunk; size_t n_words; } Naive;

static Naive naive_bpe(const uint8_t *const *texts, const size_t *lens, size_t n, int vocab_size) {
    size_t n_spans = 0, cap = 1024;
    Span *spans = lab_malloc(cap * sizeof(Span));
    for (size_t d = 0; d < n; d++)
        for (size_t i = 0, k; i < lens[d]; i += k) {
            k = bpe_chunk_len(texts[d] + i, lens[d] - i);
            if (n_spans == cap) spans = lab_realloc(spans, (cap *= 2) * sizeof(Span));
            spans[n_spans++] = (Span){texts[d] + i, k};
        }
    qsort(spans, n_spans, sizeof(Span), span_cmp);
    Naive nv = {0};
    nv.words = lab_malloc((n_spans + 1) * sizeof(uint32_t *));
    nv.wlen = lab_malloc((n_spans + 1) * sizeof(size_t));
    nv.chunk = lab_malloc((n_spans + 1) * sizeof(Span));
    int64_t *count = lab_malloc((n_spans + 1) * sizeof(int64_t));
    for (size_t i = 0; i < n_spans; i++) {
        if (i > 0 && span_cmp(&spans[i], &spans[i - 1]) == 0) { count[nv.n_words - 1]++; continue; }
        nv.chunk[nv.n_words] = spans[i];
        nv.words[nv.n_words] = lab_malloc(spans[i].n * sizeof(uint32_t));
        for (size_t j = 0; j < spans[i].n; j++) nv.words[nv.n_words][j] = spans[i].p[j];
        nv.wlen[nv.n_words] = spans[i].n;
        count[nv.n_words++] = 1;
    }
    free(spans);
    size_t V = (size_t)vocab_size;
    int64_t *pc = lab_malloc(V * V * sizeof(int64_t));
    nv.merges = lab_malloc((size_t)vocab_size * 2 * sizeof(int32_t));
    for (int m = 0; m < vocab_size - 257; m++) {
        memset(pc, 0, V * V * sizeof(int64_t));
        for (size_t w = 0; w < nv.n_words; w++)
            for (size_t j = 0; j + 1 < nv.wlen[w]; j++) pc[nv.words[w][j] * V + nv.words[w][j + 1]] += count[w];
        size_t best = 0;
        for (size_t k = 1; k < V * V; k++) if (pc[k] > pc[best]) best = k;  // first = smallest (l, r)
        if (pc[best] == 0) break;
        uint32_t l = (uint32_t)(best / V), r = (uint32_t)(best % V), c = 256 + (uint32_t)m;
        nv.merges[2 * m] = (int32_t)l;
        nv.merges[2 * m + 1] = (int32_t)r;
        nv.n_merges++;
        for (size_t w = 0; w < nv.n_words; w++) {
            size_t j = 0;
            for (size_t i = 0; i < nv.wlen[w];) {
                if (i + 1 < nv.wlen[w] && nv.words[w][i] == l && nv.words[w][i + 1] == r) { nv.words[w][j++] = c; i += 2; }
                else nv.words[w][j++] = nv.words[w][i++];
            }
            nv.wlen[w] = j;
        }
    }
    free(pc);
    free(count);
    return nv;
}

static void naive_free(Naive *nv) {
    for (size_t w = 0; w < nv->n_words; w++) free(nv->words[w]);
    free(nv->words); free(nv->wlen); free(nv->chunk); free(nv->merges);
}

static void compare_with_naive(const char *what, const uint8_t *const *texts, const size_t *lens, size_t n,
                               int vocab_size) {
    Naive nv = naive_bpe(texts, lens, n, vocab_size);
    Bpe *b = bpe_train(texts, lens, n, vocab_size, NULL, 0);
    CHECK(b->n_merges == nv.n_merges, "%s: %d merges, the reference made %d", what, b->n_merges, nv.n_merges);
    int first_diff = -1;
    for (int m = 0; m < b->n_merges && m < nv.n_merges; m++)
        if (b->merges[2 * m] != nv.merges[2 * m] || b->merges[2 * m + 1] != nv.merges[2 * m + 1]) { first_diff = m; break; }
    CHECK(first_diff < 0, "%s: merge %d is (%d, %d), the reference has (%d, %d)", what, first_diff,
          first_diff < 0 ? 0 : b->merges[2 * first_diff], first_diff < 0 ? 0 : b->merges[2 * first_diff + 1],
          first_diff < 0 ? 0 : nv.merges[2 * first_diff], first_diff < 0 ? 0 : nv.merges[2 * first_diff + 1]);
    // Encoding a chunk by merge rank gives the tokens the reference ended with.
    size_t mismatched = 0;
    BpeTokens t = {0};
    for (size_t w = 0; w < nv.n_words; w++) {
        t.n = 0;
        bpe_encode(b, NULL, nv.chunk[w].p, nv.chunk[w].n, &t);
        if (t.n != nv.wlen[w] || memcmp(t.ids, nv.words[w], t.n * sizeof(uint32_t)) != 0) mismatched++;
    }
    CHECK(mismatched == 0, "%s: %zu of %zu chunks encode differently from the reference's final tokens",
          what, mismatched, nv.n_words);
    bpe_tokens_free(&t);
    bpe_free(b);
    naive_free(&nv);
}

static void test_against_naive(void) {
    // Overlaps and ties: "aaaa" with (a, a), "abab", equal counts everywhere.
    const char *tricky[] = {"aaaa aaaaa aaa bbbb abab ababab", "aaaaaaa", "ba ab ba ab cd dc", "zz zz zz yy yy yy",
                            "\n\n\n\n    \n        \n", "\xff\xff\xff\xfe\xfe"};
    const uint8_t *tp[6];
    size_t tl[6];
    for (int i = 0; i < 6; i++) { tp[i] = (const uint8_t *)tricky[i]; tl[i] = strlen(tricky[i]); }
    compare_with_naive("tricky strings", tp, tl, 6, 300);  // runs out of pairs before 300

    Buf py = {0};
    synthetic_python(&py, 11, 400);
    const uint8_t *pp = py.data;
    compare_with_naive("synthetic python", &pp, &py.n, 1, 420);
    free(py.data);
}

// ---------------------------------------------------------------------------------------------
// round trips

static void test_roundtrips(void) {
    Buf py = {0};
    synthetic_python(&py, 3, 2000);
    const uint8_t *pp = py.data;
    BpeTrainStats st;
    Bpe *b = bpe_train(&pp, &py.n, 1, 1000, &st, 0);
    CHECK(b->vocab_size == 1000 && b->eot == 999 && b->n_merges == 743,
          "vocab 1000: found vocab_size %d, eot %d, %d merges", b->vocab_size, b->eot, b->n_merges);
    CHECK(st.n_bytes == py.n && st.n_unique_chunks > 0 && st.n_chunks > st.n_unique_chunks,
          "stats: %llu bytes of %zu, %llu chunks, %llu unique", (unsigned long long)st.n_bytes, py.n,
          (unsigned long long)st.n_chunks, (unsigned long long)st.n_unique_chunks);
    BpeCache *cache = bpe_cache_new();
    size_t ntok = roundtrip(b, cache, py.data, py.n, "synthetic python");
    CHECK((double)py.n / (double)ntok > 3.0, "synthetic python: only %.2f bytes per token", (double)py.n / (double)ntok);

    // Every token's bytes are its pair's bytes; eot has none.
    size_t len;
    bpe_token_bytes(b, (uint32_t)b->eot, &len);
    CHECK(len == 0, "eot has %zu bytes, expected none", len);
    for (int m = 0; m < b->n_merges; m++) {
        size_t ln, ll, lr;
        const uint8_t *t = bpe_token_bytes(b, 256 + (uint32_t)m, &ln);
        const uint8_t *l = bpe_token_bytes(b, (uint32_t)b->merges[2 * m], &ll);
        const uint8_t *r = bpe_token_bytes(b, (uint32_t)b->merges[2 * m + 1], &lr);
        if (ln != ll + lr || memcmp(t, l, ll) || memcmp(t + ll, r, lr)) { CHECK(0, "token %d is not its pair", 256 + m); break; }
    }

    // Random bytes: all 256 values, invalid UTF-8, lone continuation bytes, NULs; with and without cache.
    Rng r;
    rng_seed(&r, 99);
    for (int trial = 0; trial < 50; trial++) {
        size_t n = rng_below(&r, 5000);
        uint8_t *s = lab_malloc(n + 1);
        int alphabet = trial % 3 == 0 ? 256 : trial % 3 == 1 ? 8 : 128;
        for (size_t i = 0; i < n; i++) s[i] = (uint8_t)(alphabet == 8 ? (uint32_t)(uint8_t)" \n\xc3\xa9\x80" "ab_"[rng_below(&r, 8)] : rng_below(&r, alphabet));
        roundtrip(b, cache, s, n, "random bytes");
        BpeTokens t1 = {0}, t2 = {0};
        bpe_encode(b, NULL, s, n, &t1);
        bpe_encode(b, cache, s, n, &t2);
        CHECK(t1.n == t2.n && memcmp(t1.ids, t2.ids, t1.n * sizeof(uint32_t)) == 0, "the cache changed an encoding");
        bpe_tokens_free(&t1);
        bpe_tokens_free(&t2);
        free(s);
    }
    roundtrip(b, cache, (const uint8_t *)"", 0, "empty text");
    size_t m;
    uint32_t bad = (uint32_t)b->vocab_size;
    CHECK(bpe_decode(b, &bad, 1, &m) == NULL, "decode accepted id %u >= vocab_size", bad);
    uint32_t with_eot[3] = {'a', (uint32_t)b->eot, 'b'};
    uint8_t *d = bpe_decode(b, with_eot, 3, &m);
    CHECK(d && m == 2 && memcmp(d, "ab", 2) == 0, "eot decodes to nothing");
    free(d);
    bpe_cache_free(cache);
    bpe_free(b);
    free(py.data);
}

// ---------------------------------------------------------------------------------------------
// a real corpus: Python files of the standard library, read directly

typedef struct { char **paths; size_t n, cap; } PathList;

static void collect_py(PathList *pl, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "site-packages") == 0 || strcmp(e->d_name, "test") == 0) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) continue;
        size_t L = strlen(e->d_name);
        if (S_ISDIR(st.st_mode) && depth < 2) collect_py(pl, p, depth + 1);
        else if (S_ISREG(st.st_mode) && L > 3 && strcmp(e->d_name + L - 3, ".py") == 0 && st.st_size < 300000) {
            if (pl->n == pl->cap) pl->paths = lab_realloc(pl->paths, (pl->cap = pl->cap * 2 + 64) * sizeof(char *));
            pl->paths[pl->n++] = lab_strdup(p);
        }
    }
    closedir(d);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void save_and_load(const Bpe *b, const uint8_t *const *texts, const size_t *lens, size_t n);

static void test_real_corpus(void) {
    const char *root = "/usr/lib/python3.11";
    PathList pl = {0};
    collect_py(&pl, root, 0);
    // Debian 12's python3 (which set-up installs) ships these files: their absence is a failure.
    CHECK(pl.n >= 100, "real corpus: expected at least 100 .py files under %s, found %zu", root, pl.n);
    if (pl.n < 100) return;
    qsort(pl.paths, pl.n, sizeof(char *), str_cmp);
    while (pl.n > 400) free(pl.paths[--pl.n]);
    uint8_t **texts = lab_malloc(pl.n * sizeof(uint8_t *));
    size_t *lens = lab_malloc(pl.n * sizeof(size_t)), total = 0;
    for (size_t i = 0; i < pl.n; i++) { texts[i] = (uint8_t *)test_read_file(pl.paths[i], &lens[i]); total += lens[i]; }
    // Train on every fourth file, encode every file.
    size_t nt = 0;
    const uint8_t **tt = lab_malloc(pl.n * sizeof(uint8_t *));
    size_t *tl = lab_malloc(pl.n * sizeof(size_t));
    for (size_t i = 0; i < pl.n; i += 4) { tt[nt] = texts[i]; tl[nt++] = lens[i]; }
    double t0 = lab_now();
    Bpe *b = bpe_train(tt, tl, nt, 2048, NULL, 0);
    double t_train = lab_now() - t0;
    CHECK(b->n_merges == 2048 - 257, "real corpus: %d merges, expected %d", b->n_merges, 2048 - 257);
    BpeCache *cache = bpe_cache_new();
    size_t ntok = 0;
    t0 = lab_now();
    for (size_t i = 0; i < pl.n; i++) ntok += roundtrip(b, cache, texts[i], lens[i], pl.paths[i]);
    double t_enc = lab_now() - t0;
    double bpt = (double)total / (double)ntok;
    CHECK(bpt > 3.0, "real corpus: only %.2f bytes per token at vocab 2048", bpt);
    printf("test_bpe: %zu files, %.1f MB: vocab 2048 trained in %.2fs on a quarter, encoded + decoded in %.2fs, "
           "%.2f bytes/token\n", pl.n, (double)total / 1e6, t_train, t_enc, bpt);
    save_and_load(b, (const uint8_t *const *)texts, lens, pl.n < 40 ? pl.n : 40);
    bpe_cache_free(cache);
    bpe_free(b);
    for (size_t i = 0; i < pl.n; i++) { free(texts[i]); free(pl.paths[i]); }
    free(texts); free(lens); free(tt); free(tl); free(pl.paths);
}

// ---------------------------------------------------------------------------------------------
// tokenizer.h5

static void load_and_free(const char *path) { bpe_free(bpe_load(path)); }

static void save_and_load(const Bpe *b, const uint8_t *const *texts, const size_t *lens, size_t n) {
    const char *path = test_path("tokenizer.h5");
    bpe_save(b, path, 123, 4);
    Bpe *c = bpe_load(path);
    CHECK(c->vocab_size == b->vocab_size && c->eot == b->eot && c->n_merges == b->n_merges &&
          memcmp(c->merges, b->merges, (size_t)b->n_merges * 2 * sizeof(int32_t)) == 0,
          "tokenizer.h5: the loaded merges differ from the saved ones");
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        BpeTokens t1 = {0}, t2 = {0};
        bpe_encode(b, NULL, texts[i], lens[i], &t1);
        bpe_encode(c, NULL, texts[i], lens[i], &t2);
        if (t1.n != t2.n || memcmp(t1.ids, t2.ids, t1.n * sizeof(uint32_t)) != 0) diff++;
        bpe_tokens_free(&t1);
        bpe_tokens_free(&t2);
    }
    CHECK(diff == 0, "tokenizer.h5: %zu of %zu files encode differently after save + load", diff, n);
    hid_t f = h5_open(path, "codelm-lab/tokenizer/1");
    CHECK(h5_get_attr_i64(f, "train_bytes") == 123 && h5_get_attr_i64(f, "train_files") == 4, "train attrs");
    h5_close(f);
    bpe_free(c);
    char err[1024];
    CHECK(test_run_child(load_and_free, path, err, sizeof err) == 0, "a good tokenizer.h5 failed to load: %s", err);

    // Tampered files are refused: a merge naming a later token; vocab bytes that disagree;
    // a wrong eot; a file of another schema.
    static const char *const refusal[4] = {"dataset 'merges'", "expected vocab_bytes/vocab_offsets to spell out",
                                           "expected eot_token", "expected schema 'codelm-lab/tokenizer/1'"};
    char bad[64], what[64];
    int32_t *m = lab_malloc((size_t)b->n_merges * 2 * sizeof(int32_t));
    for (int k = 0; k < 4; k++) {
        snprintf(bad, sizeof bad, "bad%d.h5", k);
        const char *bad_path = test_path(bad);
        H5Writer w = h5_create(bad_path, k == 3 ? "codelm-lab/corpus/1" : "codelm-lab/tokenizer/1");
        memcpy(m, b->merges, (size_t)b->n_merges * 2 * sizeof(int32_t));
        if (k == 0) m[10] = 256 + 100;
        uint64_t md[2] = {(uint64_t)b->n_merges, 2}, nb = b->vocab_offsets[b->vocab_size], nv = (uint64_t)b->vocab_size + 1;
        h5_write(w.file, "merges", LAB_I32, m, 2, md, NULL);
        if (k == 1) b->vocab_bytes[300] ^= 1;
        h5_write(w.file, "vocab_bytes", LAB_U8, b->vocab_bytes, 1, &nb, NULL);
        if (k == 1) b->vocab_bytes[300] ^= 1;
        h5_write(w.file, "vocab_offsets", LAB_U64, b->vocab_offsets, 1, &nv, NULL);
        h5_attr_i64(w.file, "vocab_size", b->vocab_size);
        h5_attr_i64(w.file, "eot_token", k == 2 ? 0 : b->eot);
        h5_attr_str(w.file, "pretokenizer", BPE_PRETOKENIZER);
        h5_finish(&w);
        snprintf(what, sizeof what, "tampered tokenizer.h5 #%d", k);
        test_expect_error(load_and_free, bad_path, refusal[k], what);
    }
    free(m);

    int32_t bad_merges[4] = {97, 98, 97, 98};
    CHECK(bpe_from_merges(bad_merges, 2, err, sizeof err) == NULL && strstr(err, "repeats"), "a repeated merge is refused");
    int32_t future[2] = {97, 256};
    CHECK(bpe_from_merges(future, 1, err, sizeof err) == NULL && strstr(err, "does not exist"), "a merge of a later token is refused");
    Bpe *empty = bpe_from_merges(NULL, 0, err, sizeof err);
    CHECK(empty && empty->vocab_size == 257 && empty->eot == 256, "no merges: bytes + eot");
    const char *path257 = test_path("vocab257.h5");
    bpe_save(empty, path257, 0, 0);
    Bpe *e2 = bpe_load(path257);
    CHECK(e2->vocab_size == 257 && roundtrip(e2, NULL, (const uint8_t *)"hello", 5, "vocab 257") == 5, "vocab 257 loads");
    bpe_free(e2);
    bpe_free(empty);
}

int main(int argc, char **argv) {
    lab_init("test_bpe", argc, argv);
    test_pretokenizer();
    test_against_naive();
    test_roundtrips();
    test_real_corpus();
    return test_summary();
}
