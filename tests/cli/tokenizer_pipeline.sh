#!/usr/bin/env bash
# lab-tokenizer on a real corpus (five standard-library packages as lab-corpus --dir packages, one
# per split): train, encode, every file round-trips, decode/encode-text agree, the output follows
# FORMATS.md, and two runs give byte-identical tokenizer.h5 and tokens.h5 (SOURCE_DATE_EPOCH set);
# the tokens do not depend on the thread count. KEEP=1 keeps the scratch directory.
set -euo pipefail
KEEP=${KEEP:-}
BIN=${LAB_BIN:?LAB_BIN: the build directory}
T=$(mktemp -d "${TMPDIR:-/tmp}/tokenizer_pipeline.XXXXXX")
[ -n "$KEEP" ] || trap 'rm -rf "$T"' EXIT
export SOURCE_DATE_EPOCH=1700000000 OMP_NUM_THREADS=2
fail() { echo "FAIL: $*"; exit 1; }

STD=/usr/lib/python3.11
[ -f "$STD/json/__init__.py" ] || STD=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
[ -f "$STD/json/__init__.py" ] || fail "no Python standard library found (python3 is installed by workflows/setup.sh)"

"$BIN/lab-corpus" --out "$T/corpus.h5" --dir asyncio="$STD/asyncio" --dir email="$STD/email" \
    --dir json="$STD/json" --dir http="$STD/http" --dir logging="$STD/logging" \
    --val-packages json --test-packages http --heldout logging >"$T/corpus.log" 2>&1 \
    || { cat "$T/corpus.log"; fail "lab-corpus"; }

tok="$BIN/lab-tokenizer"
"$tok" train --corpus "$T/corpus.h5" --vocab-size 1024 --out "$T/tok.h5" >"$T/train.log" 2>&1
grep -q "vocab 1024 (767 merges)" "$T/train.log" || { cat "$T/train.log"; fail "train: expected 767 merges"; }
# The command line is part of the provenance: the second run writes the same path.
mv "$T/tok.h5" "$T/tok.first.h5"
"$tok" train --corpus "$T/corpus.h5" --vocab-size 1024 --out "$T/tok.h5" >/dev/null 2>&1
cmp -s "$T/tok.h5" "$T/tok.first.h5" || fail "two trainings gave different tokenizer.h5 bytes"

"$tok" encode --corpus "$T/corpus.h5" --tokenizer "$T/tok.h5" --out "$T/tokens.h5" >"$T/encode.log"
mv "$T/tokens.h5" "$T/tokens.first.h5"
"$tok" encode --corpus "$T/corpus.h5" --tokenizer "$T/tok.h5" --out "$T/tokens.h5" >/dev/null
cmp -s "$T/tokens.h5" "$T/tokens.first.h5" || fail "two encodings gave different tokens.h5 bytes"
for s in train val test heldout; do
    line=$(grep "^$s " "$T/encode.log") || { cat "$T/encode.log"; fail "encode: no line for split $s"; }
    bpt=$(echo "$line" | sed -n 's/.* \([0-9.]*\) bytes\/token.*/\1/p')
    awk -v b="$bpt" 'BEGIN { exit !(b > 2.0 && b < 8) }' || fail "split $s: implausible bytes/token '$bpt'"
done

# One thread or two: the same tokens.
"$tok" encode --corpus "$T/corpus.h5" --tokenizer "$T/tok.h5" --out "$T/tokens1.h5" --threads 1 >/dev/null
for s in train val test heldout; do
    h5diff "$T/tokens.h5" "$T/tokens1.h5" "/$s/tokens" "/$s/tokens" >/dev/null || fail "/$s/tokens differ with 1 thread"
done

"$tok" roundtrip --corpus "$T/corpus.h5" --tokenizer "$T/tok.h5" >"$T/rt.log"
grep -q "every file decodes to its exact bytes" "$T/rt.log" || fail "roundtrip: $(cat "$T/rt.log")"

# Layout per FORMATS.md.
h5dump -H "$T/tokens.h5" >"$T/tokens.txt"
for s in train val test heldout; do
    sed -n "/GROUP \"$s\"/,/^   }/p" "$T/tokens.txt" >"$T/g.txt"
    grep -A1 'DATASET "tokens"' "$T/g.txt" | grep -q H5T_STD_U16LE || fail "/$s/tokens is not uint16"
    docs=$(grep -A2 'DATASET "doc_bytes"' "$T/g.txt" | sed -n 's/.*SIMPLE { ( \([0-9]*\) ).*/\1/p')
    offs=$(grep -A2 'DATASET "doc_offsets"' "$T/g.txt" | sed -n 's/.*SIMPLE { ( \([0-9]*\) ).*/\1/p')
    [ -n "$docs" ] && [ "$offs" = $((docs + 1)) ] || fail "/$s: doc_offsets has $offs entries for $docs documents"
done
h5dump -a /schema "$T/tokens.h5" | grep -q '"codelm-lab/tokens/1"' || fail "tokens.h5 schema"
h5dump -a /schema "$T/tok.h5" | grep -q '"codelm-lab/tokenizer/1"' || fail "tokenizer.h5 schema"
h5dump -a /eot_token "$T/tokens.h5" | grep -q '(0): 1023' || fail "tokens.h5 eot_token is not 1023"
h5dump -a /bytes_per_token_val "$T/tokens.h5" >/dev/null || fail "no bytes_per_token_val attribute"
h5dump -H -d /merges "$T/tok.h5" | grep -q 'SIMPLE { ( 767, 2 )' || fail "merges is not (767, 2)"
h5dump -H -d /vocab_offsets "$T/tok.h5" | grep -q 'SIMPLE { ( 1025 )' || fail "vocab_offsets is not (1025)"
# Every document ends in eot: the last token of the train split is 1023.
last=$(h5dump -d /train/tokens -s "$(($(h5dump -H -d /train/tokens "$T/tokens.h5" | sed -n 's/.*SIMPLE { ( \([0-9]*\) ).*/\1/p') - 1))" -c 1 "$T/tokens.h5" | sed -n 's/.*(\([0-9]*\)): \([0-9]*\).*/\2/p')
[ "$last" = 1023 ] || fail "the train split ends in token '$last', not eot 1023"

# encode-text then decode gives the text back; eot decodes to its name.
printf 'def f(x):\n    return x + 42  # caf\xc3\xa9\n' >"$T/snippet.py"
"$tok" encode-text --tokenizer "$T/tok.h5" <"$T/snippet.py" >"$T/ids.txt"
"$tok" decode --tokenizer "$T/tok.h5" <"$T/ids.txt" >"$T/back.py"
cmp -s "$T/snippet.py" "$T/back.py" || fail "encode-text | decode changed the text"
[ "$(wc -w <"$T/ids.txt")" -lt "$(wc -c <"$T/snippet.py")" ] || fail "encode-text did not compress"
[ "$("$tok" decode --tokenizer "$T/tok.h5" 100 101 1023)" = "de<|endoftext|>" ] || fail "decode of ids 100 101 1023"

echo "tokenizer_pipeline: ok"
