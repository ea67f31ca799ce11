// tokens: the pairs batches (one prompt + completion + eot document per row, the loss on the
// completion only) on hand-made splits whose rows are written out by hand below, and the
// doc_prompt_tokens dataset read back from a file.
#include "h5io.h"
#include "test_util.h"
#include "tokens.h"

enum { V = 20, EOT = 19, T = 8, N_DOCS = 4 };

// Four documents (prompt | completion | eot):
//   0: 1 2 3 | 4 5 | eot                  fits with room to spare: padded
//   1: 6 7 8 9 | 10 11 12 13 14 15 16 17 | eot   13 tokens: cut to the row's 8 + 1
//   2: 2 | | eot                          an empty completion: only the eot is scored
//   3: | 3 4 | eot                        an empty prompt: every token but the first is scored
static int32_t doc_tokens[] = {1, 2, 3, 4, 5, EOT,
                               6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, EOT,
                               2, EOT,
                               3, 4, EOT};
static uint64_t doc_offsets[N_DOCS + 1] = {0, 6, 19, 21, 24};
static uint64_t doc_prompt[N_DOCS] = {3, 4, 1, 0};

// The rows of T = 8, by hand: inputs are the document then eot padding; targets the next token
// where it is a completion token or the final eot, -1 on the prompt and the padding.
static const int32_t want_in[N_DOCS][T] = {
    {1, 2, 3, 4, 5, EOT, EOT, EOT},
    {6, 7, 8, 9, 10, 11, 12, 13},
    {2, EOT, EOT, EOT, EOT, EOT, EOT, EOT},
    {3, 4, EOT, EOT, EOT, EOT, EOT, EOT},
};
static const int32_t want_tgt[N_DOCS][T] = {
    {-1, -1, 4, 5, EOT, -1, -1, -1},
    {-1, -1, -1, 10, 11, 12, 13, 14},
    {EOT, -1, -1, -1, -1, -1, -1, -1},
    {4, EOT, -1, -1, -1, -1, -1, -1},
};
static const uint64_t want_scored[N_DOCS] = {3, 5, 1, 2};

static TokenSplit hand_split(const char *path) {
    TokenSplit ts = {.path = (char *)path, .split = "train", .vocab_size = V, .eot_token = EOT,
                     .tokens = doc_tokens, .n_tokens = sizeof doc_tokens / sizeof *doc_tokens,
                     .doc_offsets = doc_offsets, .n_docs = N_DOCS, .doc_prompt_tokens = doc_prompt};
    return ts;
}

// The document whose hand-written row equals row r, or -1.
static int matching_doc(const int32_t *in, const int32_t *tgt) {
    for (int d = 0; d < N_DOCS; d++)
        if (!memcmp(in, want_in[d], sizeof want_in[d]) && !memcmp(tgt, want_tgt[d], sizeof want_tgt[d])) return d;
    return -1;
}

static void test_rows(void) {
    TokenSplit ts = hand_split("hand.h5");
    // one validation batch of N_DOCS rows takes every document once, in order
    int32_t in[N_DOCS * T], tgt[N_DOCS * T];
    tokens_pairs_val_batch(&ts, 0, 1, N_DOCS, T, in, tgt);
    for (int d = 0; d < N_DOCS; d++) {
        CHECK(!memcmp(in + d * T, want_in[d], sizeof want_in[d]), "document %d: inputs as written by hand", d);
        CHECK(!memcmp(tgt + d * T, want_tgt[d], sizeof want_tgt[d]), "document %d: targets as written by hand", d);
        int scored = 0;
        for (int t = 0; t < T; t++) scored += tgt[d * T + t] >= 0;
        CHECK((uint64_t)scored == want_scored[d] && tokens_pairs_scored(&ts, d, T) == want_scored[d],
              "document %d: %llu scored targets, found %d in the row and %llu from tokens_pairs_scored", d,
              (unsigned long long)want_scored[d], scored, (unsigned long long)tokens_pairs_scored(&ts, d, T));
    }
    CHECK(tokens_pairs_check(&ts, T) == 3 + 5 + 1 + 2, "tokens_pairs_check sums the scored targets");
    // a row of T = 12 holds document 1 whole: 13 tokens = 12 inputs + the last target (its eot)
    int32_t in12[12], tgt12[12];
    tokens_pairs_val_batch(&ts, 1, 4, 1, 12, in12, tgt12);  // window 1 of 4 over 4 documents: document 1
    CHECK(in12[11] == 17 && tgt12[11] == EOT && tgt12[2] == -1 && tgt12[3] == 10,
          "with room for it, the long document's completion and eot are all targets");
    CHECK(tokens_pairs_scored(&ts, 1, 12) == 9, "document 1 in a row of 12: 8 completion tokens + eot scored");

    // validation: 2 batches of 3 rows spread over 4 documents: floor(w * 3 / 5), w = 0..5
    int32_t vin[3 * T], vtgt[3 * T];
    const int want_docs[6] = {0, 0, 1, 1, 2, 3};
    for (int i = 0; i < 2; i++) {
        tokens_pairs_val_batch(&ts, i, 2, 3, T, vin, vtgt);
        for (int b = 0; b < 3; b++)
            CHECK(matching_doc(vin + b * T, vtgt + b * T) == want_docs[i * 3 + b],
                  "validation window %d: expected document %d, found %d", i * 3 + b, want_docs[i * 3 + b],
                  matching_doc(vin + b * T, vtgt + b * T));
    }
}

