#!/usr/bin/env bash
# lab-tokenizer on bad input: each case exits 1 with exactly one line on stderr that names the
# problem, and leaves no output file (nor a .tmp) behind.
set -euo pipefail
BIN=${LAB_BIN:?LAB_BIN: the build directory}
T=$(mktemp -d "${TMPDIR:-/tmp}/tokenizer_errors.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
tok="$BIN/lab-tokenizer"

STD=/usr/lib/python3.11
[ -f "$STD/json/__init__.py" ] || STD=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
"$BIN/lab-corpus" --out "$T/corpus.h5" --dir json="$STD/json" --dir http="$STD/http" >/dev/null 2>&1 || fail "lab-corpus"
"$tok" train --corpus "$T/corpus.h5" --vocab-size 300 --out "$T/tok.h5" >/dev/null 2>&1 || fail "train on a good corpus"
echo "not an HDF5 file" >"$T/text.h5"
head -c 3000 "$T/tok.h5" >"$T/truncated.h5"

# expect_error "what the message must contain" [file that must not appear] -- command...
passed=0
expect_error() {
    local want=$1 out=$2
    shift 3
    local rc=0
    "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
    [ "$rc" = 1 ] || fail "expected exit 1, found $rc: $*"
    [ "$(wc -l <"$T/stderr")" = 1 ] || fail "expected one line on stderr, found: $(cat "$T/stderr") ($*)"
    grep -qF -- "$want" "$T/stderr" || fail "expected '$want' in: $(cat "$T/stderr")"
    if [ -n "$out" ]; then [ ! -e "$out" ] && [ ! -e "$out.tmp" ] || fail "$out left behind: $*"; fi
    passed=$((passed + 1))
}

o="$T/out.h5"
expect_error "$T/missing.h5: cannot open" "$o" -- "$tok" train --corpus "$T/missing.h5" --vocab-size 300 --out "$o"
expect_error "expected schema 'codelm-lab/corpus/1', found 'codelm-lab/tokenizer/1'" "$o" -- \
    "$tok" train --corpus "$T/tok.h5" --vocab-size 300 --out "$o"
expect_error "expected an HDF5 file" "$o" -- "$tok" train --corpus "$T/text.h5" --vocab-size 300 --out "$o"
expect_error "--vocab-size" "$o" -- "$tok" train --corpus "$T/corpus.h5" --vocab-size 256 --out "$o"
expect_error "--vocab-size" "$o" -- "$tok" train --corpus "$T/corpus.h5" --vocab-size many --out "$o"
expect_error "expected --vocab-size" "$o" -- "$tok" train --corpus "$T/corpus.h5" --out "$o"
expect_error "expected --out" "" -- "$tok" train --corpus "$T/corpus.h5" --vocab-size 300
expect_error "--max-bytes" "$o" -- "$tok" train --corpus "$T/corpus.h5" --vocab-size 300 --max-bytes 0 --out "$o"
expect_error "no train file fits" "$o" -- "$tok" train --corpus "$T/corpus.h5" --vocab-size 300 --max-bytes 10 --out "$o"
expect_error "expected schema 'codelm-lab/tokenizer/1', found 'codelm-lab/corpus/1'" "$o" -- \
    "$tok" encode --corpus "$T/corpus.h5" --tokenizer "$T/corpus.h5" --out "$o"
expect_error "expected schema 'codelm-lab/corpus/1'" "$o" -- \
    "$tok" encode --corpus "$T/tok.h5" --tokenizer "$T/tok.h5" --out "$o"
expect_error "$T/truncated.h5" "$o" -- "$tok" encode --corpus "$T/corpus.h5" --tokenizer "$T/truncated.h5" --out "$o"
expect_error "expected --tokenizer" "$o" -- "$tok" encode --corpus "$T/corpus.h5" --out "$o"
expect_error "expected schema 'codelm-lab/tokenizer/1'" "" -- "$tok" roundtrip --corpus "$T/corpus.h5" --tokenizer "$T/corpus.h5"
expect_error "token id" "" -- "$tok" decode --tokenizer "$T/tok.h5" 97 300
[ ! -s "$T/stdout" ] || fail "decode wrote bytes before refusing a bad id"
expect_error "token id" "" -- "$tok" decode --tokenizer "$T/tok.h5" -1
expect_error "unknown command 'tokenise'" "" -- "$tok" tokenise --corpus "$T/corpus.h5"
expect_error "unknown flag '--vocab'" "" -- "$tok" train --corpus "$T/corpus.h5" --vocab 300 --out "$o"
expect_error "--out: expected a value" "" -- "$tok" train --corpus "$T/corpus.h5" --vocab-size 300 --out

"$tok" --help | grep -q "usage: lab-tokenizer" || fail "--help"
echo "tokenizer_errors: ok ($passed error cases)"
