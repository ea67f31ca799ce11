# corpus_filters: what each corpus filter removed, in files (left) and in MB of Python source
# (right), filters top to bottom in the order they run, with the kept files last for scale. Log
# scales: a filter may remove one file where the corpus keeps thousands; each bar carries its value.
#
#   gnuplot -c figures/corpus_filters.gp OUT_STEM CORPUS_FILTERS.tsv
#
# CORPUS_FILTERS.tsv  lab-export CORPUS.h5 filters (codelm-lab/corpus/1): columns filter,
#                     files_removed, bytes_removed (the "kept" row counts what was kept)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) { print "usage: gnuplot -c figures/corpus_filters.gp OUT_STEM CORPUS_FILTERS.tsv"; exit status 2 }
STEM = ARG1
FILTERS = ARG2
err = out_error(STEM) . tsv_error(FILTERS, "filter files_removed bytes_removed")
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

N = tsv_rows(FILTERS)
MB(col) = column(col) / 1e6
stats FILTERS using "files_removed" name "FILES" nooutput
stats FILTERS using (MB("bytes_removed") > 0 ? MB("bytes_removed") : NaN) name "MBPOS" nooutput
# bars start at the left edge of the axis, a power of ten below the smallest non-zero value (a
# filter that removed nothing has no bar, only its "0")
FILES_LO = 0.5
MB_LO = MBPOS_records > 0 ? 10 ** floor(log10(MBPOS_min) - 0.3) : 1e-3
MB_HI = MBPOS_records > 0 ? MBPOS_max : 1
bar_colour(name) = rgb(name eq "kept" ? C_TRAIN : C_REMOVED)
bar_lo(v, lo) = v > 0 ? lo : NaN

set logscale x
set yrange [N - 0.5 : -0.5]
set grid xtics noytics
set style fill solid 1.0 border rgb "#303030"
do for [fmt in "pdf png"] {
    eval terminal(fmt, 7.5, 4)
    set output part(STEM, fmt)
    set multiplot layout 1, 2 margins 0.23, 0.97, 0.2, 0.8 spacing 0.04 title "Corpus filters: what each removed, in the order applied"
    set title "files"
    set xlabel "files (log scale)"
    set xrange [FILES_LO : 10 * FILES_max]
    set xtics tick_factor(FILES_LO, 10 * FILES_max)
    # 1, 10, 100, 1k, 10k
    set format x "%.0s%c"
    set ytics scale 0
    plot FILTERS using (bar_lo(column("files_removed"), FILES_LO)):0:(FILES_LO):"files_removed":($0 - 0.35):($0 + 0.35):(bar_colour(strcol("filter"))):ytic(strcol("filter")) \
             with boxxyerror lc rgb variable, \
         FILTERS using (column("files_removed") > 0 ? column("files_removed") : FILES_LO):0:(sprintf(" %d", column("files_removed"))) \
             with labels left
    set title "source bytes"
    set xlabel "MB (10^6 bytes, log scale)"
    set xrange [MB_LO : 10 * MB_HI]
    set xtics tick_factor(MB_LO, 10 * MB_HI)
    set format x "%g"
    unset ytics
    plot FILTERS using (bar_lo(MB("bytes_removed"), MB_LO)):0:(MB_LO):(MB("bytes_removed")):($0 - 0.35):($0 + 0.35):(bar_colour(strcol("filter"))) \
             with boxxyerror lc rgb variable, \
         FILTERS using (MB("bytes_removed") > 0 ? MB("bytes_removed") : MB_LO):0:(sprintf(" %.3g", MB("bytes_removed"))) \
             with labels left
    unset multiplot
    unset output
}
eval PUBLISH
