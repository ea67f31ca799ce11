# Sourced by tests/cli/train_*.sh and eval_*.sh: the tools, a scratch directory removed on exit,
# Python with h5py for independent checks, a tokens.h5 of real Python source made by lab-corpus
# and lab-tokenizer, and assertions.
# (In lib/ so that ctest, which runs tests/cli/*.sh, does not take it for a test.)
set -euo pipefail
: "${LAB_BIN:?set LAB_BIN to the build directory}" "${LAB_SRC:?set LAB_SRC to the repository root}"
PY=$LAB_SRC/.venv/bin/python
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lab-$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export SOURCE_DATE_EPOCH=1700000000

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

# make_tokens OUT.h5: seven packages of the standard library (train: asyncio, email, unittest, xml;
# val: json; test: http, logging), a 512-token BPE trained on the train split, every split encoded
make_tokens() {
  local std=/usr/lib/python3.11
  [ -f "$std/json/__init__.py" ] || std=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
  local dirs="" p
  for p in asyncio email unittest xml json http logging; do dirs="$dirs --dir $p=$std/$p"; done
  "$LAB_BIN/lab-corpus" --out corpus.h5 $dirs --val-packages json --test-packages http,logging \
    >corpus.log 2>&1 || fail "lab-corpus: $(tail -3 corpus.log)"
  "$LAB_BIN/lab-tokenizer" train --corpus corpus.h5 --vocab-size 512 --out tokenizer.h5 >tokenizer.log 2>&1 ||
    fail "lab-tokenizer train: $(tail -3 tokenizer.log)"
  "$LAB_BIN/lab-tokenizer" encode --corpus corpus.h5 --tokenizer tokenizer.h5 --out "$1" >>tokenizer.log 2>&1 ||
    fail "lab-tokenizer encode: $(tail -3 tokenizer.log)"
}

# a small model on tokens.h5, quick on one thread: "$LAB_BIN/lab-train" $TINY --out OUT.h5 ...
TINY="--mode pretrain --tokens tokens.h5 --dim 32 --layers 2 --heads 2 --ctx 32 --batch 4 --lr 3e-3
      --warmup 5 --val-batches 2 --threads 1"
train_tiny() { "$LAB_BIN/lab-train" $TINY --out "$@"; }  # train_tiny OUT.h5 [more flags]

# expect_error WHAT NAMED SUBSTRING -- COMMAND...: COMMAND must exit non-zero with exactly one
# line on stderr that contains SUBSTRING and names NAMED (a file).
expect_error() {
  local what=$1 named=$2 want=$3
  shift 4
  local code=0
  "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || code=$?
  [ "$code" -ne 0 ] || fail "$what: expected a non-zero exit, found 0"
  [ "$(wc -l <"$WORK/err.txt")" -eq 1 ] || fail "$what: expected one line on stderr, found: $(cat "$WORK/err.txt")"
  grep -qF -- "$want" "$WORK/err.txt" || fail "$what: expected '$want' in: $(cat "$WORK/err.txt")"
  grep -qF -- "$named" "$WORK/err.txt" || fail "$what: expected the message to name $named: $(cat "$WORK/err.txt")"
  pass "$what: $(cat "$WORK/err.txt")"
}

# h5attr FILE NAME: a root attribute
h5attr() { "$PY" -c 'import h5py, sys; v = h5py.File(sys.argv[1])["/"].attrs[sys.argv[2]]; print(v.decode() if isinstance(v, bytes) else v)' "$1" "$2"; }
