// minhash: MinHash signatures, LSH banding, exact Jaccard verification (see minhash.h).
#include "minhash.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------------------------------------
// parameters

double minhash_candidate_probability(int bands, int rows, double j) {
    return 1.0 - pow(1.0 - pow(j, rows), bands);
}

void minhash_auto_bands(int n_perm, double threshold, int *bands, int *rows) {
    *rows = 1;
    *bands = n_perm;
    for (int r = 2; r <= n_perm; r++) {
        if (minhash_candidate_probability(n_perm / r, r, threshold) < 0.99) break;
        *rows = r;
        *bands = n_perm / r;
    }
}

void minhash_init(MinHash *m, int n_perm, int bands, int shingle, double threshold, uint64_t seed) {
    if (n_perm < 1) lab_die("minhash: expected at least 1 permutation, found %d", n_perm);
    if (shingle < 1) lab_die("minhash: expected shingles of at least 1 token, found %d", shingle);
    m->n_perm = n_perm;
    m->shingle = shingle;
    m->seed = seed;
    if (bands <= 0) minhash_auto_bands(n_perm, threshold, &m->bands, &m->rows);
    else {
        m->bands = bands;
        m->rows = n_perm / bands;
        if (m->rows < 1)
            lab_die("minhash: expected at most %d bands for %d permutations, found %d", n_perm, n_perm, bands);
    }
    m->a = lab_malloc((size_t)n_perm * sizeof(uint64_t));
    m->b = lab_malloc((size_t)n_perm * sizeof(uint64_t));
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n_perm; i++) {
        m->a[i] = rng_u64(&rng) | 1;
        m->b[i] = rng_u64(&rng);
    }
}

void minhash_free(MinHash *m) {
    free(m->a);
    free(m->b);
    m->a = m->b = NULL;
}

// ---------------------------------------------------------------------------------------------
// shingles

