// lab-tokenizer: train a byte-level BPE on a corpus.h5, encode a corpus into tokens.h5, decode
// ids for inspection, and check that every file of a corpus round-trips.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "bpe.h"
#include "common.h"
#include "corpus.h"
#include "h5io.h"

static void usage(void) {
    printf("usage: lab-tokenizer COMMAND [flags]\n"
           "\n"
           "  train     --corpus corpus.h5 --vocab-size N [--max-bytes B[K|M|G]] --out tokenizer.h5\n"
           "            Trains a byte-level BPE on the train split: ids 0..255 are bytes, then N-257\n"
           "            merges, then <|endoftext|> (eot) as id N-1. With --max-bytes, trains on whole\n"
           "            train files taken in a fixed pseudo-random order until B bytes (a file that\n"
           "            would pass B is skipped). The pre-tokenization rule is in csrc/src/bpe.h.\n"
           "  encode    --corpus corpus.h5 --tokenizer tokenizer.h5 --out tokens.h5\n"
           "            Encodes every split present (train, val, test, heldout), each file followed\n"
           "            by eot, in corpus order. Prints bytes per token of each split (file bytes over\n"
           "            tokens, eot not counted), also stored as bytes_per_token_<split> attributes.\n"
           "  decode    --tokenizer tokenizer.h5 [ID ...]\n"
           "            Writes the bytes of the ids (from the arguments, or whitespace-separated on\n"
           "            stdin) to stdout; eot shows as <|endoftext|>.\n"
           "  encode-text --tokenizer tokenizer.h5\n"
           "            Reads text on stdin and prints its token ids, one line.\n"
           "  roundtrip --corpus corpus.h5 --tokenizer tokenizer.h5\n"
           "            Checks that every file of every split decodes back to its exact bytes.\n"
           "\n"
           "  --threads N          OpenMP threads (default: all cores / OMP_NUM_THREADS)\n"
           "  --config-sha256 HEX  recorded in the output's provenance\n"
           "Formats: csrc/FORMATS.md (codelm-lab/tokenizer/1, codelm-lab/tokens/1).\n");
}

// ---------------------------------------------------------------------------------------------
// train

