// lab-tokenizer: train a byte-level BPE on a corpus.h5, encode a corpus into tokens.h5, encode
// prompt/completion pairs into a pairs tokens.h5 (the loss on completions only), decode ids for
// inspection, and check that every file of a corpus round-trips.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "bpe.h"
#include "common.h"
#include "corpus.h"
#include "h5io.h"
#include "tasks.h"

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
           "  encode-pairs --pairs PAIRS.jsonl --tokenizer tokenizer.h5 --out pairs.h5\n"
           "            [--val-fraction F] [--max-tokens N]\n"
           "            Encodes HumanEval-format JSONL pairs (task_id, prompt, canonical_solution, and\n"
           "            an optional package) for training on the completion only. Each pair becomes\n"
           "            the document prompt + completion + eot, prompt and completion encoded apart\n"
           "            (the boundary falls where it does at generation); doc_prompt_tokens records\n"
           "            the prompt's length. A pair goes to /val when the first 8 bytes of\n"
           "            sha256(task_id), as a big-endian integer u, give floor(u / 2^11) / 2^53 < F\n"
           "            (default 0.05), else to /train, in file order. With --max-tokens, pairs of\n"
           "            more than N tokens (eot included) are dropped and counted; pass the model's\n"
           "            ctx + 1 so that every pair fits one training row whole.\n"
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

// The root of a tokens.h5 (codelm-lab/tokens/1): the package names, each token's byte length,
// vocab_size and eot_token. The splits follow (write_split), then h5_finish.
static H5Writer tokens_create(const char *out, const Bpe *b, const char *const *packages, uint64_t n_packages) {
    H5Writer w = h5_create(out, "codelm-lab/tokens/1");
    h5_write_strings(w.file, "packages", packages, n_packages);
    uint32_t *token_bytes = lab_malloc((size_t)b->vocab_size * sizeof(uint32_t));
    for (int t = 0; t < b->vocab_size; t++) token_bytes[t] = (uint32_t)(b->vocab_offsets[t + 1] - b->vocab_offsets[t]);
    uint64_t nv = (uint64_t)b->vocab_size;
    h5_write(w.file, "token_bytes", LAB_U32, token_bytes, 1, &nv, "bytes");
    h5_attr_i64(w.file, "vocab_size", b->vocab_size);
    h5_attr_i64(w.file, "eot_token", b->eot);
    free(token_bytes);
    return w;
}