static inline int is_token_byte(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

// Hashes of the tokens of text, in order; *out malloc'ed.
static size_t token_hashes(const uint8_t *text, size_t n, uint64_t **out) {
    size_t cap = 64, count = 0;
    uint64_t *h = lab_malloc(cap * sizeof *h);
    for (size_t i = 0; i < n;) {
        if (!is_token_byte(text[i])) { i++; continue; }
        uint64_t x = 0xcbf29ce484222325ull;  // FNV-1a
        for (; i < n && is_token_byte(text[i]); i++) x = (x ^ text[i]) * 0x100000001b3ull;
        if (count == cap) { cap *= 2; h = lab_realloc(h, cap * sizeof *h); }
        h[count++] = lab_hash64(x);
    }
    *out = h;
    return count;
}

// Shingle hashes (not sorted, may repeat); *out malloc'ed or NULL.
static size_t shingle_hashes(const uint8_t *text, size_t n, int k, uint64_t **out) {
    uint64_t *tok;
    size_t nt = token_hashes(text, n, &tok);
    if (nt == 0) { free(tok); *out = NULL; return 0; }
    size_t span = nt < (size_t)k ? nt : (size_t)k;
    size_t ns = nt - span + 1;
    // In place: shingle s only reads tokens s.. s+span-1, all at or after the slot it writes.
    for (size_t s = 0; s < ns; s++) {
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (size_t j = 0; j < span; j++) x = lab_hash64(x ^ tok[s + j]);
        tok[s] = x;
    }
    *out = tok;
    return ns;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

size_t minhash_shingles(const uint8_t *text, size_t n, int k, uint64_t **out) {
    size_t ns = shingle_hashes(text, n, k, out);
    if (ns == 0) return 0;
    qsort(*out, ns, sizeof **out, cmp_u64);
    size_t u = 1;
    for (size_t i = 1; i < ns; i++)
        if ((*out)[i] != (*out)[u - 1]) (*out)[u++] = (*out)[i];
    return u;
}

double minhash_jaccard_sets(const uint64_t *x, size_t nx, const uint64_t *y, size_t ny) {
    if (nx + ny == 0) return 0.0;
    size_t i = 0, j = 0, both = 0;
    while (i < nx && j < ny) {
        if (x[i] == y[j]) { both++; i++; j++; }
        else if (x[i] < y[j]) i++;
        else j++;
    }
    return (double)both / (double)(nx + ny - both);
}

double minhash_jaccard(const uint8_t *x, size_t nx, const uint8_t *y, size_t ny, int k) {
    uint64_t *sx, *sy;
    size_t cx = minhash_shingles(x, nx, k, &sx), cy = minhash_shingles(y, ny, k, &sy);
    double j = minhash_jaccard_sets(sx, cx, sy, cy);
    free(sx);
    free(sy);
    return j;
}

// ---------------------------------------------------------------------------------------------
// signatures

int minhash_signature(const MinHash *m, const uint8_t *text, size_t n, uint32_t *sig) {
    const int P = m->n_perm;
    for (int i = 0; i < P; i++) sig[i] = UINT32_MAX;
    uint64_t *sh;
    size_t ns = shingle_hashes(text, n, m->shingle, &sh);
    const uint64_t *a = m->a, *b = m->b;
    for (size_t s = 0; s < ns; s++) {
        const uint64_t x = sh[s];
        for (int i = 0; i < P; i++) {  // vectorises: one multiply-add-shift per slot
            uint32_t v = (uint32_t)((a[i] * x + b[i]) >> 32);
            sig[i] = v < sig[i] ? v : sig[i];
        }
    }
    free(sh);
    return ns > 0;
}

double minhash_estimate(const uint32_t *x, const uint32_t *y, int n_perm) {
    int same = 0;
    for (int i = 0; i < n_perm; i++) same += x[i] == y[i];
    return (double)same / (double)n_perm;
}

// ---------------------------------------------------------------------------------------------
// LSH buckets: (band, band contents) -> chain of kept documents

typedef struct {
    uint64_t *keys;
    int64_t *heads;      // -1: empty slot
    uint64_t mask;
    int64_t *next;       // per entry
    int64_t *doc;        // per entry
    int64_t n_entries;
} Buckets;

static void buckets_init(Buckets *t, uint64_t max_entries) {
    uint64_t size = 16;
    while (size < 2 * max_entries) size *= 2;
    t->keys = lab_malloc(size * sizeof *t->keys);
    t->heads = lab_malloc(size * sizeof *t->heads);
    for (uint64_t i = 0; i < size; i++) t->heads[i] = -1;
    t->mask = size - 1;
    t->next = lab_malloc((max_entries ? max_entries : 1) * sizeof *t->next);
    t->doc = lab_malloc((max_entries ? max_entries : 1) * sizeof *t->doc);
    t->n_entries = 0;
}

static void buckets_free(Buckets *t) {
    free(t->keys);
    free(t->heads);
    free(t->next);
    free(t->doc);
}

static uint64_t buckets_slot(const Buckets *t, uint64_t key) {
    uint64_t s = key & t->mask;
    while (t->heads[s] >= 0 && t->keys[s] != key) s = (s + 1) & t->mask;
    return s;
}

static void buckets_add(Buckets *t, uint64_t key, int64_t doc) {
    uint64_t s = buckets_slot(t, key);
    t->keys[s] = key;
    t->doc[t->n_entries] = doc;
    t->next[t->n_entries] = t->heads[s];
    t->heads[s] = t->n_entries++;
}

static uint64_t band_key(const uint32_t *sig, int band, int rows) {
    uint64_t h = lab_hash64((uint64_t)band + 1);
    for (int r = 0; r < rows; r++) h = lab_hash64(h ^ sig[band * rows + r]);
    return h;
}

// ---------------------------------------------------------------------------------------------
// near-duplicate removal

// Candidates whose estimate is this far below the threshold skip the exact check: at 128
// permutations the estimate's standard deviation is <= 0.045, so this is > 3 of them.
#define ESTIMATE_SLACK 0.15

size_t minhash_dedup(const MinHash *m, double threshold, size_t n, const uint8_t *const *text,
                     const size_t *len, const uint8_t *active, int64_t *dup_of, int show_progress) {
    const int P = m->n_perm;
    uint32_t *sigs = lab_malloc((n ? n : 1) * (size_t)P * sizeof *sigs);
    uint8_t *has = lab_calloc(n ? n : 1, 1);
    uint64_t bytes_total = 0, bytes_done = 0;
    for (size_t i = 0; i < n; i++)
        if (!active || active[i]) bytes_total += len[i];

    Progress prog;
    if (show_progress) progress_start(&prog, "minhash signatures", bytes_total);
#pragma omp parallel for schedule(dynamic, 8)
    for (size_t i = 0; i < n; i++) {
        if (active && !active[i]) continue;
        has[i] = (uint8_t)minhash_signature(m, text[i], len[i], sigs + i * (size_t)P);
#pragma omp atomic
        bytes_done += len[i];
        if (show_progress && omp_get_thread_num() == 0) {
            uint64_t now_done;
#pragma omp atomic read
            now_done = bytes_done;
            progress_update(&prog, now_done, NULL);
        }
    }
    if (show_progress) progress_end(&prog, NULL);

    uint64_t n_with = 0;
    for (size_t i = 0; i < n; i++) n_with += has[i];
    Buckets t;
    buckets_init(&t, n_with * (uint64_t)m->bands);
    int64_t *stamp = lab_malloc((n ? n : 1) * sizeof *stamp);
    uint64_t *keys = lab_malloc((size_t)m->bands * sizeof *keys);
    size_t n_dup = 0;
    for (size_t i = 0; i < n; i++) { stamp[i] = -1; dup_of[i] = -1; }
    if (show_progress) progress_start(&prog, "near-dedup", n);

    for (size_t j = 0; j < n; j++) {
        if (!has[j]) continue;
        const uint32_t *sj = sigs + j * (size_t)P;
        uint64_t *shj = NULL;
        size_t nshj = 0;
        int64_t found = -1;
        for (int b = 0; b < m->bands && found < 0; b++) {
            keys[b] = band_key(sj, b, m->rows);
            uint64_t s = buckets_slot(&t, keys[b]);
            for (int64_t e = t.heads[s]; e >= 0 && found < 0; e = t.next[e]) {
                int64_t i = t.doc[e];
                if (stamp[i] == (int64_t)j) continue;
                stamp[i] = (int64_t)j;
                if (minhash_estimate(sigs + (size_t)i * P, sj, P) < threshold - ESTIMATE_SLACK) continue;
                if (!shj) nshj = minhash_shingles(text[j], len[j], m->shingle, &shj);
                uint64_t *shi;
                size_t nshi = minhash_shingles(text[i], len[i], m->shingle, &shi);
                if (minhash_jaccard_sets(shi, nshi, shj, nshj) >= threshold) found = i;
                free(shi);
            }
        }
        free(shj);
        if (found >= 0) {
            dup_of[j] = found;
            n_dup++;
        } else {
            for (int b = 0; b < m->bands; b++) buckets_add(&t, keys[b], (int64_t)j);
        }
        if (show_progress && (j & 255) == 0) progress_update(&prog, j, NULL);
    }
    if (show_progress) {
        char extra[96];
        snprintf(extra, sizeof extra, "(%zu near-duplicates of %llu files)", n_dup, (unsigned long long)n_with);
        progress_end(&prog, extra);
    }
    free(keys);
    free(stamp);
    buckets_free(&t);
    free(has);
    free(sigs);
    return n_dup;
}