static void cmd_train(const char *corpus_path, int vocab_size, uint64_t max_bytes, const char *out) {
    Corpus *c = corpus_load(corpus_path);
    lab_add_input(corpus_path);  // after the checks: a wrong file is refused before it is hashed
    // Train files, in a fixed pseudo-random order when only part of them is taken.
    uint64_t n_train = 0;
    uint64_t *order = lab_malloc((c->n_files + 1) * sizeof(uint64_t));
    for (uint64_t i = 0; i < c->n_files; i++) if (c->file_split[i] == SPLIT_TRAIN) order[n_train++] = i;
    if (n_train == 0) lab_die("%s: expected files in the train split, found none", corpus_path);
    const uint8_t **texts = lab_malloc(n_train * sizeof(uint8_t *));
    size_t *lens = lab_malloc(n_train * sizeof(size_t));
    size_t n = 0;
    uint64_t bytes = 0;
    if (max_bytes) {
        for (uint64_t i = n_train; i > 1; i--) {  // Fisher-Yates with a fixed seed
            uint64_t j = lab_hash64(0x627065u ^ i) % i, t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
    }
    for (uint64_t k = 0; k < n_train; k++) {
        uint64_t i = order[k];
        if (max_bytes && bytes + c->file_length[i] > max_bytes) continue;
        texts[n] = c->content + c->file_offset[i];
        lens[n++] = c->file_length[i];
        bytes += c->file_length[i];
    }
    if (bytes == 0) lab_die("%s: no train file fits in --max-bytes %llu", corpus_path, (unsigned long long)max_bytes);
    printf("training on %zu of %llu train files, %llu bytes\n", n, (unsigned long long)n_train, (unsigned long long)bytes);
    BpeTrainStats st;
    double t0 = lab_now();
    Bpe *b = bpe_train(texts, lens, n, vocab_size, &st, 1);
    double secs = lab_now() - t0;
    if (b->vocab_size < vocab_size)
        lab_warn("the training text ran out of pairs: vocab size %d, not %d", b->vocab_size, vocab_size);
    uint64_t ntok = 0;
    #pragma omp parallel reduction(+:ntok)
    {
        BpeTokens tok = {0};
        BpeCache *cache = bpe_cache_new();
        #pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < n; i++) { tok.n = 0; ntok += bpe_encode(b, cache, texts[i], lens[i], &tok); }
        bpe_cache_free(cache);
        bpe_tokens_free(&tok);
    }
    printf("vocab %d (%d merges): %llu chunks, %llu distinct of 2+ bytes; pre-tokenize %.2fs, merges %.2fs, total %.2fs; "
           "%.3f bytes/token on the training text\n", b->vocab_size, b->n_merges, (unsigned long long)st.n_chunks,
           (unsigned long long)st.n_unique_chunks, st.pretokenize_s, st.merge_s, secs,
           ntok ? (double)bytes / (double)ntok : 0.0);
    bpe_save(b, out, bytes, n);
    printf("wrote %s\n", out);
    bpe_free(b);
    free(texts); free(lens); free(order);
    corpus_free(c);
}

// ---------------------------------------------------------------------------------------------
// encode

// Tokens of each of the given files (each followed by eot), encoded in parallel; one array per file.
static BpeTokens *encode_files(const Bpe *b, const Corpus *c, const uint64_t *rows, uint64_t n, int add_eot) {
    BpeTokens *docs = lab_calloc(n ? n : 1, sizeof(BpeTokens));
    #pragma omp parallel
    {
        BpeCache *cache = bpe_cache_new();
        #pragma omp for schedule(dynamic, 8)
        for (uint64_t k = 0; k < n; k++) {
            uint64_t i = rows[k];
            bpe_encode(b, cache, c->content + c->file_offset[i], c->file_length[i], &docs[k]);
            if (add_eot) bpe_tokens_push(&docs[k], (uint32_t)b->eot);
        }
        bpe_cache_free(cache);
    }
    return docs;
}

static void cmd_encode(const char *corpus_path, const char *tok_path, const char *out) {
    Bpe *b = bpe_load(tok_path);
    Corpus *c = corpus_load(corpus_path);
    lab_add_input(corpus_path);
    lab_add_input(tok_path);
    int wide = b->vocab_size > 65536;
    H5Writer w = h5_create(out, "codelm-lab/tokens/1");
    h5_write_strings(w.file, "packages", (const char *const *)c->package_name, c->n_packages);
    uint32_t *token_bytes = lab_malloc((size_t)b->vocab_size * sizeof(uint32_t));
    for (int t = 0; t < b->vocab_size; t++) token_bytes[t] = (uint32_t)(b->vocab_offsets[t + 1] - b->vocab_offsets[t]);
    uint64_t nv = (uint64_t)b->vocab_size;
    h5_write(w.file, "token_bytes", LAB_U32, token_bytes, 1, &nv, "bytes");
    h5_attr_i64(w.file, "vocab_size", b->vocab_size);
    h5_attr_i64(w.file, "eot_token", b->eot);
    uint64_t *rows = lab_malloc((c->n_files + 1) * sizeof(uint64_t));
    for (int s = 0; s < SPLIT_COUNT; s++) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < c->n_files; i++) if (c->file_split[i] == s) rows[n++] = i;
        if (n == 0) continue;
        double t0 = lab_now();
        BpeTokens *docs = encode_files(b, c, rows, n, 1);
        uint64_t *doc_offsets = lab_malloc((n + 1) * sizeof(uint64_t)), *doc_bytes = lab_malloc(n * sizeof(uint64_t));
        int32_t *doc_package = lab_malloc(n * sizeof(int32_t));
        uint64_t total = 0, bytes = 0;
        for (uint64_t k = 0; k < n; k++) {
            doc_offsets[k] = total;
            total += docs[k].n;
            doc_bytes[k] = c->file_length[rows[k]];
            doc_package[k] = c->file_package[rows[k]];
            bytes += doc_bytes[k];
        }
        doc_offsets[n] = total;
        void *tokens = lab_malloc(total * (wide ? 4 : 2));
        for (uint64_t k = 0, o = 0; k < n; k++) {
            for (size_t j = 0; j < docs[k].n; j++, o++) {
                if (wide) ((uint32_t *)tokens)[o] = docs[k].ids[j];
                else ((uint16_t *)tokens)[o] = (uint16_t)docs[k].ids[j];
            }
            bpe_tokens_free(&docs[k]);
        }
        free(docs);
        hid_t g = h5_group_create(w.file, corpus_split_name(s));
        uint64_t n1 = n + 1;
        h5_write(g, "tokens", wide ? LAB_U32 : LAB_U16, tokens, 1, &total, "tokens");
        h5_write(g, "doc_offsets", LAB_U64, doc_offsets, 1, &n1, "tokens");
        h5_write(g, "doc_package", LAB_I32, doc_package, 1, &n, NULL);
        h5_write(g, "doc_bytes", LAB_U64, doc_bytes, 1, &n, "bytes");
        H5Gclose(g);
        double bpt = total > n ? (double)bytes / (double)(total - n) : 0.0;
        char attr[64];
        snprintf(attr, sizeof attr, "bytes_per_token_%s", corpus_split_name(s));
        h5_attr_f64(w.file, attr, bpt);
        printf("%-8s %7llu files %12llu bytes %11llu tokens (%llu eot)  %.3f bytes/token  [%.1fs]\n", corpus_split_name(s),
               (unsigned long long)n, (unsigned long long)bytes, (unsigned long long)total, (unsigned long long)n,
               bpt, lab_now() - t0);
        free(tokens); free(doc_offsets); free(doc_bytes); free(doc_package);
    }
    h5_finish(&w);
    printf("wrote %s\n", out);
    free(rows); free(token_bytes);
    corpus_free(c);
    bpe_free(b);
}

