// bpe: byte-level BPE (see bpe.h for the pre-tokenization rule and the training algorithm).
#include "bpe.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5io.h"

// ---------------------------------------------------------------------------------------------
// hashing and two open-addressing maps: (left, right) pair -> u32, and byte string -> index

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = mix64(h ^ w);
    }
    uint64_t w = 0;
    memcpy(&w, s + i, n - i);
    return mix64(h ^ w ^ ((uint64_t)(n - i) << 56));
}

static inline uint64_t pair_key(uint32_t l, uint32_t r) { return (uint64_t)l << 32 | r; }
#define EMPTY_KEY UINT64_MAX
#define NOT_FOUND UINT32_MAX

struct BpePairMap { uint64_t *keys; uint32_t *vals; size_t cap, n; };

static void pairmap_init(BpePairMap *m, size_t want) {
    m->cap = 64;
    while (m->cap < want * 2) m->cap *= 2;
    m->keys = lab_malloc(m->cap * sizeof(uint64_t));
    memset(m->keys, 0xff, m->cap * sizeof(uint64_t));
    m->vals = lab_malloc(m->cap * sizeof(uint32_t));
    m->n = 0;
}

static void pairmap_free(BpePairMap *m) { free(m->keys); free(m->vals); }

static inline uint32_t pairmap_get(const BpePairMap *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == EMPTY_KEY) return NOT_FOUND;
    }
}

static void pairmap_grow(BpePairMap *m);

// Inserts key -> val when absent; returns the value now stored.
static uint32_t pairmap_put(BpePairMap *m, uint64_t key, uint32_t val) {
    if ((m->n + 1) * 2 > m->cap) pairmap_grow(m);
    size_t mask = m->cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == EMPTY_KEY) {
            m->keys[i] = key;
            m->vals[i] = val;
            m->n++;
            return val;
        }
    }
}

static void pairmap_grow(BpePairMap *m) {
    BpePairMap old = *m;
    pairmap_init(m, old.cap);
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i] != EMPTY_KEY) pairmap_put(m, old.keys[i], old.vals[i]);
    pairmap_free(&old);
}

// Byte strings -> dense indices 0..n-1, keys kept in one arena.
typedef struct {
    uint32_t *slots;          // cap entries: 0 = empty, else index + 1
    size_t cap, n;
    uint64_t *hash, *off;     // per index
    uint32_t *len;
    size_t ent_cap;
    uint8_t *arena;
    size_t arena_n, arena_cap;
} ByteMap;

static void bytemap_init(ByteMap *m) {
    memset(m, 0, sizeof *m);
    m->cap = 1024;
    m->slots = lab_calloc(m->cap, sizeof(uint32_t));
}

static void bytemap_free(ByteMap *m) {
    free(m->slots); free(m->hash); free(m->off); free(m->len); free(m->arena);
    memset(m, 0, sizeof *m);
}

static void bytemap_clear(ByteMap *m) {
    memset(m->slots, 0, m->cap * sizeof(uint32_t));
    m->n = 0;
    m->arena_n = 0;
}

// Index of key, or NOT_FOUND; *slot gets the probe position where it would go.
static inline uint32_t bytemap_find(const ByteMap *m, const uint8_t *key, size_t n, uint64_t h, size_t *slot) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t e = m->slots[i];
        if (!e) { *slot = i; return NOT_FOUND; }
        e--;
        if (m->hash[e] == h && m->len[e] == n && memcmp(m->arena + m->off[e], key, n) == 0) {
            *slot = i;
            return e;
        }
    }
}

