# width_scaling: what the embedding dimension costs. Randomly initialised models of the base's
# depth and vocabulary at several widths (f32, batch 1): the time of one decode step and the
# prefill time per prompt token (left), and the memory measured, by the formula and of the weights
# alone (right), against the width, log-log. The dashed line grows as dim^2 from the smallest
# width, as the layers' weights do; the vocabulary's embedding grows only as dim, so small
# models sit below it.
#
#   gnuplot -c figures/width_scaling.gp OUT_STEM WIDTH.tsv
#
# WIDTH.tsv  lab-export PROFILE.h5 configs (codelm-lab/profile/1) of a sweep over dim: one "pp"
#            and one "tg" row per width, ascending; columns kind, dim, prompt, n_params, ms_per_step,
#            median_ms, mem_measured_bytes, mem_formula_bytes, weight_bytes
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) {
    print "usage: gnuplot -c figures/width_scaling.gp OUT_STEM WIDTH.tsv"
    exit status 2
}
STEM = ARG1
WIDTH = ARG2
COLS = "kind dim prompt n_params ms_per_step median_ms mem_measured_bytes mem_formula_bytes weight_bytes"
err = out_error(STEM) . tsv_error(WIDTH, COLS)
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

MIB = 1048576.0
# no header: dim, ms per decode step (tg) or per prompt token (pp), MiB measured, by the formula,
# of the weights, parameters in millions
set table $TG
plot WIDTH using "dim":"ms_per_step":(column("mem_measured_bytes") / MIB):(column("mem_formula_bytes") / MIB) \
    :(column("weight_bytes") / MIB):(column("n_params") / 1e6) with table if (strcol("kind") eq "tg")
set table $PP
plot WIDTH using "dim":(column("median_ms") / column("prompt")) with table if (strcol("kind") eq "pp")
unset table
set datafile nocolumnheaders
stats $TG using 1:2 name "T" nooutput
stats $PP using 1 name "P" nooutput
if (T_records < 2 || P_records != T_records) {
    print sprintf("%s: expected one pp and one tg row for each of two widths or more, found %d tg and %d pp rows", \
                  WIDTH, T_records, P_records)
    exit status 1
}
stats $PP using 1:2 name "PT" nooutput
stats $TG using 3:5 name "MEM" nooutput
stats $TG using 4 name "MEMF" nooutput
# the dim^2 guides start at the smallest width's point
D0 = T_min_x
stats $TG every ::0::0 using (STEP0 = $2, W0 = $5) nooutput
TIME_LO = PT_min_y < T_min_y ? PT_min_y : T_min_y
TIME_HI = PT_max_y > T_max_y ? PT_max_y : T_max_y
MEM_LO = MEM_min_y < MEM_min_x ? MEM_min_y : MEM_min_x
MEM_HI = MEMF_max > MEM_max_x ? MEMF_max : MEM_max_x

set logscale xy
set xrange [D0 / 1.25 : T_max_x * 1.25]
set xtics nomirror
set xlabel "embedding dimension, parameters"
set xtics font ",7"
do for [fmt in "pdf png"] {
    eval terminal(fmt, 7.5, 3.9)
    set output part(STEM, fmt)
    set multiplot layout 1, 2 margins 0.12, 0.98, 0.8 / 3.9, 1 - 0.7 / 3.9 spacing 0.14, 0 \
        title "Width vs latency and memory (f32, batch 1, heads = dim/64)"
    set title "time (median of the trials)"
    set key top left Left reverse samplen 2 font ",8"
    set ylabel "ms"
    set yrange [TIME_LO / 2 : TIME_HI * 15]
    # the widths measured, with their parameter counts, are the x tics
    plot $TG using 1:2:xtic(sprintf("%d\n%.1fM", $1, $6)) with linespoints pt 7 ps 0.6 lw 1.5 lc rgb C_BASE title "decode step", \
         $PP using 1:2 with linespoints pt 5 ps 0.6 lw 1.5 lc rgb OI_ORANGE title "prefill, per token", \
         STEP0 * (x / D0) ** 2 with lines dt 2 lw 1 lc rgb "#606060" title "grows as dim^2"
    set title "memory"
    set ylabel "MiB"
    set yrange [MEM_LO / 2 : MEM_HI * 15]
    plot $TG using 1:3:xtic(sprintf("%d\n%.1fM", $1, $6)) with linespoints pt 7 ps 0.6 lw 1.5 lc rgb C_BASE title "measured", \
         $TG using 1:4 with linespoints pt 5 ps 0.6 lw 1.5 lc rgb OI_GREEN title "formula", \
         $TG using 1:5 with linespoints pt 9 ps 0.7 lw 1 dt 3 lc rgb OI_VERMILLION title "weights", \
         W0 * (x / D0) ** 2 with lines dt 2 lw 1 lc rgb "#606060" title "grows as dim^2"
    unset multiplot
    unset output
}
eval PUBLISH
