// corpus: assemble a Python corpus (codelm-lab/corpus/1, see FORMATS.md) from pinned Debian
// packages and/or local directories; per-file quality filters, exact and near deduplication
// across packages, split by package; and the reader the later stages use (corpus_load).
//
// Pipeline (corpus_build):
//   1. sources: each Debian package of the selection is taken from the .deb cache when a file of
//      the pinned version is there, else its served version is checked against the pin
//      (apt-cache policy, one call for all; every version is settled before anything is
//      downloaded) and it is fetched with `apt-get download PKG=VERSION`; then `dpkg-deb -x`
//      into a scratch directory (no install, no root), read, and the unpacked tree removed.
//      Local directories are used as they are. Every regular *.py file (symlinks and hidden
//      directories skipped) is read, in package-name order, then path order (bytewise), so no
//      directory-listing order reaches the output.
//   2. per-file filters, the first that applies counts: non_utf8, empty (whitespace only),
//      too_large, max_line_length, mean_line_length, alnum_fraction, auto_generated.
//   3. exact_duplicate (same sha256 of the content), then near_duplicate (MinHash/LSH with an
//      exact Jaccard check, see minhash.h) over all packages together. Of each group of copies
//      the one kept is the first in this order: held-out packages' files (so no copy of them is
//      trained on), then files outside vendoring directories (corpus_is_vendored_path) before
//      those inside, then the order of step 1.
//   4. split by package, never by file: held-out packages -> heldout; --val/--test-packages, or
//      else a seeded shuffle of the rest, each package going to val or test while it fits in
//      their fraction of the kept bytes (a split that nothing fitted gets the smallest package,
//      as long as two stay in train); everything else -> train.
//   5. write corpus.h5 through h5io (deterministic: same inputs and flags, same bytes).
#pragma once
#include <stddef.h>
#include <stdint.h>

enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1, SPLIT_TEST = 2, SPLIT_HELDOUT = 3, SPLIT_COUNT = 4 };
const char *corpus_split_name(int split);  // "train", "val", "test", "heldout"

// ---------------------------------------------------------------------------------------------
// reading a corpus back (lab-tokenizer and the evaluators use this)
//
//   Corpus *c = corpus_load("data/run/corpus.h5");     // dies on a missing file / wrong schema
//   for (uint64_t i = 0; i < c->n_files; i++)
//       if (c->file_split[i] == SPLIT_TRAIN)
//           use(c->content + c->file_offset[i], c->file_length[i],  // UTF-8, not NUL-terminated
//               c->package_name[c->file_package[i]]);
//   corpus_free(c);
typedef struct {
    uint8_t *content;          // all kept files' bytes, concatenated (total_bytes)
    uint64_t total_bytes;
    uint64_t n_files;
    uint64_t *file_offset;     // into content
    uint64_t *file_length;
    int32_t *file_package;     // row in the package arrays
    uint8_t *file_split;       // SPLIT_*
    char **file_path;          // path inside the package
    char **file_sha256;        // hex sha256 of the file's bytes
    uint64_t n_packages;
    char **package_name, **package_version, **package_licence, **package_source, **package_sha256;
    uint8_t *package_split;
} Corpus;

Corpus *corpus_load(const char *path);
void corpus_free(Corpus *c);

// ---------------------------------------------------------------------------------------------
// per-file filters (Codex / CodeParrot style). Lengths are counted in characters (UTF-8 code
// points), lines split at '\n' (which is not counted). The alphanumeric fraction counts ASCII
// letters and digits and every non-ASCII character as alphanumeric, over all characters
// (whitespace included), as CodeParrot's mean of str.isalnum() does for letters.

enum {
    FILTER_NON_UTF8, FILTER_EMPTY, FILTER_TOO_LARGE, FILTER_MAX_LINE_LENGTH, FILTER_MEAN_LINE_LENGTH,
    FILTER_ALNUM_FRACTION, FILTER_AUTO_GENERATED, FILTER_EXACT_DUPLICATE, FILTER_NEAR_DUPLICATE,
    FILTER_COUNT
};
const char *corpus_filter_name(int filter);  // "non_utf8", ..., "near_duplicate"

