// tokens: reading a split of tokens.h5 and making batches from it (see tokens.h).
#include "tokens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5io.h"

static const char *const split_names[] = {"train", "val", "test", "heldout"};

void tokens_load(TokenSplit *ts, const char *path, const char *split) {
    memset(ts, 0, sizeof *ts);
    hid_t f = h5_open(path, "codelm-lab/tokens/1");
    if (!h5_exists(f, split)) {
        char have[128] = "";
        for (size_t i = 0; i < sizeof split_names / sizeof *split_names; i++)
            if (h5_exists(f, split_names[i]))
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", have[0] ? ", " : "", split_names[i]);
        lab_die("%s: expected split '%s', found only: %s", path, split, have[0] ? have : "none");
    }
    ts->path = lab_strdup(path);
    ts->split = lab_strdup(split);
    ts->vocab_size = (int)h5_get_attr_i64(f, "vocab_size");
    ts->eot_token = (int)h5_get_attr_i64(f, "eot_token");
    if (ts->vocab_size <= 0 || ts->eot_token < 0 || ts->eot_token >= ts->vocab_size)
        lab_die("%s: expected 0 <= eot_token < vocab_size, found eot_token %d, vocab_size %d", path,
                ts->eot_token, ts->vocab_size);
    uint64_t dims[1] = {(uint64_t)ts->vocab_size};
    ts->token_bytes = h5_read(f, "token_bytes", LAB_U32, 1, dims);
    ts->packages = h5_read_strings(f, "packages", &ts->n_packages);

    hid_t g = h5_group_open(f, split);
    dims[0] = 0;
    ts->tokens = h5_read(g, "tokens", LAB_I32, 1, dims);
    ts->n_tokens = dims[0];
    dims[0] = 0;
    ts->doc_offsets = h5_read(g, "doc_offsets", LAB_U64, 1, dims);
    if (dims[0] < 1) lab_die("%s: /%s/doc_offsets: expected at least 1 entry, found 0", path, split);
    ts->n_docs = dims[0] - 1;
    dims[0] = ts->n_docs;
    ts->doc_package = h5_read(g, "doc_package", LAB_I32, 1, dims);
    dims[0] = ts->n_docs;
    ts->doc_bytes = h5_read(g, "doc_bytes", LAB_U64, 1, dims);
    if (h5_exists(g, "doc_prompt_tokens")) {
        dims[0] = ts->n_docs;
        ts->doc_prompt_tokens = h5_read(g, "doc_prompt_tokens", LAB_U64, 1, dims);
    }
    H5Gclose(g);
    h5_close(f);

    if (ts->doc_offsets[0] != 0 || ts->doc_offsets[ts->n_docs] != ts->n_tokens)
        lab_die("%s: /%s/doc_offsets: expected 0 .. %llu, found %llu .. %llu", path, split,
                (unsigned long long)ts->n_tokens, (unsigned long long)ts->doc_offsets[0],
                (unsigned long long)ts->doc_offsets[ts->n_docs]);
    for (uint64_t d = 0; d < ts->n_docs; d++) {
        if (ts->doc_offsets[d + 1] < ts->doc_offsets[d])
            lab_die("%s: /%s/doc_offsets: expected non-decreasing offsets, found a decrease at document %llu",
                    path, split, (unsigned long long)d);
        if (ts->doc_package[d] < 0 || (uint64_t)ts->doc_package[d] >= ts->n_packages)
            lab_die("%s: /%s/doc_package: expected rows 0..%llu, found %d at document %llu", path, split,
                    (unsigned long long)ts->n_packages - 1, ts->doc_package[d], (unsigned long long)d);
        uint64_t len = ts->doc_offsets[d + 1] - ts->doc_offsets[d];
        if (ts->doc_prompt_tokens && ts->doc_prompt_tokens[d] >= len)
            lab_die("%s: /%s/doc_prompt_tokens: expected fewer than the document's %llu tokens (its eot is "
                    "never prompt), found %llu at document %llu", path, split, (unsigned long long)len,
                    (unsigned long long)ts->doc_prompt_tokens[d], (unsigned long long)d);
    }
    for (uint64_t i = 0; i < ts->n_tokens; i++)
        if (ts->tokens[i] < 0 || ts->tokens[i] >= ts->vocab_size)
            lab_die("%s: /%s/tokens: expected ids below vocab_size %d, found %d at position %llu", path,
                    split, ts->vocab_size, ts->tokens[i], (unsigned long long)i);
}

void tokens_free(TokenSplit *ts) {
    free(ts->path);
    free(ts->split);
    free(ts->tokens);
    free(ts->doc_offsets);
    free(ts->doc_package);
    free(ts->doc_bytes);
    free(ts->doc_prompt_tokens);
    h5_free_strings(ts->packages, ts->n_packages);
    free(ts->token_bytes);
    memset(ts, 0, sizeof *ts);
}

static void need_tokens(const TokenSplit *ts, int T) {
    if (ts->n_tokens < (uint64_t)T + 1)
        lab_die("%s: split '%s': expected at least %d tokens for windows of %d, found %llu", ts->path,
                ts->split, T + 1, T, (unsigned long long)ts->n_tokens);
}

static void copy_window(const TokenSplit *ts, uint64_t start, int T, int32_t *inputs, int32_t *targets) {
    memcpy(inputs, ts->tokens + start, (size_t)T * sizeof(int32_t));
    memcpy(targets, ts->tokens + start + 1, (size_t)T * sizeof(int32_t));
}