static void test_train_batches(void) {
    TokenSplit ts = hand_split("hand.h5");
    enum { B = 5 };
    int32_t in[B * T], tgt[B * T], in2[B * T], tgt2[B * T];
    tokens_pairs_train_batch(&ts, 7, 12, 1, B, T, in, tgt);
    tokens_pairs_train_batch(&ts, 7, 12, 1, B, T, in2, tgt2);
    CHECK(!memcmp(in, in2, sizeof in) && !memcmp(tgt, tgt2, sizeof tgt), "the same (seed, step, micro) gives the same batch");
    for (int b = 0; b < B; b++)
        CHECK(matching_doc(in + b * T, tgt + b * T) >= 0, "row %d is one document's row, built as by hand", b);
    // row b depends on (seed, step, micro, b) alone: not on the batch size
    int32_t in3[3 * T], tgt3[3 * T];
    tokens_pairs_train_batch(&ts, 7, 12, 1, 3, T, in3, tgt3);
    CHECK(!memcmp(in3, in, sizeof in3) && !memcmp(tgt3, tgt, sizeof tgt3), "the first rows do not depend on B");
    // another seed, step or micro-step changes the draw; over many rows each document is drawn
    // about equally often
    int counts[N_DOCS] = {0}, differ_seed = 0, differ_step = 0, differ_micro = 0;
    for (int64_t step = 0; step < 800; step++) {
        tokens_pairs_train_batch(&ts, 7, step, 0, B, T, in2, tgt2);
        for (int b = 0; b < B; b++) {
            int d = matching_doc(in2 + b * T, tgt2 + b * T);
            CHECK(d >= 0, "step %lld row %d: a document's row", (long long)step, b);
            if (d >= 0) counts[d]++;
        }
        int32_t s[B * T], u[B * T], ti[B * T], tt[B * T];
        tokens_pairs_train_batch(&ts, 8, step, 0, B, T, s, tt);
        tokens_pairs_train_batch(&ts, 7, step, 1, B, T, u, tt);
        tokens_pairs_train_batch(&ts, 7, step + 1000, 0, B, T, ti, tt);
        differ_seed += memcmp(s, in2, sizeof s) != 0;
        differ_micro += memcmp(u, in2, sizeof u) != 0;
        differ_step += memcmp(ti, in2, sizeof ti) != 0;
    }
    for (int d = 0; d < N_DOCS; d++)
        CHECK(counts[d] > 850 && counts[d] < 1150, "document %d drawn %d times of 4000 (expected about 1000)", d, counts[d]);
    CHECK(differ_seed > 700 && differ_micro > 700 && differ_step > 700,
          "another seed, micro-step or step gives another batch (%d, %d, %d of 800)", differ_seed, differ_micro,
          differ_step);
}

// ---------------------------------------------------------------------------------------------
// errors

// a prompt of 9 tokens overflows a row of 8: nothing of the completion is a target (a prompt of
// exactly 8 would leave one: the row's last target is the token after its last input)
static void check_prompt_fills_row(const char *path) {
    static int32_t tokens[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, EOT, 1, EOT};
    static uint64_t offsets[] = {0, 10, 12}, prompt[] = {9, 1};
    TokenSplit ts = {.path = (char *)path, .split = "train", .vocab_size = V, .eot_token = EOT, .tokens = tokens,
                     .n_tokens = 12, .doc_offsets = offsets, .n_docs = 2, .doc_prompt_tokens = prompt};
    tokens_pairs_check(&ts, T);
}

