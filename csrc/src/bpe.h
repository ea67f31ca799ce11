// bpe: byte-level BPE for source code: pre-tokenization, training, encode, decode, tokenizer.h5.
//
// Token ids: 0..255 are the raw bytes, 256..256+n_merges-1 the merges in training order, and the
// last id, vocab_size-1, is the special token <|endoftext|> (eot), which has no bytes. Every byte
// string therefore encodes, and decode(encode(x)) == x for any bytes, valid UTF-8 or not.
//
// Pre-tokenization (pretokenizer "codelm-lab/pretok/1") cuts text into chunks; merges never cross
// a chunk boundary. It is hand-written, byte-level and deterministic. At each position the chunk
// is the first rule that applies:
//   1. a single ' ' directly before an identifier, number, punctuation or non-ASCII byte joins
//      that chunk as its first byte (" self", " 42", " =", " café");
//   2. identifier: [A-Za-z_][A-Za-z0-9_]*                                  "__init__", "x2"
//   3. number: [0-9] followed by [0-9A-Za-z_]* or '.' before a digit      "42", "0xFF", "3.14"
//   4. line break: a run of '\n'/'\r', then the spaces and tabs after it, so a line break and the
//      next line's indentation stay one chunk (Python indentation becomes one token): "\n    "
//   5. other whitespace: a run of ' ', '\t', '\f', '\v'; when the run is longer than one byte and
//      rule 1 will take its last space, the chunk stops before that space ("x  = 1": "x", " ", " =")
//   6. punctuation: a run of 1 to 4 ASCII punctuation bytes (!"#$%&'()*+,-./:;<=>?@[\]^`{|}~)
//      "(", "):", "**", "\"\"\"", "->"
//   7. non-ASCII: a run of bytes >= 0x80 (UTF-8 or not)
//   8. anything else (control bytes, DEL): one byte
// No chunk is longer than BPE_MAX_CHUNK bytes: a longer run is cut there and goes on as a new chunk.
//
// Training merges, at each step, the adjacent pair with the highest count over all chunks (each
// distinct chunk weighted by how often it occurs), ties broken by the smallest (left, right) ids;
// occurrences are replaced left to right ("a a a" with (a, a) gives "aa a"). It stops at
// vocab_size - 1 - 256 merges, or earlier when no chunk has two tokens left. Pair counts are kept
// incrementally: each pair knows the chunks it occurs in, a merge rewrites only those, and a
// max-heap with lazy deletion finds the next best pair.
//
// Encoding applies, within each chunk, the lowest-ranked merge present until none applies, which
// gives the same tokens as replaying the merges in training order.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define BPE_PRETOKENIZER "codelm-lab/pretok/1"
#define BPE_MAX_CHUNK 128
#define BPE_EOT_TEXT "<|endoftext|>"

// ---------------------------------------------------------------------------------------------
// pre-tokenization

// Length of the chunk that starts at s[0] (1..min(n, BPE_MAX_CHUNK)); n > 0.
// Walk a text with: for (size_t i = 0, k; i < n; i += k) k = bpe_chunk_len(s + i, n - i);
size_t bpe_chunk_len(const uint8_t *s, size_t n);

// ---------------------------------------------------------------------------------------------
// the tokenizer

typedef struct BpePairMap BpePairMap;
typedef struct {
    int vocab_size;            // V = 256 + n_merges + 1
    int n_merges;
    int eot;                   // V - 1
    int32_t *merges;           // (n_merges, 2): merge i makes token 256+i from (left, right)
    uint8_t *vocab_bytes;      // bytes of every token, concatenated
    uint64_t *vocab_offsets;   // (V+1): token t is vocab_bytes[off[t]:off[t+1]]; eot is empty
    BpePairMap *ranks;         // (left, right) -> merge index, for encoding
} Bpe;

// Builds a tokenizer from a merge list; returns NULL and writes a reason into err when a merge
// names a token that does not exist yet or repeats an earlier pair.
Bpe *bpe_from_merges(const int32_t *merges, int n_merges, char *err, size_t err_size);
void bpe_free(Bpe *b);

typedef struct {
    uint64_t n_texts, n_bytes;          // what was trained on
    uint64_t n_chunks;                  // after pre-tokenization
    uint64_t n_unique_chunks;           // distinct chunks of two bytes or more (one byte has no pair)
    double pretokenize_s, merge_s;      // wall time of the two phases
} BpeTrainStats;

// Trains on n texts held in memory; vocab_size >= 257. stats may be NULL. With progress != 0,
// shows progress on stderr (common.h Progress).
Bpe *bpe_train(const uint8_t *const *texts, const size_t *lens, size_t n, int vocab_size,
               BpeTrainStats *stats, int progress);

// ---------------------------------------------------------------------------------------------
// encode / decode

typedef struct { uint32_t *ids; size_t n, cap; } BpeTokens;  // a growable id array; zero-init
void bpe_tokens_push(BpeTokens *t, uint32_t id);
void bpe_tokens_free(BpeTokens *t);

// A chunk -> tokens cache. Not thread-safe: one per thread. Bounded: it empties itself when full.
typedef struct BpeCache BpeCache;
BpeCache *bpe_cache_new(void);
void bpe_cache_free(BpeCache *c);

// Appends the tokens of text to out; returns how many were appended. cache may be NULL.
size_t bpe_encode(const Bpe *b, BpeCache *cache, const uint8_t *text, size_t len, BpeTokens *out);

// Bytes of token id (eot: none): sets *len and returns a pointer into b->vocab_bytes.
const uint8_t *bpe_token_bytes(const Bpe *b, uint32_t id, size_t *len);
// Concatenates the tokens' bytes into a new buffer (caller free()s; *out_len set); ids out of
// range return NULL. eot contributes nothing.
uint8_t *bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, size_t *out_len);

// ---------------------------------------------------------------------------------------------
// tokenizer.h5 (codelm-lab/tokenizer/1, csrc/FORMATS.md), through h5io

// Writes the tokenizer with the provenance attributes, plus train_bytes and train_files attrs.
void bpe_save(const Bpe *b, const char *path, uint64_t train_bytes, uint64_t train_files);
// Loads and checks a tokenizer.h5: schema, pretokenizer, shapes, merges, and that the stored
// vocabulary and attributes agree with the merges. Dies with one line naming the file otherwise.
Bpe *bpe_load(const char *path);
