# memory_formula: does the memory formula predict what the engine takes? One point per
# configuration of the four benchmark sweeps: the peak resident memory measured (peak RSS minus
# the RSS before the weights were built) against the formula (weights at their format + KV cache,
# 2 * layers * kv_heads * head_dim * (prompt + gen) * batch * bytes), log-log, with y = x.
# Activations, logits, allocator slack and a contiguous cache reserved for the whole context are
# what the formula leaves out; each sweep's median ratio is in the key.
#
#   gnuplot -c figures/memory_formula.gp OUT_STEM BATCH.tsv KV.tsv FORMATS.tsv WIDTH.tsv
#
# *.tsv  lab-export PROFILE.h5 configs (codelm-lab/profile/1) of the batch, KV-cache, format and
#        width sweeps: columns kind, mem_measured_bytes, mem_formula_bytes (the "tg" rows are
#        drawn: one per configuration)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 5) {
    print "usage: gnuplot -c figures/memory_formula.gp OUT_STEM BATCH.tsv KV.tsv FORMATS.tsv WIDTH.tsv"
    exit status 2
}
STEM = ARG1
COLS = "kind mem_measured_bytes mem_formula_bytes"
err = out_error(STEM)
do for [i = 2:5] { err = err . tsv_error(ARGV[i], COLS) }
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

SWEEPS = "batch kv formats width"
NAMES = "'batch size' 'KV cache' 'weight format' 'model width'"
sweep_colour(i) = i == 1 ? OI_BLUE : i == 2 ? OI_ORANGE : i == 3 ? OI_GREEN : OI_VERMILLION
MIB = 1048576.0
# one datablock per sweep, no header: formula MiB, measured MiB
do for [i = 1:4] {
    eval sprintf('set table $%s', word(SWEEPS, i))
    plot ARGV[i + 1] using (column("mem_formula_bytes") / MIB):(column("mem_measured_bytes") / MIB) \
        with table if (strcol("kind") eq "tg")
    unset table
}
set datafile nocolumnheaders
array TITLE[4]
LO = 1e30
HI = 0
do for [i = 1:4] {
    eval sprintf('stats $%s using 1:2 name "M" nooutput', word(SWEEPS, i))
    if (M_records < 1) {
        print sprintf("%s: expected tg rows with the memory columns, found none", ARGV[i + 1])
        exit status 1
    }
    if (M_min_x <= 0 || M_min_y <= 0) {
        print sprintf("%s: expected positive memory in every tg row (a log axis), found %g MiB measured, %g MiB by the formula", \
                      ARGV[i + 1], M_min_y, M_min_x)
        exit status 1
    }
    LO = M_min_x < LO ? M_min_x : LO
    LO = M_min_y < LO ? M_min_y : LO
    HI = M_max_x > HI ? M_max_x : HI
    HI = M_max_y > HI ? M_max_y : HI
    eval sprintf('stats $%s using ($2 / $1) name "R" nooutput', word(SWEEPS, i))
    TITLE[i] = sprintf("%s sweep (%d): %.2fx", word(NAMES, i), M_records, R_median)
}

set logscale xy
set xrange [LO / 1.5 : HI * 1.5]
set yrange [LO / 1.5 : HI * 1.5]
set size ratio -1
set xlabel "formula: weights + KV cache (MiB)"
set ylabel "measured: peak RSS growth (MiB)"
set title "Memory: measured vs formula, one point per configuration"
set key below Left reverse maxrows 5 samplen 1.5 font ",8" \
    title "sweep (configurations): median of measured / formula"
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.2, 6.4)
    set output part(STEM, fmt)
    plot x with lines dt 2 lw 1 lc rgb "#606060" title "measured = formula", \
         for [i = 1:4] "$" . word(SWEEPS, i) using 1:2 with points pt int(word("7 5 9 13", i)) ps 1.4 \
             lc rgb sweep_colour(i) title TITLE[i]
    unset output
}
eval PUBLISH