// Row b of micro-batch `micro` of step `step` draws from lab_hash64(this ^ b).
static uint64_t batch_hash(uint64_t seed, int64_t step, int micro) {
    return lab_hash64(lab_hash64(lab_hash64(seed) ^ (uint64_t)step) ^ (uint64_t)micro);
}

void tokens_train_batch(const TokenSplit *ts, uint64_t seed, int64_t step, int micro, int B, int T,
                        int32_t *inputs, int32_t *targets) {
    need_tokens(ts, T);
    uint64_t starts = ts->n_tokens - (uint64_t)T;  // s + T < n_tokens
    uint64_t h = batch_hash(seed, step, micro);
    for (int b = 0; b < B; b++) {
        uint64_t s = lab_hash64(h ^ (uint64_t)b) % starts;
        copy_window(ts, s, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

void tokens_val_batch(const TokenSplit *ts, int i, int n_batches, int B, int T, int32_t *inputs,
                      int32_t *targets) {
    need_tokens(ts, T);
    uint64_t last = ts->n_tokens - (uint64_t)T - 1;  // the last valid start
    uint64_t windows = (uint64_t)n_batches * (uint64_t)B;
    for (int b = 0; b < B; b++) {
        uint64_t w = (uint64_t)i * (uint64_t)B + (uint64_t)b;
        uint64_t s = windows > 1 ? (uint64_t)((double)w * (double)last / (double)(windows - 1)) : 0;
        copy_window(ts, s, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

double tokens_unigram_entropy(const TokenSplit *ts) {
    uint64_t *count = lab_calloc((size_t)ts->vocab_size, sizeof(uint64_t));
    for (uint64_t i = 0; i < ts->n_tokens; i++) count[ts->tokens[i]]++;
    double h = 0, n = (double)ts->n_tokens;
    for (int t = 0; t < ts->vocab_size; t++)
        if (count[t]) h -= (double)count[t] / n * log((double)count[t] / n);
    free(count);
    return h;
}

// ---------------------------------------------------------------------------------------------
// pairs

static void need_pairs(const TokenSplit *ts) {
    if (!ts->doc_prompt_tokens)
        lab_die("%s: split '%s': expected a pairs file (with doc_prompt_tokens, from lab-tokenizer "
                "encode-pairs), found none", ts->path, ts->split);
    if (ts->n_docs == 0) lab_die("%s: split '%s': expected at least one pair, found none", ts->path, ts->split);
}

static void pair_row(const TokenSplit *ts, uint64_t d, int T, int32_t *inputs, int32_t *targets) {
    const int32_t *x = ts->tokens + ts->doc_offsets[d];
    uint64_t n = ts->doc_offsets[d + 1] - ts->doc_offsets[d], p = ts->doc_prompt_tokens[d];
    for (int t = 0; t < T; t++) {
        uint64_t next = (uint64_t)t + 1;
        inputs[t] = (uint64_t)t < n ? x[t] : ts->eot_token;
        targets[t] = next < n && next >= p ? x[next] : -1;
    }
}

void tokens_pairs_train_batch(const TokenSplit *ts, uint64_t seed, int64_t step, int micro, int B, int T,
                              int32_t *inputs, int32_t *targets) {
    need_pairs(ts);
    uint64_t h = batch_hash(seed, step, micro);
    for (int b = 0; b < B; b++)
        pair_row(ts, lab_hash64(h ^ (uint64_t)b) % ts->n_docs, T, inputs + (size_t)b * T, targets + (size_t)b * T);
}

void tokens_pairs_val_batch(const TokenSplit *ts, int i, int n_batches, int B, int T, int32_t *inputs,
                            int32_t *targets) {
    need_pairs(ts);
    uint64_t windows = (uint64_t)n_batches * (uint64_t)B;
    for (int b = 0; b < B; b++) {
        uint64_t w = (uint64_t)i * (uint64_t)B + (uint64_t)b;
        uint64_t d = windows > 1 ? w * (ts->n_docs - 1) / (windows - 1) : 0;
        pair_row(ts, d, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

uint64_t tokens_pairs_scored(const TokenSplit *ts, uint64_t d, int T) {
    uint64_t n = ts->doc_offsets[d + 1] - ts->doc_offsets[d], p = ts->doc_prompt_tokens[d];
    uint64_t first = p > 1 ? p : 1;                        // x[0] is never a target
    uint64_t last = n - 1 < (uint64_t)T ? n - 1 : (uint64_t)T;  // x[T] is the row's last target
    return last >= first ? last - first + 1 : 0;
}

uint64_t tokens_pairs_check(const TokenSplit *ts, int T) {
    need_pairs(ts);
    uint64_t total = 0;
    for (uint64_t d = 0; d < ts->n_docs; d++) {
        uint64_t scored = tokens_pairs_scored(ts, d, T);
        if (!scored)
            lab_die("%s: split '%s': expected every pair to have a completion token or its eot within %d "
                    "positions, found pair %llu with %llu tokens, %llu of them prompt (encode with "
                    "--max-tokens %d)", ts->path, ts->split, T, (unsigned long long)d,
                    (unsigned long long)(ts->doc_offsets[d + 1] - ts->doc_offsets[d]),
                    (unsigned long long)ts->doc_prompt_tokens[d], T + 1);
        total += scored;
    }
    return total;
}