static uint32_t bytemap_add(ByteMap *m, const uint8_t *key, size_t n, uint64_t h, size_t slot) {
    if (m->n == m->ent_cap) {
        m->ent_cap = m->ent_cap ? m->ent_cap * 2 : 1024;
        m->hash = lab_realloc(m->hash, m->ent_cap * sizeof(uint64_t));
        m->off = lab_realloc(m->off, m->ent_cap * sizeof(uint64_t));
        m->len = lab_realloc(m->len, m->ent_cap * sizeof(uint32_t));
    }
    if (m->arena_n + n > m->arena_cap) {
        m->arena_cap = (m->arena_n + n) * 2 + 4096;
        m->arena = lab_realloc(m->arena, m->arena_cap);
    }
    uint32_t e = (uint32_t)m->n++;
    memcpy(m->arena + m->arena_n, key, n);
    m->hash[e] = h;
    m->off[e] = m->arena_n;
    m->len[e] = (uint32_t)n;
    m->arena_n += n;
    m->slots[slot] = e + 1;
    if (m->n * 2 > m->cap) {  // rehash at half full
        free(m->slots);
        m->cap *= 2;
        m->slots = lab_calloc(m->cap, sizeof(uint32_t));
        size_t mask = m->cap - 1;
        for (uint32_t k = 0; k < m->n; k++) {
            size_t i = m->hash[k] & mask;
            while (m->slots[i]) i = (i + 1) & mask;
            m->slots[i] = k + 1;
        }
    }
    return e;
}

// ---------------------------------------------------------------------------------------------
// pre-tokenization

enum { C_OTHER, C_IDENT, C_DIGIT, C_NEWLINE, C_SPACE, C_PUNCT, C_HIGH };

static const uint8_t byte_class[256] = {
    ['A' ... 'Z'] = C_IDENT, ['a' ... 'z'] = C_IDENT, ['_'] = C_IDENT,
    ['0' ... '9'] = C_DIGIT,
    ['\n'] = C_NEWLINE, ['\r'] = C_NEWLINE,
    [' '] = C_SPACE, ['\t'] = C_SPACE, ['\f'] = C_SPACE, ['\v'] = C_SPACE,
    ['!' ... '/'] = C_PUNCT, [':' ... '@'] = C_PUNCT, ['['] = C_PUNCT, ['\\'] = C_PUNCT, [']'] = C_PUNCT,
    ['^'] = C_PUNCT, ['`'] = C_PUNCT, ['{' ... '~'] = C_PUNCT,
    [0x80 ... 0xff] = C_HIGH,
};

// Can a single leading space join a chunk that starts with this byte (rule 1)?
static inline int takes_space(uint8_t c) {
    uint8_t k = byte_class[c];
    return k == C_IDENT || k == C_DIGIT || k == C_PUNCT || k == C_HIGH;
}

size_t bpe_chunk_len(const uint8_t *s, size_t n) {
    size_t cap = n < BPE_MAX_CHUNK ? n : BPE_MAX_CHUNK;
    size_t i = 0;
    if (s[0] == ' ' && cap > 1 && takes_space(s[1])) i = 1;
    size_t j = i + 1;
    switch (byte_class[s[i]]) {
    case C_IDENT:
        while (j < cap && (byte_class[s[j]] == C_IDENT || byte_class[s[j]] == C_DIGIT)) j++;
        return j;
    case C_DIGIT:
        for (; j < cap; j++) {
            uint8_t k = byte_class[s[j]];
            if (k == C_IDENT || k == C_DIGIT) continue;
            if (s[j] == '.' && j + 1 < cap && byte_class[s[j + 1]] == C_DIGIT) continue;
            break;
        }
        return j;
    case C_NEWLINE:
        while (j < cap && byte_class[s[j]] == C_NEWLINE) j++;
        while (j < cap && (s[j] == ' ' || s[j] == '\t')) j++;
        return j;
    case C_SPACE:
        while (j < cap && byte_class[s[j]] == C_SPACE) j++;
        // Leave the last space to the chunk after it, unless the run was cut by the length cap.
        if (j > 1 && j < n && s[j - 1] == ' ' && takes_space(s[j]) && byte_class[s[j]] != C_SPACE) j--;
        return j;
    case C_PUNCT:
        while (j < cap && j - i < 4 && byte_class[s[j]] == C_PUNCT) j++;
        return j;
    case C_HIGH:
        while (j < cap && byte_class[s[j]] == C_HIGH) j++;
        return j;
    default:
        return j;
    }
}

