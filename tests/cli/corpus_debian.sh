#!/usr/bin/env bash
# lab-corpus on two small real Debian packages (python3-toolz, held out, and python3-six; about
# 60 KB): apt-get download into a fresh cache, .deb sha256 and licences in /packages, a second run
# takes the cached .debs and gives a byte-identical file; a pinned version the archive does not
# serve stops with one line and no output, and --accept-version-change records the override.
set -euo pipefail
BIN=${LAB_BIN:?LAB_BIN: the build directory}
SRC=${LAB_SRC:?LAB_SRC: the repository root}
T=$(mktemp -d "${TMPDIR:-/tmp}/corpus_debian.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
export SOURCE_DATE_EPOCH=1700000000 OMP_NUM_THREADS=2
fail() { echo "FAIL: $*"; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/lib/h5vals.sh"  # h5vals, ds, attr

# A fresh machine may have empty package lists; apt-get update needs root.
if ! LC_ALL=C apt-cache policy python3-toolz | grep -q 'Candidate: [0-9]'; then
    [ "$(id -u)" = 0 ] || fail "apt has no package lists: run 'sudo apt-get update' first"
    apt-get update -qq
fi

PINNED=$SRC/configs/corpus-packages.tsv
pin() { awk -F'\t' -v p="$1" '$1 == p { print $2 }' "$PINNED"; }
cd "$T"  # relative paths: the recorded inputs are then the same in both runs
run() { "$BIN/lab-corpus" --pinned "$PINNED" --packages python3-toolz,python3-six --cache debs --tmp "$T" "$@"; }
run --out c.h5 --manifest m.tsv >log 2>&1 || { cat log; fail "lab-corpus"; }
grep -q "^downloading python3-toolz $(pin python3-toolz)" log || { cat log; fail "python3-toolz not downloaded"; }
ls debs/python3-toolz_*.deb debs/python3-six_*.deb >/dev/null || fail "no .debs in the cache"

[ "$(ds c.h5 /packages/name | tr '\n' ' ')" = "python3-six python3-toolz " ] || fail "packages: $(ds c.h5 /packages/name)"
[ "$(ds c.h5 /packages/version | tr '\n' ' ')" = "$(pin python3-six) $(pin python3-toolz) " ] || fail "versions"
[ "$(ds c.h5 /packages/split | tr '\n' ' ')" = "0 3 " ] || fail "splits: six train, toolz heldout expected"
[ "$(ds c.h5 /packages/licence | tr '\n' ' ')" = "Expat BSD-3-Clause " ] || fail "licences: $(ds c.h5 /packages/licence)"
i=0
for deb in debs/python3-six_*.deb debs/python3-toolz_*.deb; do
    i=$((i + 1))
    [ "$(ds c.h5 /packages/source | sed -n ${i}p)" = "$(basename "$deb")" ] || fail "source of $deb"
    [ "$(ds c.h5 /packages/sha256 | sed -n ${i}p)" = "$(sha256sum <"$deb" | cut -d' ' -f1)" ] || fail "sha256 of $deb"
    grep -q "$(sha256sum <"$deb" | cut -d' ' -f1)" m.tsv || fail "manifest lacks the sha256 of $deb"
done
ds c.h5 /files/path | grep -qx 'usr/lib/python3/dist-packages/six.py' || fail "six.py not in the corpus"
ds c.h5 /files/path | grep -qx 'usr/lib/python3/dist-packages/toolz/itertoolz.py' || fail "toolz/itertoolz.py missing"
n=$(attr c.h5 /n_files)
[ "$n" -ge 20 ] || fail "only $n files"
[ -z "$(ls "$T" | grep '^lab-corpus\.')" ] || fail "scratch directory left behind"
echo "ok: downloaded, $n files, sha256 and licences recorded"

cp c.h5 first.h5
run --out c.h5 --manifest m.tsv >log 2>&1 || { cat log; fail "second run"; }
! grep -q '^downloading' log || fail "second run downloaded again instead of using the cache"
cmp -s c.h5 first.h5 || fail "two runs gave different corpus.h5 bytes"
echo "ok: cache reused, byte-identical"

# A pin the archive does not serve.
sed "s/^python3-six\t[^\t]*/python3-six\t0.0.1-1/" "$PINNED" >wrong.tsv
rm -f w.h5
if "$BIN/lab-corpus" --pinned wrong.tsv --packages python3-toolz,python3-six --cache debs --out w.h5 >out 2>err; then
    fail "a wrong pinned version was accepted"
fi
[ "$(wc -l <err)" = 1 ] || { cat err; fail "expected one line on stderr"; }
grep -qF "package python3-six: pinned version 0.0.1-1, the archive serves $(pin python3-six)" err || fail "message: $(cat err)"
[ ! -e w.h5 ] && [ ! -e w.h5.tmp ] || fail "output left behind after a version mismatch"
echo "ok: $(cat err)"
"$BIN/lab-corpus" --pinned wrong.tsv --packages python3-toolz,python3-six --cache debs --out w.h5 \
    --accept-version-change >log 2>&1 || { cat log; fail "--accept-version-change"; }
[ "$(attr w.h5 /version_overrides)" = "python3-six pinned 0.0.1-1 served $(pin python3-six)" ] ||
    fail "version_overrides: '$(attr w.h5 /version_overrides)'"
[ "$(ds w.h5 /packages/version | head -1)" = "$(pin python3-six)" ] || fail "served version not recorded"
[ "$(attr c.h5 /version_overrides)" = "" ] || fail "overrides recorded without a mismatch"
echo "ok: --accept-version-change records the override"

# How much is used: --max-packages and --max-bytes count the packages that are not held out, in
# list order; held-out ones always come along.
grep -E '^(package|python3-six|python3-toolz|python3-sortedcontainers)\b' "$PINNED" >small.tsv
# limited OUT FLAGS...: the packages of the corpus that FLAGS make from small.tsv
limited() {
    local out=$1; shift
    "$BIN/lab-corpus" --pinned small.tsv --cache debs --heldout python3-sortedcontainers --out "$out" "$@" \
        >log 2>&1 || { cat log; fail "lab-corpus $*"; }
    ds "$out" /packages/name | tr '\n' ' '
}
got=$(limited l1.h5 --max-packages 1)
[ "$got" = "python3-six python3-sortedcontainers " ] || fail "--max-packages 1: $got"
got=$(limited l2.h5 --max-bytes 40K)
[ "$got" = "python3-six python3-sortedcontainers " ] || fail "--max-bytes 40K: $got"
grep -q "^--max-bytes 40960: stopping before python3-toolz" log || { cat log; fail "--max-bytes: no note of the stop"; }
got=$(limited l3.h5 --max-bytes 1M)
[ "$got" = "python3-six python3-sortedcontainers python3-toolz " ] || fail "--max-bytes 1M: $got"
echo "ok: --max-packages, --max-bytes"
