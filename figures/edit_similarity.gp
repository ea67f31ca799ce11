# edit_similarity: how close greedy completions of held-out functions come to the code a person
# wrote, as the distribution (empirical CDF) of edit similarity 1 - lev / max(len) over characters,
# for whole-body completion (left: prompt = signature + docstring) and next-line completion (right:
# prompt = the function up to a line), base model (blue) vs base + docstring -> body LoRA (orange).
# A curve further right is better; the key gives each mean.
#
#   gnuplot -c figures/edit_similarity.gp OUT_STEM BASE_BODY.tsv PAIRS_BODY.tsv BASE_LINE.tsv PAIRS_LINE.tsv
#
# *.tsv  lab-export EDIT.h5 samples (codelm-lab/edit/1): one row per completion, column es_chars
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 5) {
    print "usage: gnuplot -c figures/edit_similarity.gp OUT_STEM BASE_BODY.tsv PAIRS_BODY.tsv BASE_LINE.tsv PAIRS_LINE.tsv"
    exit status 2
}
STEM = ARG1
err = out_error(STEM)
do for [i = 2:5] { err = err . tsv_error(ARGV[i], "es_chars") }
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

array MEAN[5]
array ROWS[5]
do for [i = 2:5] {
    stats ARGV[i] using "es_chars" name "S" nooutput
    MEAN[i] = S_mean
    ROWS[i] = S_records
}
set xrange [0:1]
set yrange [0:1]
set xtics 0.2
set ytics 0.2
set xlabel "edit similarity (characters)"
set key below horizontal samplen 2
# panel(base index, title)
cdf(i, colour, name) = sprintf('ARGV[%d] using "es_chars":(1.0 / ROWS[%d]) smooth cumulative lw 1.5 lc rgb "%s" title sprintf("%s, mean %%.3f", MEAN[%d])', \
                               i, i, colour, name, i)
do for [fmt in "pdf png"] {
    eval terminal(fmt, 7.0, 3.8)
    set output part(STEM, fmt)
    set multiplot layout 1, 2 title "Edit similarity of greedy completions to the held-out code (empirical CDF)"
    set title sprintf("whole body (%d functions)", ROWS[2])
    set ylabel "fraction of completions <= x"
    eval "plot " . cdf(2, C_BASE, "base") . ", " . cdf(3, C_LORA, "LoRA")
    set title sprintf("next line (%d lines)", ROWS[4])
    unset ylabel
    eval "plot " . cdf(4, C_BASE, "base") . ", " . cdf(5, C_LORA, "LoRA")
    unset multiplot
    unset output
}
eval PUBLISH