// ---------------------------------------------------------------------------------------------
// the tokenizer from its merges

Bpe *bpe_from_merges(const int32_t *merges, int n_merges, char *err, size_t err_size) {
    if (n_merges < 0) {
        snprintf(err, err_size, "negative merge count %d", n_merges);
        return NULL;
    }
    Bpe *b = lab_calloc(1, sizeof(Bpe));
    b->n_merges = n_merges;
    b->vocab_size = 256 + n_merges + 1;
    b->eot = b->vocab_size - 1;
    b->merges = lab_malloc(((size_t)n_merges * 2 + 1) * sizeof(int32_t));
    if (n_merges) memcpy(b->merges, merges, (size_t)n_merges * 2 * sizeof(int32_t));
    b->ranks = lab_malloc(sizeof(BpePairMap));
    pairmap_init(b->ranks, (size_t)n_merges + 1);
    b->vocab_offsets = lab_malloc(((size_t)b->vocab_size + 1) * sizeof(uint64_t));
    uint64_t total = 256;
    uint64_t *tok_len = lab_malloc((size_t)b->vocab_size * sizeof(uint64_t));
    for (int t = 0; t < 256; t++) tok_len[t] = 1;
    for (int i = 0; i < n_merges; i++) {
        int32_t l = merges[2 * i], r = merges[2 * i + 1];
        if (l < 0 || r < 0 || l >= 256 + i || r >= 256 + i) {
            snprintf(err, err_size, "merge %d (%d, %d) names a token that does not exist before it", i, l, r);
            free(tok_len);
            bpe_free(b);
            return NULL;
        }
        if (pairmap_put(b->ranks, pair_key((uint32_t)l, (uint32_t)r), (uint32_t)i) != (uint32_t)i) {
            snprintf(err, err_size, "merge %d (%d, %d) repeats an earlier merge", i, l, r);
            free(tok_len);
            bpe_free(b);
            return NULL;
        }
        tok_len[256 + i] = tok_len[l] + tok_len[r];
        total += tok_len[256 + i];
    }
    tok_len[b->eot] = 0;
    b->vocab_bytes = lab_malloc(total ? total : 1);
    uint64_t off = 0;
    for (int t = 0; t < b->vocab_size; t++) {
        b->vocab_offsets[t] = off;
        if (t < 256) b->vocab_bytes[off] = (uint8_t)t;
        else if (t != b->eot) {
            int32_t l = merges[2 * (t - 256)], r = merges[2 * (t - 256) + 1];
            memcpy(b->vocab_bytes + off, b->vocab_bytes + b->vocab_offsets[l], tok_len[l]);
            memcpy(b->vocab_bytes + off + tok_len[l], b->vocab_bytes + b->vocab_offsets[r], tok_len[r]);
        }
        off += tok_len[t];
    }
    b->vocab_offsets[b->vocab_size] = off;
    free(tok_len);
    return b;
}

void bpe_free(Bpe *b) {
    if (!b) return;
    free(b->merges);
    free(b->vocab_bytes);
    free(b->vocab_offsets);
    if (b->ranks) { pairmap_free(b->ranks); free(b->ranks); }
    free(b);
}

// ---------------------------------------------------------------------------------------------
// training

typedef struct {
    uint32_t l, r;
    int64_t count;          // over all chunks, weighted by chunk count
    uint32_t *occ;          // chunks (words) it occurs in; may hold stale entries and repeats
    uint32_t n_occ, cap_occ;
    uint32_t touched;       // last merge that raised its count (+1)
} Pair;

typedef struct { int64_t count; uint32_t l, r, pair; } HeapEntry;

