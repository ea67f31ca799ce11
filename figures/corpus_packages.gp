# corpus_packages: the Python source each package contributes to the corpus after filtering and
# de-duplication (MB kept, log scale, value at the end of each bar), coloured by split; packages
# grouped by split (train, val, test, heldout), in corpus order within a split.
#
#   gnuplot -c figures/corpus_packages.gp OUT_STEM CORPUS_PACKAGES.tsv
#
# CORPUS_PACKAGES.tsv  lab-export CORPUS.h5 packages (codelm-lab/corpus/1): columns name, split
#                      (0 train, 1 val, 2 test, 3 heldout), bytes_kept
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) { print "usage: gnuplot -c figures/corpus_packages.gp OUT_STEM CORPUS_PACKAGES.tsv"; exit status 2 }
STEM = ARG1
PACKAGES = ARG2
err = out_error(STEM) . tsv_error(PACKAGES, "name split bytes_kept")
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

N = tsv_rows(PACKAGES)
# the rows grouped by split with a stable sort on that column (its number read from the header)
column_number(header, name, i) = i > words(header) ? 0 : word(header, i) eq name ? i : column_number(header, name, i + 1)
SPLIT_COL = column_number(tsv_header(PACKAGES), "split", 1)
SORTED = sprintf("< (head -n 1 -- '%s'; tail -n +2 -- '%s' | LC_ALL=C sort -s -t '\t' -k %d,%dn)", \
                 PACKAGES, PACKAGES, SPLIT_COL, SPLIT_COL)
MB(col) = column(col) / 1e6
stats PACKAGES using (MB("bytes_kept") > 0 ? MB("bytes_kept") : NaN) name "MBPOS" nooutput
MB_LO = MBPOS_records > 0 ? 10 ** floor(log10(MBPOS_min) - 0.3) : 1e-3
MB_HI = MBPOS_records > 0 ? MBPOS_max : 1

set logscale x
set format x "%g"
set xrange [MB_LO : 10 * MB_HI]
set xtics tick_factor(MB_LO, 10 * MB_HI)
set yrange [N - 0.5 : -0.5]
set ytics scale 0
set grid xtics noytics
set style fill solid 1.0 border rgb "#303030"
set title "Corpus: Python source kept per package, by split\n(Debian packages without their python3- prefix)"
set xlabel "MB kept (10^6 bytes, log scale)"
set key outside right top vertical samplen 1.5 title "split"
HEIGHT_IN = N < 8 ? 3 : 1.4 + 0.2 * N
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.5, HEIGHT_IN)
    set output part(STEM, fmt)
    plot SORTED using (MB("bytes_kept") > 0 ? MB_LO : NaN):0:(MB_LO):(MB("bytes_kept")):($0 - 0.35):($0 + 0.35):(split_rgb(column("split"))):ytic(short_name(strcol("name"))) \
             with boxxyerror lc rgb variable notitle, \
         SORTED using (MB("bytes_kept") > 0 ? MB("bytes_kept") : MB_LO):0:(sprintf(" %.3g", MB("bytes_kept"))) with labels left notitle, \
         for [s = 0:3] NaN with boxes lc rgb split_colour(s) title word(SPLIT_NAMES, s + 1)
    unset output
}
eval PUBLISH
