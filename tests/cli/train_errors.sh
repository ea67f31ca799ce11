#!/usr/bin/env bash
# lab-train and lab-merge on bad input: a missing, truncated or corrupt file (header or data), a
# file of the wrong schema, an absent split, an adapter for another base (other shape, or the same
# shape with other weights), a loss that blows up. Each gives one line on stderr naming the file
# (or the step), a non-zero exit, and no output file.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
train_tiny base.h5 --steps 10 >/dev/null
train_tiny twin.h5 --steps 10 --seed 2 >/dev/null
train_tiny other.h5 --steps 10 --dim 16 >/dev/null
LORA="--mode lora --tokens tokens.h5 --lora-targets q,v --lora-rank 2 --batch 2 --seq 16 --steps 5 --threads 1"
"$LAB_BIN/lab-train" $LORA --base base.h5 --out adapter.h5 >/dev/null

# damaged copies: cut in half; the header overwritten; bytes inside a dataset's data overwritten
half() { cp "$1" "$2"; truncate -s $(($(stat -c %s "$1") / 2)) "$2"; }
scribble() { cp "$1" "$3"; printf 'scribbled over by the test' | dd of="$3" bs=1 seek="$2" conv=notrunc status=none; }
# the file offset of a dataset's data (its first chunk when chunked)
data_offset() {
  "$PY" -c 'import h5py, sys; d = h5py.File(sys.argv[1])[sys.argv[2]].id
print(d.get_offset() if d.get_offset() is not None else d.get_chunk_info(0).byte_offset)' "$1" "$2"
}
half tokens.h5 tokens_half.h5
scribble tokens.h5 0 tokens_header.h5
scribble tokens.h5 "$(($(data_offset tokens.h5 train/tokens) + 1000))" tokens_data.h5
half base.h5 base_half.h5
scribble base.h5 "$(($(data_offset base.h5 params/wq) + 100))" base_data.h5
half adapter.h5 adapter_half.h5

T="$LAB_BIN/lab-train"
M="$LAB_BIN/lab-merge"
expect_error "missing tokens file" nope.h5 "cannot open: No such file" -- $T $TINY --tokens nope.h5 --out x.h5
expect_error "truncated tokens file" tokens_half.h5 "truncated or corrupt" -- $T $TINY --tokens tokens_half.h5 --out x.h5
expect_error "tokens file with a scribbled header" tokens_header.h5 "expected an HDF5 file" -- $T $TINY --tokens tokens_header.h5 --out x.h5
expect_error "tokens file with scribbled data" tokens_data.h5 "cannot read dataset 'tokens' (truncated or corrupt file)" -- $T $TINY --tokens tokens_data.h5 --out x.h5
expect_error "a checkpoint as tokens" base.h5 "expected schema 'codelm-lab/tokens/1', found 'codelm-lab/checkpoint/1'" -- \
  $T $TINY --tokens base.h5 --out x.h5
expect_error "an absent split" tokens.h5 "expected split 'heldout', found only: train, val, test" -- \
  $T $TINY --val-split heldout --out x.h5
expect_error "a tokens file as the base" tokens.h5 "expected schema 'codelm-lab/checkpoint/1', found 'codelm-lab/tokens/1'" -- \
  $T $LORA --base tokens.h5 --out x.h5
expect_error "a truncated base" base_half.h5 "truncated or corrupt" -- $T $LORA --base base_half.h5 --out x.h5
expect_error "a base with scribbled weights" base_data.h5 "expected parameters with sha256" -- $T $LORA --base base_data.h5 --out x.h5
expect_error "a sequence longer than the context" "--seq 64" "expected at most the model's context 32" -- \
  $T $TINY --seq 64 --out x.h5
expect_error "a blown-up loss" "step 2" "step 2: training diverged: loss" -- $T $TINY --lr 1e30 --steps 20 --out x.h5
[ ! -e x.h5 ] && [ ! -e x.h5.tmp ] || fail "an output was left behind by a failed run"

expect_error "an adapter for a base of another shape" adapter.h5 "expected an adapter for other.h5 (dim 16), found one made for a base with dim 32" -- \
  $M --base other.h5 --adapter adapter.h5 --out x.h5
expect_error "an adapter for another base of the same shape" adapter.h5 "found one trained on another base" -- \
  $M --base twin.h5 --adapter adapter.h5 --out x.h5
expect_error "a checkpoint as the adapter" base.h5 "expected schema 'codelm-lab/adapter/1', found 'codelm-lab/checkpoint/1'" -- \
  $M --base base.h5 --adapter base.h5 --out x.h5
expect_error "a truncated adapter" adapter_half.h5 "truncated or corrupt" -- $M --base base.h5 --adapter adapter_half.h5 --out x.h5
expect_error "a missing adapter" nope.h5 "cannot open" -- $M --base base.h5 --adapter nope.h5 --out x.h5
[ ! -e x.h5 ] && [ ! -e x.h5.tmp ] || fail "an output was left behind by a failed merge"
echo "train_errors: all passed"