typedef struct {
    // unique chunks ("words"), their current token sequences in one arena
    uint32_t *sym;
    uint64_t *w_off;
    uint32_t *w_len;
    int64_t *w_count;
    uint32_t *w_stamp;      // last merge (+1) that rewrote the word
    size_t n_words;
    // pairs
    Pair *pairs;
    size_t n_pairs, cap_pairs;
    BpePairMap index;
    // max-heap, lazy deletion: each live pair has at least one entry whose count >= its own
    HeapEntry *heap;
    size_t n_heap, cap_heap;
    // pairs raised during the current merge
    uint32_t *raised;
    size_t n_raised, cap_raised;
} Trainer;

// Heap order: higher count first, then smaller (left, right).
static inline int heap_before(const HeapEntry *a, const HeapEntry *b) {
    if (a->count != b->count) return a->count > b->count;
    if (a->l != b->l) return a->l < b->l;
    return a->r < b->r;
}

static void heap_push(Trainer *t, HeapEntry e) {
    if (t->n_heap == t->cap_heap) {
        t->cap_heap = t->cap_heap ? t->cap_heap * 2 : 4096;
        t->heap = lab_realloc(t->heap, t->cap_heap * sizeof(HeapEntry));
    }
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_before(&e, &t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = e;
}

static HeapEntry heap_pop(Trainer *t) {
    HeapEntry top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!heap_before(&t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

static uint32_t pair_get_or_add(Trainer *t, uint32_t l, uint32_t r) {
    uint32_t idx = pairmap_put(&t->index, pair_key(l, r), (uint32_t)t->n_pairs);
    if (idx == t->n_pairs) {
        if (t->n_pairs == t->cap_pairs) {
            t->cap_pairs = t->cap_pairs ? t->cap_pairs * 2 : 65536;
            t->pairs = lab_realloc(t->pairs, t->cap_pairs * sizeof(Pair));
        }
        Pair *p = &t->pairs[t->n_pairs++];
        memset(p, 0, sizeof *p);
        p->l = l;
        p->r = r;
    }
    return idx;
}

static void pair_add_occ(Pair *p, uint32_t w) {
    if (p->n_occ && p->occ[p->n_occ - 1] == w) return;
    if (p->n_occ == p->cap_occ) {
        p->cap_occ = p->cap_occ ? p->cap_occ * 2 : 4;
        p->occ = lab_realloc(p->occ, p->cap_occ * sizeof(uint32_t));
    }
    p->occ[p->n_occ++] = w;
}

static void pair_lower(Trainer *t, uint32_t l, uint32_t r, int64_t by) {
    uint32_t idx = pairmap_get(&t->index, pair_key(l, r));
    if (idx == NOT_FOUND || t->pairs[idx].count < by)
        lab_die("internal: BPE pair (%u, %u) count would go negative", l, r);
    t->pairs[idx].count -= by;
}

static void pair_raise(Trainer *t, uint32_t l, uint32_t r, int64_t by, uint32_t w, uint32_t stamp) {
    uint32_t idx = pair_get_or_add(t, l, r);
    Pair *p = &t->pairs[idx];
    p->count += by;
    pair_add_occ(p, w);
    if (p->touched != stamp) {
        p->touched = stamp;
        if (t->n_raised == t->cap_raised) {
            t->cap_raised = t->cap_raised ? t->cap_raised * 2 : 1024;
            t->raised = lab_realloc(t->raised, t->cap_raised * sizeof(uint32_t));
        }
        t->raised[t->n_raised++] = idx;
    }
}

// Replaces (a, b) by c left to right in word w, moving the pair counts of what changed:
// for an occurrence with x before it and y after it, (x, a) (a, b) (b, y) go down and (x, c)
// (c, y) go up. x is read from the rewritten word, so "a b a b" correctly yields (c, c).
static void merge_word(Trainer *t, uint32_t w, uint32_t a, uint32_t b, uint32_t c, uint32_t stamp) {
    uint32_t *s = t->sym + t->w_off[w];
    uint32_t n = t->w_len[w], i = 0, j = 0;
    int64_t cnt = t->w_count[w];
    while (i < n) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (j > 0) {
                pair_lower(t, s[j - 1], a, cnt);
                pair_raise(t, s[j - 1], c, cnt, w, stamp);
            }
            pair_lower(t, a, b, cnt);
            if (i + 2 < n) {
                pair_lower(t, b, s[i + 2], cnt);
                pair_raise(t, c, s[i + 2], cnt, w, stamp);
            }
            s[j++] = c;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    t->w_len[w] = j;
}

static void trainer_free(Trainer *t) {
    free(t->sym); free(t->w_off); free(t->w_len); free(t->w_count); free(t->w_stamp);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].occ);
    free(t->pairs);
    pairmap_free(&t->index);
    free(t->heap);
    free(t->raised);
}

Bpe *bpe_train(const uint8_t *const *texts, const size_t *lens, size_t n, int vocab_size,
               BpeTrainStats *stats, int progress) {
    if (vocab_size < 257) lab_die("vocab size must be at least 257 (256 bytes + eot), got %d", vocab_size);
    int want_merges = vocab_size - 257;
    BpeTrainStats st;
    memset(&st, 0, sizeof st);
    st.n_texts = n;
    double t0 = lab_now();

    // 1. unique chunks with their counts
    ByteMap chunks;
    bytemap_init(&chunks);
    int64_t *ccount = NULL;
    size_t ccap = 0;
    for (size_t d = 0; d < n; d++) {
        const uint8_t *s = texts[d];
        st.n_bytes += lens[d];
        for (size_t i = 0, k; i < lens[d]; i += k) {
            k = bpe_chunk_len(s + i, lens[d] - i);
            st.n_chunks++;
            if (k == 1) continue;  // a one-byte chunk has no pair to count
            uint64_t h = hash_bytes(s + i, k);
            size_t slot;
            uint32_t e = bytemap_find(&chunks, s + i, k, h, &slot);
            if (e == NOT_FOUND) {
                e = bytemap_add(&chunks, s + i, k, h, slot);
                if (e >= ccap) {
                    ccap = ccap ? ccap * 2 : 4096;
                    ccount = lab_realloc(ccount, ccap * sizeof(int64_t));
                }
                ccount[e] = 0;
            }
            ccount[e]++;
        }
    }
    st.n_unique_chunks = chunks.n;

    // 2. words as token sequences, initial pair counts and occurrences
    Trainer t;
    memset(&t, 0, sizeof t);
    t.n_words = chunks.n;
    t.sym = lab_malloc((chunks.arena_n + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < chunks.arena_n; i++) t.sym[i] = chunks.arena[i];
    t.w_off = lab_malloc((t.n_words + 1) * sizeof(uint64_t));
    t.w_len = lab_malloc((t.n_words + 1) * sizeof(uint32_t));
    t.w_stamp = lab_calloc(t.n_words + 1, sizeof(uint32_t));
    t.w_count = ccount ? ccount : lab_malloc(sizeof(int64_t));
    memcpy(t.w_off, chunks.off, t.n_words * sizeof(uint64_t));
    memcpy(t.w_len, chunks.len, t.n_words * sizeof(uint32_t));
    bytemap_free(&chunks);
    pairmap_init(&t.index, 1 << 16);
    for (uint32_t w = 0; w < t.n_words; w++) {
        const uint32_t *s = t.sym + t.w_off[w];
        for (uint32_t i = 0; i + 1 < t.w_len[w]; i++) {
            uint32_t idx = pair_get_or_add(&t, s[i], s[i + 1]);  // may move t.pairs
            Pair *p = &t.pairs[idx];
            p->count += t.w_count[w];
            pair_add_occ(p, w);
        }
    }
    for (uint32_t i = 0; i < t.n_pairs; i++)
        heap_push(&t, (HeapEntry){t.pairs[i].count, t.pairs[i].l, t.pairs[i].r, i});
    st.pretokenize_s = lab_now() - t0;

    // 3. merges
    double t1 = lab_now();
    int32_t *merges = lab_malloc(((size_t)want_merges * 2 + 1) * sizeof(int32_t));
    int n_merges = 0;
    Progress prog;
    if (progress) progress_start(&prog, "bpe merges", (uint64_t)want_merges);
    while (n_merges < want_merges && t.n_heap) {
        HeapEntry e = heap_pop(&t);
        Pair *p = &t.pairs[e.pair];
        if (e.count != p->count) {
            // Stale: re-queue with the true count when this entry may be the pair's only upper bound.
            if (e.count > p->count && p->count > 0)
                heap_push(&t, (HeapEntry){p->count, p->l, p->r, e.pair});
            continue;
        }
        if (p->count <= 0) continue;
        uint32_t a = p->l, b = p->r, c = 256 + (uint32_t)n_merges, stamp = (uint32_t)n_merges + 1;
        merges[2 * n_merges] = (int32_t)a;
        merges[2 * n_merges + 1] = (int32_t)b;
        n_merges++;
        t.n_raised = 0;
        // New pairs all contain c, so this pair's occurrence list does not grow while we walk it;
        // but t.pairs may be reallocated, so hold the list, not the Pair pointer.
        uint32_t *occ = p->occ, n_occ = p->n_occ, pidx = e.pair;
        p->occ = NULL;
        p->n_occ = p->cap_occ = 0;
        for (uint32_t k = 0; k < n_occ; k++) {
            uint32_t w = occ[k];
            if (t.w_stamp[w] == stamp) continue;
            t.w_stamp[w] = stamp;
            merge_word(&t, w, a, b, c, stamp);
        }
        free(occ);
        if (t.pairs[pidx].count != 0)
            lab_die("internal: BPE pair (%u, %u) has %lld occurrences left after merging it", a, b,
                    (long long)t.pairs[pidx].count);
        for (size_t k = 0; k < t.n_raised; k++) {
            Pair *q = &t.pairs[t.raised[k]];
            if (q->count > 0) heap_push(&t, (HeapEntry){q->count, q->l, q->r, t.raised[k]});
        }
        if (progress && (n_merges & 63) == 0) progress_update(&prog, (uint64_t)n_merges, NULL);
    }
    if (progress) progress_end(&prog, NULL);
    st.merge_s = lab_now() - t1;
    trainer_free(&t);

    char err[256];
    Bpe *bpe = bpe_from_merges(merges, n_merges, err, sizeof err);
    if (!bpe) lab_die("internal: trained merges are inconsistent: %s", err);
    free(merges);
    if (stats) *stats = st;
    return bpe;
}

// ---------------------------------------------------------------------------------------------
// encode / decode

void bpe_tokens_push(BpeTokens *t, uint32_t id) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->ids = lab_realloc(t->ids, t->cap * sizeof(uint32_t));
    }
    t->ids[t->n++] = id;
}