// ---------------------------------------------------------------------------------------------
// roundtrip, decode, encode-text

static void cmd_roundtrip(const char *corpus_path, const char *tok_path) {
    Bpe *b = bpe_load(tok_path);
    Corpus *c = corpus_load(corpus_path);
    uint64_t *rows = lab_malloc((c->n_files + 1) * sizeof(uint64_t)), bytes = 0, tokens = 0, bad = 0, first_bad = 0;
    for (uint64_t i = 0; i < c->n_files; i++) rows[i] = i;
    BpeTokens *docs = encode_files(b, c, rows, c->n_files, 0);
    #pragma omp parallel for schedule(dynamic, 8) reduction(+:bytes, tokens)
    for (uint64_t i = 0; i < c->n_files; i++) {
        size_t m;
        uint8_t *back = bpe_decode(b, docs[i].ids, docs[i].n, &m);
        int ok = back && m == c->file_length[i] && memcmp(back, c->content + c->file_offset[i], m) == 0;
        if (!ok) {
            #pragma omp critical
            { if (!bad++ || i < first_bad) first_bad = i; }
        }
        bytes += c->file_length[i];
        tokens += docs[i].n;
        free(back);
        bpe_tokens_free(&docs[i]);
    }
    if (bad)
        lab_die("%llu of %llu files do not round-trip through %s, the first: %s", (unsigned long long)bad,
                (unsigned long long)c->n_files, tok_path, c->file_path[first_bad]);
    printf("roundtrip: %llu files, %llu bytes, %llu tokens: every file decodes to its exact bytes\n",
           (unsigned long long)c->n_files, (unsigned long long)bytes, (unsigned long long)tokens);
    free(docs); free(rows);
    corpus_free(c);
    bpe_free(b);
}

