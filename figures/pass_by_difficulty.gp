# pass_by_difficulty: the share of samples that pass, by the difficulty of the project's tasks
# (1 one-liner, 2 loop, 3 small data structure), for the base model (blue) and the base with its
# docstring -> body LoRA adapter (orange); the mean over tasks of c / n, with one standard error
# over tasks as the error bar.
#
#   gnuplot -c figures/pass_by_difficulty.gp OUT_STEM BASE_LAB.tsv PAIRS_LAB.tsv
#
# *.tsv  lab-export FUNC.h5 tasks (codelm-lab/func/1) of data/tasks/lab_tasks.jsonl: columns
#        difficulty, n (samples), c (samples passed)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 3) { print "usage: gnuplot -c figures/pass_by_difficulty.gp OUT_STEM BASE_LAB.tsv PAIRS_LAB.tsv"; exit status 2 }
STEM = ARG1
COLS = "difficulty n c"
err = out_error(STEM) . tsv_error(ARG2, COLS) . tsv_error(ARG3, COLS)
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

NAMES = "one-liner loop data-structure"
set print $BARS
TOP = 0
do for [d = 1:3] {
    stats ARG2 using (column("difficulty") == d ? 100.0 * column("c") / column("n") : NaN) name "B" nooutput
    stats ARG3 using (column("difficulty") == d ? 100.0 * column("c") / column("n") : NaN) name "P" nooutput
    se_b = B_records > 1 ? B_ssd / sqrt(B_records) : 0
    se_p = P_records > 1 ? P_ssd / sqrt(P_records) : 0
    print sprintf("\"%d: %s\\n(%d tasks)\"\t%.4f\t%.4f\t%.4f\t%.4f", d, word(NAMES, d), B_records, B_mean, se_b, P_mean, se_p)
    TOP = B_mean + se_b > TOP ? B_mean + se_b : TOP
    TOP = P_mean + se_p > TOP ? P_mean + se_p : TOP
}
unset print
TOP = TOP > 1 ? TOP : 1

# the datablock has no header line (the TSVs above do)
set datafile nocolumnheaders
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 1.0 border rgb "#303030"
set boxwidth 0.9
set grid noxtics ytics
set yrange [0 : 1.3 * TOP]
set xlabel "task difficulty"
set ylabel "samples passing (%, mean over tasks)"
set title "Pass rate by difficulty (project task set), +/- one standard error"
set key top right samplen 2
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.0, 3.8)
    set bmargin 4.5
    set output part(STEM, fmt)
    plot $BARS using 2:3:xtic(1) lc rgb C_BASE title "base", \
         '' using 4:5 lc rgb C_LORA title "base + LoRA (pairs)"
    unset output
}
eval PUBLISH