// Group SPLIT of n documents (each already ending in eot; their arrays are freed), with their
// package rows and source bytes, and, for pairs files, their prompt lengths (NULL otherwise).
// Sets bytes_per_token_<split> and prints the split's line; `what` names the documents.
static void write_split(const H5Writer *w, int vocab_size, const char *split, const char *what, BpeTokens *docs,
                        uint64_t n, const int32_t *doc_package, const uint64_t *doc_bytes,
                        const uint64_t *doc_prompt_tokens, double t0) {
    int wide = vocab_size > 65536;
    uint64_t *doc_offsets = lab_malloc((n + 1) * sizeof(uint64_t));
    uint64_t total = 0, bytes = 0;
    for (uint64_t k = 0; k < n; k++) {
        doc_offsets[k] = total;
        total += docs[k].n;
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
    hid_t g = h5_group_create(w->file, split);
    uint64_t n1 = n + 1;
    h5_write(g, "tokens", wide ? LAB_U32 : LAB_U16, tokens, 1, &total, "tokens");
    h5_write(g, "doc_offsets", LAB_U64, doc_offsets, 1, &n1, "tokens");
    h5_write(g, "doc_package", LAB_I32, doc_package, 1, &n, NULL);
    h5_write(g, "doc_bytes", LAB_U64, doc_bytes, 1, &n, "bytes");
    if (doc_prompt_tokens) h5_write(g, "doc_prompt_tokens", LAB_U64, doc_prompt_tokens, 1, &n, "tokens");
    H5Gclose(g);
    double bpt = total > n ? (double)bytes / (double)(total - n) : 0.0;
    char attr[64];
    snprintf(attr, sizeof attr, "bytes_per_token_%s", split);
    h5_attr_f64(w->file, attr, bpt);
    printf("%-8s %7llu %s %12llu bytes %11llu tokens (%llu eot)  %.3f bytes/token  [%.1fs]\n", split,
           (unsigned long long)n, what, (unsigned long long)bytes, (unsigned long long)total, (unsigned long long)n,
           bpt, lab_now() - t0);
    free(tokens); free(doc_offsets);
}

static void cmd_encode(const char *corpus_path, const char *tok_path, const char *out) {
    Bpe *b = bpe_load(tok_path);
    Corpus *c = corpus_load(corpus_path);
    lab_add_input(corpus_path);
    lab_add_input(tok_path);
    H5Writer w = tokens_create(out, b, (const char *const *)c->package_name, c->n_packages);
    uint64_t *rows = lab_malloc((c->n_files + 1) * sizeof(uint64_t));
    for (int s = 0; s < SPLIT_COUNT; s++) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < c->n_files; i++) if (c->file_split[i] == s) rows[n++] = i;
        if (n == 0) continue;
        double t0 = lab_now();
        BpeTokens *docs = encode_files(b, c, rows, n, 1);
        uint64_t *doc_bytes = lab_malloc(n * sizeof(uint64_t));
        int32_t *doc_package = lab_malloc(n * sizeof(int32_t));
        for (uint64_t k = 0; k < n; k++) {
            doc_bytes[k] = c->file_length[rows[k]];
            doc_package[k] = c->file_package[rows[k]];
        }
        write_split(&w, b->vocab_size, corpus_split_name(s), "files", docs, n, doc_package, doc_bytes, NULL, t0);
        free(docs); free(doc_bytes); free(doc_package);
    }
    h5_finish(&w);
    printf("wrote %s\n", out);
    free(rows);
    corpus_free(c);
    bpe_free(b);
}

// ---------------------------------------------------------------------------------------------
// encode-pairs

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Whether a pair goes to val: the first 8 bytes of sha256(task_id), big-endian, as a fraction of
// 2^64 cut to 53 bits (so the double is exact), below val_fraction. It depends on the task_id
// alone, so a pair keeps its split when others are added to the file.
static int pair_is_val(const char *task_id, double val_fraction) {
    char hex[65];
    sha256_hex(task_id, strlen(task_id), hex);
    hex[16] = '\0';
    return (double)(strtoull(hex, NULL, 16) >> 11) / 9007199254740992.0 < val_fraction;  // 2^53
}