static void pairs_batch_of_plain_split(const char *path) {
    TokenSplit ts = hand_split(path);
    ts.doc_prompt_tokens = NULL;
    int32_t in[T], tgt[T];
    tokens_pairs_train_batch(&ts, 1, 0, 0, 1, T, in, tgt);
}

// ---------------------------------------------------------------------------------------------
// the file: doc_prompt_tokens read when present, checked against the documents

static void write_split(const char *path, const uint64_t *prompt) {
    H5Writer w = h5_create(path, "codelm-lab/tokens/1");
    h5_attr_i64(w.file, "vocab_size", V);
    h5_attr_i64(w.file, "eot_token", EOT);
    const char *packages[1] = {""};
    h5_write_strings(w.file, "packages", packages, 1);
    uint32_t token_bytes[V];
    for (int t = 0; t < V; t++) token_bytes[t] = t == EOT ? 0 : 1;
    uint64_t v = V, n = sizeof doc_tokens / sizeof *doc_tokens, docs = N_DOCS, off = N_DOCS + 1;
    h5_write(w.file, "token_bytes", LAB_U32, token_bytes, 1, &v, NULL);
    hid_t g = h5_group_create(w.file, "train");
    uint16_t tok[sizeof doc_tokens / sizeof *doc_tokens];
    for (uint64_t i = 0; i < n; i++) tok[i] = (uint16_t)doc_tokens[i];
    h5_write(g, "tokens", LAB_U16, tok, 1, &n, NULL);
    h5_write(g, "doc_offsets", LAB_U64, doc_offsets, 1, &off, NULL);
    int32_t pkg[N_DOCS] = {0};
    uint64_t bytes[N_DOCS] = {5, 12, 1, 2};
    h5_write(g, "doc_package", LAB_I32, pkg, 1, &docs, NULL);
    h5_write(g, "doc_bytes", LAB_U64, bytes, 1, &docs, "bytes");
    if (prompt) h5_write(g, "doc_prompt_tokens", LAB_U64, prompt, 1, &docs, "tokens");
    H5Gclose(g);
    h5_finish(&w);
}

static void load_train(const char *path) {
    TokenSplit ts;
    tokens_load(&ts, path, "train");
}

static void test_file(void) {
    const char *pairs = test_path("pairs.h5"), *plain = test_path("plain.h5"), *bad = test_path("bad.h5");
    write_split(pairs, doc_prompt);
    write_split(plain, NULL);
    uint64_t too_long[N_DOCS] = {3, 4, 2, 0};  // document 2 has 2 tokens: a prompt of 2 leaves no eot
    write_split(bad, too_long);
    TokenSplit ts;
    tokens_load(&ts, pairs, "train");
    CHECK(ts.doc_prompt_tokens && !memcmp(ts.doc_prompt_tokens, doc_prompt, sizeof doc_prompt),
          "doc_prompt_tokens read back");
    int32_t in[N_DOCS * T], tgt[N_DOCS * T];
    tokens_pairs_val_batch(&ts, 0, 1, N_DOCS, T, in, tgt);
    CHECK(!memcmp(in, want_in, sizeof in) && !memcmp(tgt, want_tgt, sizeof tgt), "rows from the file as by hand");
    tokens_free(&ts);
    tokens_load(&ts, plain, "train");
    CHECK(ts.doc_prompt_tokens == NULL, "a file without doc_prompt_tokens is not a pairs file");
    tokens_free(&ts);
    test_expect_error(load_train, bad, "doc_prompt_tokens: expected fewer than the document's 2 tokens", "prompt over the eot");
    test_expect_error(pairs_batch_of_plain_split, plain, "expected a pairs file", "pairs batch of a plain split");
    test_expect_error(check_prompt_fills_row, "fills.h5", "found pair 0 with 10 tokens, 9 of them prompt",
                      "a prompt that fills the row");
}

int main(int argc, char **argv) {
    lab_init("test_tokens", argc, argv);
    test_rows();
    test_train_batches();
    test_file();
    return test_summary();
}