void bpe_tokens_free(BpeTokens *t) {
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static void tokens_append(BpeTokens *t, const uint32_t *ids, size_t n) {
    if (t->n + n > t->cap) {
        while (t->n + n > t->cap) t->cap = t->cap ? t->cap * 2 : 1024;
        t->ids = lab_realloc(t->ids, t->cap * sizeof(uint32_t));
    }
    memcpy(t->ids + t->n, ids, n * sizeof(uint32_t));
    t->n += n;
}

// Tokens of one chunk (n <= BPE_MAX_CHUNK) into out; returns their number.
static size_t encode_chunk(const Bpe *b, const uint8_t *s, size_t n, uint32_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = s[i];
    while (n > 1) {
        uint32_t best = NOT_FOUND;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t r = pairmap_get(b->ranks, pair_key(out[i], out[i + 1]));
            if (r < best) best = r;
        }
        if (best == NOT_FOUND) break;
        uint32_t l = (uint32_t)b->merges[2 * best], r = (uint32_t)b->merges[2 * best + 1], c = 256 + best;
        size_t j = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && out[i] == l && out[i + 1] == r) { out[j++] = c; i += 2; }
            else out[j++] = out[i++];
        }
        n = j;
    }
    return n;
}

struct BpeCache {
    ByteMap keys;
    uint64_t *tok_off;      // per cached chunk, into toks
    uint32_t *tok_len;
    size_t ent_cap;
    uint32_t *toks;
    size_t n_toks, cap_toks;
};

