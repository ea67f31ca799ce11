# ppl_by_package: base vs LoRA vs full fine-tuning, package by package, in two panels:
# perplexity (top) and bits per byte (bottom); the test packages (held out from all training) on
# the left, the val packages (the fine-tuning domain) on the right.
#
#   gnuplot -c figures/ppl_by_package.gp OUT_STEM BASE_TEST.tsv LORA_TEST.tsv FULL_TEST.tsv \
#                                                 BASE_VAL.tsv LORA_VAL.tsv FULL_VAL.tsv
#
# *_TEST.tsv, *_VAL.tsv  lab-export PPL.h5 by_package (codelm-lab/ppl/1) of the base model, base +
#                        LoRA adapter and the fully fine-tuned model on the test and the val split:
#                        columns package, perplexity, bits_per_byte; the three files of one split
#                        list the same packages in the same order (checked)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 7) {
    print "usage: gnuplot -c figures/ppl_by_package.gp OUT_STEM BASE_TEST.tsv LORA_TEST.tsv FULL_TEST.tsv BASE_VAL.tsv LORA_VAL.tsv FULL_VAL.tsv"
    exit status 2
}
STEM = ARG1
BASE_TEST = ARG2
LORA_TEST = ARG3
FULL_TEST = ARG4
BASE_VAL = ARG5
LORA_VAL = ARG6
FULL_VAL = ARG7
COLS = "package perplexity bits_per_byte"
err = out_error(STEM)
do for [i = 2:7] { err = err . tsv_error(ARGV[i], COLS) }
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC
# the bars of one cluster must be one package's
do for [i = 3:7] {
    ref = i < 5 ? ARGV[2] : ARGV[5]
    if (i != 5 && first_column(ARGV[i]) ne first_column(ref)) {
        print sprintf("%s: expected the packages of %s in the same order, found %s", ARGV[i], ref, \
                      system("tail -n +2 -- '" . ARGV[i] . "' | cut -f 1 | paste -s -d ' '"))
        exit status 1
    }
}

# the tallest bar of each panel, to leave room above it for the split names
TOP_PPL = 0
TOP_BPB = 0
do for [i = 2:7] {
    stats ARGV[i] using "perplexity" name "S" nooutput
    TOP_PPL = S_max > TOP_PPL ? S_max : TOP_PPL
    stats ARGV[i] using "bits_per_byte" name "S" nooutput
    TOP_BPB = S_max > TOP_BPB ? S_max : TOP_BPB
}
N_TEST = tsv_rows(BASE_TEST)
N_VAL = tsv_rows(BASE_VAL)
# the test clusters sit at x = 0 .. N_TEST-1, an empty slot, then the val clusters; each split is
# named at the top of its part of the plot, with a dashed line between the two
VAL_AT = N_TEST + 1
set xrange [-0.6 : VAL_AT + N_VAL - 0.4]
set arrow 1 from first N_TEST, graph 0 to first N_TEST, graph 1 nohead dt 2 lw 0.8 lc rgb "#606060"
set label 1 "test packages\n(held out)" at first (N_TEST - 1) / 2.0, graph 0.95 center front
set label 2 "val packages\n(fine-tuned on)" at first VAL_AT + (N_VAL - 1) / 2.0, graph 0.95 center front
# The package names are drawn at 30 degrees under each panel, without the "python3-" that almost
# every Debian Python package carries; the figure grows with the longest name.
LONGEST = int(system("tail -q -n +2 -- '" . BASE_TEST . "' '" . BASE_VAL . "' | cut -f 1 | sed 's/^python3-//' | wc -L"))
NAMES_IN = 0.04 * LONGEST + 0.3
HEIGHT_IN = 5.9 + 2 * NAMES_IN
set style data histograms
set style histogram clustered gap 1
set style fill solid 1.0 border rgb "#303030"
set boxwidth 0.9
set xtics rotate by 30 right nomirror
set grid noxtics ytics
# one panel: COL of the six files, the test packages' clusters, then the val packages'
panel(col) = sprintf(\
    'plot newhistogram at 0, ' . \
    'BASE_TEST using "%s":xtic(short_name(strcol(1))) lc rgb C_BASE title "base", LORA_TEST using "%s" lc rgb C_LORA title "LoRA", ' . \
    'FULL_TEST using "%s" lc rgb C_FULL title "full", ' . \
    'newhistogram at VAL_AT, ' . \
    'BASE_VAL using "%s":xtic(short_name(strcol(1))) lc rgb C_BASE notitle, LORA_VAL using "%s" lc rgb C_LORA notitle, ' . \
    'FULL_VAL using "%s" lc rgb C_FULL notitle', col, col, col, col, col, col)
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.5, HEIGHT_IN)
    set output part(STEM, fmt)
    unset label 3
    set multiplot layout 2, 1 margins 0.14, 0.96, (NAMES_IN + 0.35) / HEIGHT_IN, 1 - 0.95 / HEIGHT_IN \
        spacing (NAMES_IN + 0.45) / HEIGHT_IN title "Perplexity per package: base vs LoRA vs full fine-tuning"
    set title "perplexity (exp of nats/token; lower is better)"
    set ylabel "perplexity"
    set key at screen 0.5, screen 1 - 0.45 / HEIGHT_IN center horizontal samplen 2
    set yrange [0 : 1.35 * TOP_PPL]
    eval panel("perplexity")
    unset key
    set title "bits per byte of source (lower is better)"
    set ylabel "bits/byte"
    set label 3 "Debian package (python3- prefix dropped)" at screen 0.55, screen 0.15 / HEIGHT_IN center
    set yrange [0 : 1.35 * TOP_BPB]
    eval panel("bits_per_byte")
    unset multiplot
    unset output
}
eval PUBLISH