static void cmd_encode_pairs(const char *pairs_path, const char *tok_path, double val_fraction, uint64_t max_tokens,
                             const char *out) {
    Bpe *b = bpe_load(tok_path);
    TaskSet ts;
    taskset_load(&ts, pairs_path, TASK_NEED_PROMPT | TASK_NEED_CANONICAL);
    lab_add_input(pairs_path);
    lab_add_input(tok_path);
    double t0 = lab_now();
    uint64_t n = ts.n;
    for (uint64_t k = 0; k < n; k++)
        if (!ts.t[k].prompt[0] && !ts.t[k].canonical_solution[0])
            lab_die("%s: task_id \"%s\": expected a prompt or a canonical_solution, found both empty", pairs_path,
                    ts.t[k].task_id);

    // the packages table: the distinct "package" values, sorted; "" for pairs without one
    const char **names = lab_malloc(n * sizeof(char *));
    for (uint64_t k = 0; k < n; k++) names[k] = ts.t[k].package ? ts.t[k].package : "";
    qsort(names, n, sizeof(char *), compare_strings);
    uint64_t n_packages = 0;
    for (uint64_t k = 0; k < n; k++)
        if (!n_packages || strcmp(names[k], names[n_packages - 1])) names[n_packages++] = names[k];

    // prompt and completion encoded apart, as at generation time: the prompt alone, then what follows
    BpeTokens *docs = lab_calloc(n, sizeof(BpeTokens));
    uint64_t *prompt_tokens = lab_malloc(n * sizeof(uint64_t));
    #pragma omp parallel
    {
        BpeCache *cache = bpe_cache_new();
        #pragma omp for schedule(dynamic, 8)
        for (uint64_t k = 0; k < n; k++) {
            const Task *t = &ts.t[k];
            prompt_tokens[k] = bpe_encode(b, cache, (const uint8_t *)t->prompt, strlen(t->prompt), &docs[k]);
            bpe_encode(b, cache, (const uint8_t *)t->canonical_solution, strlen(t->canonical_solution), &docs[k]);
            bpe_tokens_push(&docs[k], (uint32_t)b->eot);
        }
        bpe_cache_free(cache);
    }

    // which split each pair goes to (-1: dropped, too long), decided before anything is written
    int *split_of = lab_malloc(n * sizeof(int));
    uint64_t dropped = 0, shortest = UINT64_MAX;
    for (uint64_t k = 0; k < n; k++) {
        split_of[k] = pair_is_val(ts.t[k].task_id, val_fraction);
        if (max_tokens && docs[k].n > max_tokens) {
            split_of[k] = -1;
            dropped++;
            shortest = docs[k].n < shortest ? docs[k].n : shortest;
        }
    }
    if (dropped == n)
        lab_die("%s: expected at least one pair of at most --max-tokens %llu tokens, found none (the shortest "
                "of the %llu has %llu)", pairs_path, (unsigned long long)max_tokens, (unsigned long long)n,
                (unsigned long long)shortest);

    H5Writer w = tokens_create(out, b, names, n_packages);
    BpeTokens *split_docs = lab_malloc(n * sizeof(BpeTokens));
    uint64_t *split_prompt = lab_malloc(n * sizeof(uint64_t)), *split_bytes = lab_malloc(n * sizeof(uint64_t));
    int32_t *split_package = lab_malloc(n * sizeof(int32_t));
    for (int val = 0; val < 2; val++) {
        uint64_t m = 0;
        for (uint64_t k = 0; k < n; k++) {
            if (split_of[k] != val) continue;
            const Task *t = &ts.t[k];
            const char *pkg = t->package ? t->package : "";
            const char **row = bsearch(&pkg, names, n_packages, sizeof(char *), compare_strings);
            split_docs[m] = docs[k];
            split_prompt[m] = prompt_tokens[k];
            split_bytes[m] = strlen(t->prompt) + strlen(t->canonical_solution);
            split_package[m++] = (int32_t)(row - names);
        }
        if (m) write_split(&w, b->vocab_size, val ? "val" : "train", "pairs", split_docs, m, split_package,
                           split_bytes, split_prompt, t0);
    }
    h5_attr_f64(w.file, "pairs_val_fraction", val_fraction);
    h5_attr_i64(w.file, "pairs_max_tokens", (int64_t)max_tokens);
    h5_attr_i64(w.file, "pairs_dropped", (int64_t)dropped);
    h5_finish(&w);
    if (max_tokens)
        printf("dropped %llu of %llu pairs longer than --max-tokens %llu (prompt + completion + eot)\n",
               (unsigned long long)dropped, (unsigned long long)n, (unsigned long long)max_tokens);
    printf("wrote %s\n", out);
    for (uint64_t k = 0; k < n; k++)
        if (split_of[k] < 0) bpe_tokens_free(&docs[k]);  // write_split freed the others
    free(split_docs); free(split_prompt); free(split_bytes); free(split_package);
    free(docs); free(prompt_tokens); free(names); free(split_of);
    taskset_free(&ts);
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
    const char *cmd = argv[1], *corpus = NULL, *tokenizer = NULL, *out = NULL, *pairs = NULL;
    int vocab_size = 0;
    uint64_t max_bytes = 0, max_tokens = 0;
    double val_fraction = 0.05;
    char **ids = lab_malloc((size_t)argc * sizeof(char *));
    int n_ids = 0;
    if (strcmp(cmd, "train") && strcmp(cmd, "encode") && strcmp(cmd, "encode-pairs") && strcmp(cmd, "decode") &&
        strcmp(cmd, "encode-text") && strcmp(cmd, "roundtrip"))
        lab_die("unknown command '%s': expected train, encode, encode-pairs, decode, encode-text or roundtrip "
                "(see --help)", cmd);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        int has_value = !strcmp(a, "--corpus") || !strcmp(a, "--tokenizer") || !strcmp(a, "--out") ||
                        !strcmp(a, "--vocab-size") || !strcmp(a, "--max-bytes") || !strcmp(a, "--threads") ||
                        !strcmp(a, "--config-sha256") || !strcmp(a, "--pairs") || !strcmp(a, "--val-fraction") ||
                        !strcmp(a, "--max-tokens");
        if (has_value && i + 1 >= argc) lab_die("%s: expected a value", a);
        if (!strcmp(a, "--corpus")) corpus = argv[++i];
        else if (!strcmp(a, "--tokenizer")) tokenizer = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--vocab-size")) vocab_size = (int)lab_parse_int(a, argv[++i], 257, 1 << 24);
        else if (!strcmp(a, "--max-bytes")) max_bytes = lab_parse_size(a, argv[++i]);
        else if (!strcmp(a, "--pairs")) pairs = argv[++i];
        else if (!strcmp(a, "--val-fraction")) val_fraction = lab_parse_double(a, argv[++i], 0, 1);
        else if (!strcmp(a, "--max-tokens")) max_tokens = (uint64_t)lab_parse_int(a, argv[++i], 1, INT64_MAX);
        else if (!strcmp(a, "--threads")) lab_set_threads((int)lab_parse_int(a, argv[++i], 1, 1024));
        else if (!strcmp(a, "--config-sha256")) lab_set_config_sha256(argv[++i]);
        else if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) lab_die("unknown flag '%s' (see --help)", a);
        else if (!strcmp(cmd, "decode")) ids[n_ids++] = argv[i];
        else lab_die("unexpected argument '%s' (see --help)", a);
    }
    int wants_corpus = strcmp(cmd, "decode") && strcmp(cmd, "encode-text") && strcmp(cmd, "encode-pairs");
    if (wants_corpus && !corpus) lab_die("%s: expected --corpus corpus.h5", cmd);
    if (strcmp(cmd, "train") && !tokenizer) lab_die("%s: expected --tokenizer tokenizer.h5", cmd);
    if ((!strcmp(cmd, "train") || !strcmp(cmd, "encode") || !strcmp(cmd, "encode-pairs")) && !out)
        lab_die("%s: expected --out FILE.h5", cmd);
    if (!strcmp(cmd, "encode-pairs") && !pairs) lab_die("encode-pairs: expected --pairs PAIRS.jsonl");
    if (!strcmp(cmd, "train")) {
        if (!vocab_size) lab_die("train: expected --vocab-size N (N >= 257)");
        cmd_train(corpus, vocab_size, max_bytes, out);
    } else if (!strcmp(cmd, "encode")) cmd_encode(corpus, tokenizer, out);
    else if (!strcmp(cmd, "encode-pairs")) cmd_encode_pairs(pairs, tokenizer, val_fraction, max_tokens, out);
    else if (!strcmp(cmd, "roundtrip")) cmd_roundtrip(corpus, tokenizer);
    else if (!strcmp(cmd, "decode")) cmd_decode(tokenizer, ids, n_ids);
    else cmd_encode_text(tokenizer);
    free(ids);
    return 0;
}
