#!/usr/bin/env bash
# lab-corpus on bad input: each case exits non-zero with exactly one line on stderr naming the
# problem, and leaves no output file (nor a .tmp) behind. No network: the one case that asks apt
# asks about a package that does not exist.
set -euo pipefail
BIN=${LAB_BIN:?LAB_BIN: the build directory}
SRC=${LAB_SRC:?LAB_SRC: the repository root}
T=$(mktemp -d "${TMPDIR:-/tmp}/corpus_errors.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$T/pkg" "$T/nopy"
printf 'def f(x):\n    return x + 1\n' >"$T/pkg/m.py"
echo "not python" >"$T/nopy/readme.txt"

# expect_error SUBSTRING -- ARGS...: lab-corpus ARGS fails with one stderr line containing SUBSTRING.
expect_error() {
    local want=$1; shift 2
    rm -f "$T/out.h5" "$T/out.h5.tmp"
    if "$BIN/lab-corpus" "$@" >"$T/stdout" 2>"$T/stderr"; then fail "succeeded: lab-corpus $*"; fi
    [ "$(wc -l <"$T/stderr")" = 1 ] || { cat "$T/stderr"; fail "expected one line on stderr: lab-corpus $*"; }
    grep -qF -- "$want" "$T/stderr" || fail "expected '$want', found: $(cat "$T/stderr")"
    [ ! -e "$T/out.h5" ] && [ ! -e "$T/out.h5.tmp" ] || fail "output left behind: lab-corpus $*"
    echo "ok: $(cat "$T/stderr")"
}

O="--out $T/out.h5"
expect_error "$T/missing" -- $O --dir x="$T/missing"
expect_error "expected NAME=PATH" -- $O --dir "$T/pkg"
expect_error "expected .py files" -- $O --dir empty="$T/nopy"
expect_error "used twice" -- $O --dir a="$T/pkg" --dir a="$T/pkg"
expect_error "unknown flag '--bogus'" -- $O --dir a="$T/pkg" --bogus 1
expect_error "expected --out" -- --dir a="$T/pkg"
expect_error "--max-line-length: expected an integer" -- $O --dir a="$T/pkg" --max-line-length ten
expect_error "--val-packages: nope is not a package of this corpus" -- $O --dir a="$T/pkg" --val-packages nope
expect_error "already in split heldout" -- $O --dir a="$T/pkg" --dir b="$T/pkg" --heldout a --test-packages a
expect_error "--packages: python3-no-such-thing is not in the pinned list" -- \
    $O --pinned "$SRC/configs/corpus-packages.tsv" --packages python3-no-such-thing
printf 'package\tversion\tlicence\tnote\npython3-no-such-thing-zz\t1.0-1\t\t\n' >"$T/pinned.tsv"
expect_error "package python3-no-such-thing-zz: apt knows no version of it" -- \
    $O --pinned "$T/pinned.tsv" --cache "$T/debs"
printf 'python3-six\n' >"$T/bad.tsv"
expect_error "$T/bad.tsv:1: expected 'package<TAB>version" -- $O --pinned "$T/bad.tsv"
expect_error "$T/none.tsv" -- $O --pinned "$T/none.tsv"
