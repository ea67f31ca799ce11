# kv_cache: what the KV cache buys. Left: the time of one decode step against the context it
# attends to, with no cache (every step recomputes keys and values of the whole context, so the
# step grows with it: the fitted cost per context token is printed) and with a contiguous and a
# paged cache. Right: the KV memory each cache reserved, beside the formula's bytes.
#
#   gnuplot -c figures/kv_cache.gp OUT_STEM KV.tsv
#
# KV.tsv  lab-export PROFILE.h5 configs (codelm-lab/profile/1) of a sweep over kv_mode (none,
#         contiguous, paged) and prompt length: columns kind, kv_mode, batch, prompt, gen,
#         median_tokens_per_s, min_tokens_per_s, max_tokens_per_s, ms_per_step,
#         kv_allocated_bytes, kv_bytes_formula; the "tg" rows are drawn, at the mean context of
#         the decode steps, prompt + gen / 2
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) {
    print "usage: gnuplot -c figures/kv_cache.gp OUT_STEM KV.tsv"
    exit status 2
}
STEM = ARG1
KV = ARG2
COLS = "kind kv_mode batch prompt gen median_tokens_per_s min_tokens_per_s max_tokens_per_s ms_per_step kv_allocated_bytes kv_bytes_formula"
err = out_error(STEM) . tsv_error(KV, COLS)
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

MODES = "none contiguous paged"
mode_colour(m) = m eq "none" ? OI_VERMILLION : m eq "contiguous" ? OI_BLUE : OI_GREEN
MIB = 1048576.0
# one datablock per mode, no header: context, ms per step, its low and high end (from the max and
# min tokens/s of the trials), KV MiB allocated, KV MiB by the formula
do for [m in MODES] {
    eval sprintf('set table $%s', m)
    plot KV using (column("prompt") + column("gen") / 2.0):"ms_per_step" \
        :(1000 * column("batch") / column("max_tokens_per_s")):(1000 * column("batch") / column("min_tokens_per_s")) \
        :(column("kv_allocated_bytes") / MIB):(column("kv_bytes_formula") / MIB) \
        with table if (strcol("kind") eq "tg" && strcol("kv_mode") eq m)
    unset table
}
set datafile nocolumnheaders
do for [m in MODES] {
    eval sprintf('stats $%s using 1 name "ROWS" nooutput', m)
    if (ROWS_records < 2) {
        print sprintf("%s: expected tg rows of kv_mode %s at two prompt lengths or more, found %d", KV, m, ROWS_records)
        exit status 1
    }
}
# the recompute cost: a straight line through the no-cache steps, ms = a + b * context
set fit quiet nolog
fit_a = 1
fit_b = 0.01
fit fit_a + fit_b * x $none using 1:2 via fit_a, fit_b
RECOMPUTE = sprintf("fit: +%.3g µs per context token", 1000 * fit_b)
stats $none using 2 name "STEP" nooutput
stats $contiguous using 5 name "MEMC" nooutput
stats $paged using 5 name "MEMP" nooutput
stats $contiguous using 6 name "MEMF" nooutput
MEM_TOP = MEMC_max > MEMP_max ? MEMC_max : MEMP_max
MEM_TOP = MEM_TOP > MEMF_max ? MEM_TOP : MEMF_max

set xlabel "context (prompt + gen/2, tokens)"
stats $none using 1 name "CTX" nooutput
set xrange [0 : 1.08 * CTX_max]
set key top left Left reverse samplen 2 font ",8"
do for [fmt in "pdf png"] {
    eval terminal(fmt, 7.5, 3.8)
    set output part(STEM, fmt)
    set multiplot layout 1, 2 margins 0.14, 0.98, 0.65 / 3.8, 1 - 0.7 / 3.8 spacing 0.15, 0 \
        title "Decode with and without a KV cache (f32, batch 1)"
    set title "time of one decode step (median; bars: min-max)"
    set ylabel "ms per decode step"
    set yrange [0 : 1.5 * STEP_max]
    plot $none using 1:2:3:4 with yerrorbars pt 7 ps 0.5 lc rgb mode_colour("none") title "no cache (recompute)", \
         fit_a + fit_b * x with lines dt 2 lw 1 lc rgb mode_colour("none") title RECOMPUTE, \
         $contiguous using 1:2:3:4 with yerrorlines pt 5 ps 0.5 lw 1.5 lc rgb mode_colour("contiguous") title "contiguous cache", \
         $paged using 1:2:3:4 with yerrorlines pt 9 ps 0.6 lw 1.5 lc rgb mode_colour("paged") title "paged cache"
    set title "KV cache memory reserved"
    set ylabel "MiB"
    set yrange [0 : 1.4 * MEM_TOP]
    plot $contiguous using 1:5 with linespoints pt 5 ps 0.5 lw 1.5 lc rgb mode_colour("contiguous") title "contiguous", \
         $paged using 1:5 with linespoints pt 9 ps 0.6 lw 1.5 lc rgb mode_colour("paged") title "paged", \
         $contiguous using 1:6 with lines dt 2 lw 1 lc rgb "#606060" title "formula"
    unset multiplot
    unset output
}
eval PUBLISH