#define CACHE_MAX_CHUNKS (1u << 20)

BpeCache *bpe_cache_new(void) {
    BpeCache *c = lab_calloc(1, sizeof(BpeCache));
    bytemap_init(&c->keys);
    return c;
}

void bpe_cache_free(BpeCache *c) {
    if (!c) return;
    bytemap_free(&c->keys);
    free(c->tok_off);
    free(c->tok_len);
    free(c->toks);
    free(c);
}

size_t bpe_encode(const Bpe *b, BpeCache *cache, const uint8_t *text, size_t len, BpeTokens *out) {
    size_t before = out->n;
    uint32_t tmp[BPE_MAX_CHUNK];
    for (size_t i = 0, k; i < len; i += k) {
        k = bpe_chunk_len(text + i, len - i);
        if (k == 1) { bpe_tokens_push(out, text[i]); continue; }
        if (!cache) { tokens_append(out, tmp, encode_chunk(b, text + i, k, tmp)); continue; }
        uint64_t h = hash_bytes(text + i, k);
        size_t slot;
        uint32_t e = bytemap_find(&cache->keys, text + i, k, h, &slot);
        if (e != NOT_FOUND) { tokens_append(out, cache->toks + cache->tok_off[e], cache->tok_len[e]); continue; }
        size_t m = encode_chunk(b, text + i, k, tmp);
        tokens_append(out, tmp, m);
        if (cache->keys.n >= CACHE_MAX_CHUNKS) {
            bytemap_clear(&cache->keys);
            cache->n_toks = 0;
            bytemap_find(&cache->keys, text + i, k, h, &slot);
        }
        e = bytemap_add(&cache->keys, text + i, k, h, slot);
        if (e >= cache->ent_cap) {
            cache->ent_cap = cache->ent_cap ? cache->ent_cap * 2 : 4096;
            cache->tok_off = lab_realloc(cache->tok_off, cache->ent_cap * sizeof(uint64_t));
            cache->tok_len = lab_realloc(cache->tok_len, cache->ent_cap * sizeof(uint32_t));
        }
        if (cache->n_toks + m > cache->cap_toks) {
            cache->cap_toks = (cache->n_toks + m) * 2 + 4096;
            cache->toks = lab_realloc(cache->toks, cache->cap_toks * sizeof(uint32_t));
        }
        memcpy(cache->toks + cache->n_toks, tmp, m * sizeof(uint32_t));
        cache->tok_off[e] = cache->n_toks;
        cache->tok_len[e] = (uint32_t)m;
        cache->n_toks += m;
    }
    return out->n - before;
}

