# batch_scaling: when does batching stop helping? Decode and prefill throughput (left) and the
# latency of one decode step (right) against the batch size, f32 weights, contiguous KV cache.
# Decode is drawn with its bandwidth bound (batch rows share one read of the weights per step)
# and the compute bound (the sgemm rate over the FLOPs of a token), the roofline it runs into.
# Each doubling of the batch is labelled with the decode throughput it added; the batch up to which
# every doubling added 10% or more is marked.
#
#   gnuplot -c figures/batch_scaling.gp OUT_STEM BATCH.tsv
#
# BATCH.tsv  lab-export PROFILE.h5 configs (codelm-lab/profile/1) of a batch-size sweep: one "pp"
#            and one "tg" row per batch size, ascending; columns kind, batch, median_tokens_per_s,
#            min_tokens_per_s, max_tokens_per_s, ms_per_step, bound_tokens_per_s
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) {
    print "usage: gnuplot -c figures/batch_scaling.gp OUT_STEM BATCH.tsv"
    exit status 2
}
STEM = ARG1
BATCH = ARG2
COLS = "kind batch median_tokens_per_s min_tokens_per_s max_tokens_per_s ms_per_step bound_tokens_per_s"
err = out_error(STEM) . tsv_error(BATCH, COLS)
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

# the decode (tg) and prefill (pp) rows, as datablocks without a header:
# batch, median, min, max tokens/s, ms per step, bound
set table $TG
plot BATCH using "batch":"median_tokens_per_s":"min_tokens_per_s":"max_tokens_per_s":"ms_per_step":"bound_tokens_per_s" \
    with table if (strcol("kind") eq "tg")
set table $PP
plot BATCH using "batch":"median_tokens_per_s":"min_tokens_per_s":"max_tokens_per_s":"ms_per_step":"bound_tokens_per_s" \
    with table if (strcol("kind") eq "pp")
unset table
set datafile nocolumnheaders
stats $TG using 1 name "ROWS_TG" nooutput
N_TG = ROWS_TG_records
stats $PP using 1 name "ROWS_PP" nooutput
if (N_TG < 2 || ROWS_PP_records != N_TG) {
    print sprintf("%s: expected one pp and one tg row for each of two batch sizes or more, found %d tg and %d pp rows", \
                  BATCH, N_TG, ROWS_PP_records)
    exit status 1
}
array B[N_TG]
array T[N_TG]
stats $TG using (B[$0 + 1] = $1, T[$0 + 1] = $2) nooutput
do for [i = 2:N_TG] {
    if (B[i] != 2 * B[i - 1]) {
        print sprintf("%s: expected batch sizes each twice the one before, found %g after %g", BATCH, B[i], B[i - 1])
        exit status 1
    }
}
# Batching helps up to STOP: every doubling up to it raised decode throughput by 10% or more, the
# next one did not (STOP is the largest batch when none fell short). On a noisy machine a later
# doubling can gain 10% again: LAST_HELPING is the last that did. The report states the same two.
GAIN_MIN = 0.10
STOP = B[N_TG]
SLOW_SEEN = 0
LAST_HELPING = B[1]
set print $GAINS
do for [i = 2:N_TG] {
    gain = T[i] / T[i - 1] - 1
    if (gain >= GAIN_MIN) { LAST_HELPING = B[i] }
    if (gain < GAIN_MIN && !SLOW_SEEN) { STOP = B[i - 1]; SLOW_SEEN = 1 }
    print sprintf("%g\t%g\t%s", sqrt(B[i] * B[i - 1]), sqrt(T[i] * T[i - 1]), sprintf("%+.0f%%", 100 * gain))
}
unset print
stats $PP using 6 name "COMPUTE" nooutput
stats $TG using 4 name "HI" nooutput
stats $PP using 4 name "PPHI" nooutput
stats $TG using 3 name "LO" nooutput
stats $TG using 6 name "BW" nooutput
TOP = HI_max > PPHI_max ? HI_max : PPHI_max
TOP = TOP > COMPUTE_max ? TOP : COMPUTE_max
TOP = TOP > BW_max ? TOP : BW_max

if (STOP == B[N_TG] && LAST_HELPING == B[N_TG]) {
    HELP_TEXT = sprintf("Every doubling up to batch %g (dashed) added >= %.0f%% decode tokens/s", B[N_TG], 100 * GAIN_MIN)
} else {
    if (LAST_HELPING <= STOP) {
        HELP_TEXT = sprintf("Batching stops helping after batch %g (dashed): later doublings add < %.0f%% decode tokens/s", \
                            STOP, 100 * GAIN_MIN)
    } else {
        HELP_TEXT = sprintf("Doublings add >= %.0f%% decode tokens/s up to batch %g (dashed); a later one, to %g, did again", \
                            100 * GAIN_MIN, STOP, LAST_HELPING)
    }
}

set logscale x 2
set xrange [B[1] / 1.5 : B[N_TG] * 1.5]
set xtics nomirror
set xlabel "batch size (rows decoded together)"
do for [fmt in "pdf png"] {
    eval terminal(fmt, 7.5, 4.2)
    set output part(STEM, fmt)
    set label 2 HELP_TEXT at screen 0.5, screen 0.12 / 4.2 center font ",8" tc rgb OI_VERMILLION
    set multiplot layout 1, 2 margins 0.12, 0.98, 0.85 / 4.2, 1 - 0.7 / 4.2 spacing 0.14, 0 \
        title "Throughput and latency vs batch size (f32 weights, contiguous KV cache)"
    set title "throughput (median of the trials; bars: min-max)"
    set logscale y
    set yrange [LO_min / 2 : TOP * 12]
    set ylabel "tokens/s"
    set format y "%.0s%c"
    set key top left Left reverse samplen 2 font ",8"
    set arrow 1 from first STOP, graph 0 to first STOP, graph 1 nohead dt 2 lw 0.8 lc rgb OI_VERMILLION
    plot $TG using 1:6 with lines dt 2 lw 1 lc rgb C_BASE title "decode bound (bandwidth)", \
         $PP using 1:6 with lines dt 3 lw 1.2 lc rgb "#606060" title "compute bound (sgemm)", \
         $PP using 1:2:3:4 with yerrorlines pt 5 ps 0.5 lw 1.5 lc rgb OI_ORANGE title "prefill", \
         $TG using 1:2:3:4 with yerrorlines pt 7 ps 0.5 lw 1.5 lc rgb C_BASE title "decode", \
         $GAINS using 1:2:3 with labels offset 0, -0.9 font ",7" tc rgb C_BASE notitle
    unset arrow 1
    unset label 2
    set title "latency of one decode step"
    unset logscale y
    set autoscale y
    set yrange [0 : *]
    set ylabel "ms per decode step"
    set format y "%g"
    unset key
    # per step = batch tokens at the trial's rate: the bars follow from the min and max tokens/s
    plot $TG using 1:5:(1000 * $1 / $4):(1000 * $1 / $3) with yerrorlines pt 7 ps 0.5 lw 1.5 lc rgb C_BASE
    unset multiplot
    unset output
}
eval PUBLISH