// Every id is checked before anything is written, so a bad one gives an error and no output.
static void cmd_decode(const char *tok_path, char **args, int n_args) {
    Bpe *b = bpe_load(tok_path);
    BpeTokens ids = {0};
    char word[64];
    for (int i = 0; n_args ? i < n_args : scanf("%63s", word) == 1; i++)
        bpe_tokens_push(&ids, (uint32_t)lab_parse_int("token id", n_args ? args[i] : word, 0, b->vocab_size - 1));
    for (size_t i = 0; i < ids.n; i++) {
        if (ids.ids[i] == (uint32_t)b->eot) { fputs(BPE_EOT_TEXT, stdout); continue; }
        size_t n;
        const uint8_t *p = bpe_token_bytes(b, ids.ids[i], &n);
        fwrite(p, 1, n, stdout);
    }
    fflush(stdout);
    bpe_tokens_free(&ids);
    bpe_free(b);
}

static void cmd_encode_text(const char *tok_path) {
    Bpe *b = bpe_load(tok_path);
    size_t n = 0, cap = 1 << 16;
    uint8_t *text = lab_malloc(cap);
    for (size_t k; (k = fread(text + n, 1, cap - n, stdin)) > 0;) {
        n += k;
        if (n == cap) text = lab_realloc(text, cap *= 2);
    }
    BpeTokens t = {0};
    bpe_encode(b, NULL, text, n, &t);
    for (size_t i = 0; i < t.n; i++) printf("%s%u", i ? " " : "", t.ids[i]);
    printf("\n");
    bpe_tokens_free(&t);
    free(text);
    bpe_free(b);
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    lab_init("lab-tokenizer", argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return argc < 2;
    }
    const char *cmd = argv[1], *corpus = NULL, *tokenizer = NULL, *out = NULL;
    int vocab_size = 0;
    uint64_t max_bytes = 0;
    char **ids = lab_malloc((size_t)argc * sizeof(char *));
    int n_ids = 0;
    if (strcmp(cmd, "train") && strcmp(cmd, "encode") && strcmp(cmd, "decode") && strcmp(cmd, "encode-text") &&
        strcmp(cmd, "roundtrip"))
        lab_die("unknown command '%s': expected train, encode, decode, encode-text or roundtrip (see --help)", cmd);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        int has_value = !strcmp(a, "--corpus") || !strcmp(a, "--tokenizer") || !strcmp(a, "--out") ||
                        !strcmp(a, "--vocab-size") || !strcmp(a, "--max-bytes") || !strcmp(a, "--threads") ||
                        !strcmp(a, "--config-sha256");
        if (has_value && i + 1 >= argc) lab_die("%s: expected a value", a);
        if (!strcmp(a, "--corpus")) corpus = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tokenizer = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--vocab-size")) vocab_size = (int)lab_parse_int(a, argv[++i], 257, 1 << 24);
        else if (!strcmp(a, "--max-bytes")) max_bytes = lab_parse_size(a, argv[++i]);
        else if (!strcmp(a, "--threads")) lab_set_threads((int)lab_parse_int(a, argv[++i], 1, 1024));
        else if (!strcmp(a, "--config-sha256")) lab_set_config_sha256(argv[++i]);
        else if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) lab_die("unknown flag '%s' (see --help)", a);
        else if (!strcmp(cmd, "decode")) ids[n_ids++] = argv[i];
        else lab_die("unexpected argument '%s' (see --help)", a);
    }
    int wants_corpus = strcmp(cmd, "decode") && strcmp(cmd, "encode-text");
    if (wants_corpus && !corpus) lab_die("%s: expected --corpus corpus.h5", cmd);
    if (strcmp(cmd, "train") && !tokenizer) lab_die("%s: expected --tokenizer tokenizer.h5", cmd);
    if ((!strcmp(cmd, "train") || !strcmp(cmd, "encode")) && !out) lab_die("%s: expected --out FILE.h5", cmd);
    if (!strcmp(cmd, "train")) {
        if (!vocab_size) lab_die("train: expected --vocab-size N (N >= 257)");
        cmd_train(corpus, vocab_size, max_bytes, out);
    } else if (!strcmp(cmd, "encode")) cmd_encode(corpus, tokenizer, out);
    else if (!strcmp(cmd, "roundtrip")) cmd_roundtrip(corpus, tokenizer);
    else if (!strcmp(cmd, "decode")) cmd_decode(tokenizer, ids, n_ids);
    else cmd_encode_text(tokenizer);
    free(ids);
    return 0;
}