const uint8_t *bpe_token_bytes(const Bpe *b, uint32_t id, size_t *len) {
    *len = (size_t)(b->vocab_offsets[id + 1] - b->vocab_offsets[id]);
    return b->vocab_bytes + b->vocab_offsets[id];
}

uint8_t *bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, size_t *out_len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= (uint32_t)b->vocab_size) return NULL;
        total += (size_t)(b->vocab_offsets[ids[i] + 1] - b->vocab_offsets[ids[i]]);
    }
    uint8_t *out = lab_malloc(total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m;
        const uint8_t *p = bpe_token_bytes(b, ids[i], &m);
        memcpy(out + k, p, m);
        k += m;
    }
    out[k] = 0;
    *out_len = k;
    return out;
}

// ---------------------------------------------------------------------------------------------
// tokenizer.h5

#define TOKENIZER_SCHEMA "codelm-lab/tokenizer/1"

void bpe_save(const Bpe *b, const char *path, uint64_t train_bytes, uint64_t train_files) {
    H5Writer w = h5_create(path, TOKENIZER_SCHEMA);
    uint64_t md[2] = {(uint64_t)b->n_merges, 2};
    h5_write(w.file, "merges", LAB_I32, b->merges, 2, md, NULL);
    uint64_t nb = b->vocab_offsets[b->vocab_size], nv = (uint64_t)b->vocab_size + 1;
    h5_write(w.file, "vocab_bytes", LAB_U8, b->vocab_bytes, 1, &nb, "bytes");
    h5_write(w.file, "vocab_offsets", LAB_U64, b->vocab_offsets, 1, &nv, "bytes");
    h5_attr_i64(w.file, "vocab_size", b->vocab_size);
    h5_attr_i64(w.file, "eot_token", b->eot);
    h5_attr_str(w.file, "eot_text", BPE_EOT_TEXT);
    h5_attr_str(w.file, "pretokenizer", BPE_PRETOKENIZER);
    h5_attr_i64(w.file, "train_bytes", (int64_t)train_bytes);
    h5_attr_i64(w.file, "train_files", (int64_t)train_files);
    h5_finish(&w);
}

