# pass_at_k: functional correctness of the base model (blue) and of the base with its
# docstring -> body LoRA adapter (orange), as pass@k in percent, on the project's task set and on
# the tasks mined from the held-out packages' doctests. pass@k is the unbiased estimator averaged
# over tasks (Chen et al. 2021); a k larger than the samples per task is not drawn.
#
#   gnuplot -c figures/pass_at_k.gp OUT_STEM BASE_LAB.tsv PAIRS_LAB.tsv BASE_MINED.tsv PAIRS_MINED.tsv
#
# *.tsv  lab-export FUNC.h5 tasks (codelm-lab/func/1): one row per task, columns n, c, pass_at_1,
#        pass_at_10, pass_at_100 ("nan" where n < k)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 5) {
    print "usage: gnuplot -c figures/pass_at_k.gp OUT_STEM BASE_LAB.tsv PAIRS_LAB.tsv BASE_MINED.tsv PAIRS_MINED.tsv"
    exit status 2
}
STEM = ARG1
COLS = "n c pass_at_1 pass_at_10 pass_at_100"
err = out_error(STEM)
do for [i = 2:5] { err = err . tsv_error(ARGV[i], COLS) }
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

# the smallest samples-per-task of a file decides which k it reports (as lab-eval func does)
stats ARGV[2] using "n" name "N_LAB" nooutput
stats ARGV[4] using "n" name "N_MINED" nooutput
KS = "1 10 100"
# one cluster per (task set, reported k): its label, then the two means in percent
set print $BARS
do for [s = 0:1] {
    base = ARGV[2 + 2 * s]
    pairs = ARGV[3 + 2 * s]
    n_min = s == 0 ? N_LAB_min : N_MINED_min
    stats base using "n" name "T" nooutput
    do for [k in KS] {
        if (int(k) <= n_min) {
            col = "pass_at_" . k
            stats base using col name "B" nooutput
            stats pairs using col name "P" nooutput
            print sprintf("\"%s\\npass@%s\"\t%.4f\t%.4f", (s == 0 ? "lab tasks" : "mined tasks") . sprintf(" (%d)", T_records), k, \
                          100 * B_mean, 100 * P_mean)
        }
    }
}
unset print
stats $BARS using 2:3 name "V" nooutput
TOP = V_max_x > V_max_y ? V_max_x : V_max_y
TOP = TOP > 1 ? TOP : 1

# the datablock has no header line (the TSVs above do)
set datafile nocolumnheaders
set style data histograms
set style histogram clustered gap 1
set style fill solid 1.0 border rgb "#303030"
set boxwidth 0.9
set grid noxtics ytics
set yrange [0 : 1.3 * TOP]
set ylabel "pass@k (% of tasks, unbiased estimate)"
set title "Functional correctness: base vs docstring -> body LoRA"
set key top left samplen 2
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.0, 3.8)
    set bmargin 4.5
    set output part(STEM, fmt)
    plot $BARS using 2:xtic(1) lc rgb C_BASE title "base", \
         '' using 3 lc rgb C_LORA title "base + LoRA (pairs)", \
         '' using ($0 - 0.17):2:(sprintf("%.1f", $2)) with labels offset 0, 0.6 notitle, \
         '' using ($0 + 0.17):3:(sprintf("%.1f", $3)) with labels offset 0, 0.6 notitle
    unset output
}
eval PUBLISH