typedef struct {
    uint64_t max_file_bytes;        // too_large above this (default 1 MiB, as Codex)
    uint64_t max_line_length;       // default 1000
    double max_mean_line_length;    // default 100
    double min_alnum_fraction;      // default 0.25
    int autogen_lines;              // markers are looked for in this many first lines (5)
    char **autogen_markers;         // lower case; matched case-insensitively
    int n_autogen_markers;
} CorpusFilters;
void corpus_filters_default(CorpusFilters *f);  // markers point at static strings

// chars: all characters, newlines included; line_chars: without newlines; lines: newlines, plus
// one when the text does not end in '\n'; max_line: the longest line; alnum: see above.
typedef struct { uint64_t chars, line_chars, lines, max_line, alnum; } TextStats;
int corpus_is_utf8(const uint8_t *s, size_t n);  // strict: no overlongs, surrogates, > U+10FFFF
void corpus_text_stats(const uint8_t *s, size_t n, TextStats *st);
int corpus_is_autogenerated(const uint8_t *s, size_t n, const CorpusFilters *f);
// The first per-file filter that removes s (FILTER_NON_UTF8 .. FILTER_AUTO_GENERATED), or -1.
int corpus_check_file(const uint8_t *s, size_t n, const CorpusFilters *f);
// Marks exact duplicates: dup_of[i] = the first j < i (among active ones) with the same sha256,
// else -1. sha256 holds n hex digests. Returns how many are duplicates.
size_t corpus_exact_dedup(size_t n, const char *const *sha256, const uint8_t *active, int64_t *dup_of);
// 1 when a directory of path (not its last component) is a vendoring one: _vendor, vendor,
// _vendored, vendored, extern, _extern, externals, third_party, thirdparty, _thirdparty.
int corpus_is_vendored_path(const char *path);
// The licence of a Debian package from its DEP-5 copyright file: the License of the `Files: *`
// paragraph (unknown when it names none), else the first License line, else "unknown" (also when
// the file is missing, as when usr/share/doc/PKG is a symlink to another package's). lab-corpus
// then takes the pinned list's licence column.
char *corpus_deb_licence(const char *copyright_path);  // caller free()s

// ---------------------------------------------------------------------------------------------
// building (lab-corpus)

typedef struct { char **v; int n; } CorpusNames;
void corpus_names_push(CorpusNames *l, const char *s);
void corpus_names_split(CorpusNames *l, const char *comma_separated);  // appends each non-empty item
int corpus_names_find(const CorpusNames *l, const char *s);            // index or -1

typedef struct {
    const char *out;                 // corpus.h5
    const char *manifest;            // optional TSV of packages (NULL: none)
    const char *removed;             // optional TSV of removed files and why (NULL: none)
    const char *pinned;              // TSV: package, version, licence, note
    const char *cache;               // .deb cache directory
    const char *tmp;                 // packages are unpacked in a fresh directory under it, removed
                                     // at exit (NULL: $TMPDIR or /tmp)
    int use_debs;                    // take packages from the pinned list
    CorpusNames packages;            // explicit selection (empty: the whole pinned list)
    CorpusNames dir_names, dir_paths;  // --dir NAME=PATH
    int max_packages;                // 0: no limit (held-out packages are not counted)
    uint64_t max_bytes;              // 0: no limit, on the raw .py bytes of non-held-out packages
    int accept_version_change;
    CorpusNames val, test, heldout;
    double val_fraction, test_fraction;
    uint64_t seed;
    CorpusFilters filters;
    double near_threshold;
    int minhash_perms, minhash_bands, shingle;
} CorpusOptions;

void corpus_options_default(CorpusOptions *o);
void corpus_build(const CorpusOptions *o);  // dies with one line on any error