Bpe *bpe_load(const char *path) {
    hid_t f = h5_open(path, TOKENIZER_SCHEMA);
    char *pre = h5_get_attr_str(f, "pretokenizer");
    if (strcmp(pre, BPE_PRETOKENIZER) != 0)
        lab_die("%s: expected pretokenizer '%s', found '%s'", path, BPE_PRETOKENIZER, pre);
    free(pre);
    int64_t vocab_size = h5_get_attr_i64(f, "vocab_size"), eot = h5_get_attr_i64(f, "eot_token");
    if (vocab_size < 257 || vocab_size > (int64_t)1 << 30)
        lab_die("%s: expected vocab_size >= 257, found %lld", path, (long long)vocab_size);
    if (eot != vocab_size - 1)
        lab_die("%s: expected eot_token = vocab_size - 1 = %lld, found %lld", path,
                (long long)(vocab_size - 1), (long long)eot);
    // h5_read takes a 0 in a shape as "any", so the merge count is checked again below.
    uint64_t md[2] = {(uint64_t)(vocab_size - 257), 2};
    int32_t *merges = h5_read(f, "merges", LAB_I32, 2, md);
    if (md[0] != (uint64_t)(vocab_size - 257))
        lab_die("%s: dataset 'merges': expected shape (%lld, 2), found (%llu, 2)", path,
                (long long)(vocab_size - 257), (unsigned long long)md[0]);
    char err[256];
    Bpe *b = bpe_from_merges(merges, (int)md[0], err, sizeof err);
    free(merges);
    if (!b) lab_die("%s: dataset 'merges': %s", path, err);
    uint64_t od[1] = {(uint64_t)vocab_size + 1}, bd[1] = {b->vocab_offsets[b->vocab_size]};
    uint64_t *off = h5_read(f, "vocab_offsets", LAB_U64, 1, od);
    uint8_t *bytes = h5_read(f, "vocab_bytes", LAB_U8, 1, bd);
    if (bd[0] != b->vocab_offsets[b->vocab_size])
        lab_die("%s: dataset 'vocab_bytes': expected shape (%llu), found (%llu)", path,
                (unsigned long long)b->vocab_offsets[b->vocab_size], (unsigned long long)bd[0]);
    if (memcmp(off, b->vocab_offsets, od[0] * sizeof(uint64_t)) != 0 ||
        (bd[0] && memcmp(bytes, b->vocab_bytes, bd[0]) != 0))
        lab_die("%s: expected vocab_bytes/vocab_offsets to spell out the merges, found a mismatch", path);
    free(off);
    free(bytes);
    h5_close(f);
    return b;
}
