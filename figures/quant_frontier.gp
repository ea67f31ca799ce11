# quant_frontier: the speed/quality frontier of the weight formats. Left: batch-1 decode speed
# against the test perplexity's increase over f32 (log scale: the formats differ by orders of
# magnitude), beside the published increases for the same formats: llama.cpp on LLaMA-7B (Q8_0
# +0.01%, Q4_0 +4.2%) and the GPTQ paper's 4-bit round-to-nearest on OPT-125M (+35%). Right: the
# physical-limits benchmark: each format's decode speed as a fraction of its bandwidth bound and
# its prefill speed as a fraction of the sgemm bound, beside the targets (decode >= 70% for 16-
# and 32-bit weights, >= 50% for 8- and 4-bit; prefill >= 50%).
#
#   gnuplot -c figures/quant_frontier.gp OUT_STEM FORMATS.tsv F32.tsv BF16.tsv F16.tsv Q8_0.tsv Q4_0.tsv
#
# FORMATS.tsv  lab-export PROFILE.h5 configs (codelm-lab/profile/1) of a sweep over the five
#              formats: one "pp" and one "tg" row each; columns kind, format,
#              median_tokens_per_s, min_tokens_per_s, max_tokens_per_s, fraction_of_bound
# F32.tsv ...  lab-export PPL.h5 by_package (codelm-lab/ppl/1) of the model with its weights in
#              f32, bf16, f16, q8_0, q4_0 (lab-eval ppl --format), on one split: columns
#              tokens_scored, nll_nats (the perplexity of the split is exp(sum nll / sum tokens))
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 7) {
    print "usage: gnuplot -c figures/quant_frontier.gp OUT_STEM FORMATS.tsv F32.tsv BF16.tsv F16.tsv Q8_0.tsv Q4_0.tsv"
    exit status 2
}
STEM = ARG1
FORMATS = ARG2
COLS = "kind format median_tokens_per_s min_tokens_per_s max_tokens_per_s fraction_of_bound"
PPL_COLS = "tokens_scored nll_nats"
err = out_error(STEM) . tsv_error(FORMATS, COLS)
do for [i = 3:7] { err = err . tsv_error(ARGV[i], PPL_COLS) }
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

FMTS = "f32 bf16 f16 q8_0 q4_0"
format_colour(i) = i == 1 ? OI_BLUE : i == 2 ? OI_ORANGE : i == 3 ? OI_GREEN : i == 4 ? OI_VERMILLION : OI_PURPLE
# decode (tg) and prefill (pp) of each format: median, min, max tokens/s and fraction of the bound
array TPS[5]
array TPS_MIN[5]
array TPS_MAX[5]
array FRAC_TG[5]
array FRAC_PP[5]
array PPL[5]
do for [i = 1:5] {
    f = word(FMTS, i)
    do for [kind in "tg pp"] {
        set table $ROW
        plot FORMATS using "median_tokens_per_s":"min_tokens_per_s":"max_tokens_per_s":"fraction_of_bound" \
            with table if (strcol("kind") eq kind && strcol("format") eq f)
        unset table
        set datafile nocolumnheaders
        stats $ROW using 1 name "ROW" nooutput
        if (ROW_records != 1) {
            print sprintf("%s: expected one %s row of format %s, found %d", FORMATS, kind, f, ROW_records)
            exit status 1
        }
        if (kind eq "tg") {
            stats $ROW using (TPS[i] = $1, TPS_MIN[i] = $2, TPS_MAX[i] = $3, FRAC_TG[i] = $4) nooutput
        } else {
            stats $ROW using (FRAC_PP[i] = $4) nooutput
        }
        set datafile columnheaders
    }
    stats ARGV[2 + i] using "nll_nats" name "NLL" nooutput
    stats ARGV[2 + i] using "tokens_scored" name "TOK" nooutput
    PPL[i] = exp(NLL_sum / TOK_sum)
}
# the increase over f32 in percent; on the log axis, anything at or below FLOOR (f32 itself, and
# a format that happens to score better than f32) sits on the floor, its exact value in its label
FLOOR = 1e-4
array LABEL[5]
set print $POINTS
do for [i = 1:5] {
    delta = 100 * (PPL[i] / PPL[1] - 1)
    print sprintf("%g\t%g\t%g\t%g", TPS[i], TPS_MIN[i], TPS_MAX[i], delta > FLOOR ? delta : FLOOR)
    LABEL[i] = i == 1 ? sprintf("f32: ppl %.4g (reference)", PPL[1]) : sprintf("%s: %+.2g%%", word(FMTS, i), delta)
}
unset print
set print $FRACTIONS
do for [i = 1:5] { print sprintf("%s\t%g\t%g", word(FMTS, i), 100 * FRAC_TG[i], 100 * FRAC_PP[i]) }
unset print
set datafile nocolumnheaders
stats $POINTS using 3 name "X" nooutput
stats $FRACTIONS using 2:3 name "F" nooutput
FRAC_TOP = F_max_x > F_max_y ? F_max_x : F_max_y
FRAC_TOP = FRAC_TOP > 70 ? FRAC_TOP : 70

# the published increases (%), and which of our formats each matches in colour
array REF_Y[3] = [0.01, 4.2, 35]
array REF_TEXT[3] = ["llama.cpp LLaMA-7B Q8_0 +0.01%", "llama.cpp LLaMA-7B Q4_0 +4.2%", "GPTQ OPT-125M 4-bit RTN +35%"]
array REF_FMT[3] = [4, 5, 5]

do for [fmt in "pdf png"] {
    eval terminal(fmt, 8.0, 5.2)
    set output part(STEM, fmt)
    # the keys sit under the panels, in the bottom 0.95 in
    set multiplot layout 1, 2 margins 0.12, 0.98, 1.6 / 5.2, 1 - 0.7 / 5.2 spacing 0.13, 0 \
        title "Weight formats: speed, quality and the physical limits (batch 1)"
    set title "decode speed vs perplexity increase over f32"
    set logscale y
    set xrange [0 : X_max * 1.25]
    set yrange [FLOOR / 3 : 300]
    set format y "%g%%"
    set xlabel "decode tokens/s (median; bars: min-max)"
    set format x "%.0s%c"
    set xtics 0, nice_step(X_max * 1.25)
    set ylabel "test perplexity increase over f32"
    do for [r = 1:3] {
        set arrow r from graph 0, first REF_Y[r] to graph 1, first REF_Y[r] nohead dt 2 lw 0.8 lc rgb format_colour(REF_FMT[r])
        set label r REF_TEXT[r] at graph 0.02, first REF_Y[r] left offset 0, 0.5 font ",7" tc rgb format_colour(REF_FMT[r])
    }
    set label 4 sprintf("floor: %g%% or less (f32 itself, or below it)", FLOOR) at graph 0.02, first FLOOR left offset 0, 0.7 \
        font ",7" tc rgb "#606060"
    set key at screen 0.12, screen 0.93 / 5.2 left top Left reverse maxrows 5 samplen 1 font ",8"
    plot for [i = 1:5] $POINTS every ::i - 1::i - 1 using 1:4:2:3 with xerrorbars pt 7 ps 0.8 lc rgb format_colour(i) \
        title LABEL[i]
    unset key
    do for [r = 1:4] {
        unset arrow r
        unset label r
    }
    unset logscale y
    set format x "% h"
    set xtics autofreq
    set title "fraction of the physical bound"
    unset xlabel
    set ylabel "% of the bound (median)"
    set xrange [-0.6 : 4.6]
    set yrange [0 : 1.2 * FRAC_TOP]
    set style fill solid 1.0 border rgb "#303030"
    set boxwidth 0.35
    set key at screen 0.6, screen 0.93 / 5.2 left top Left reverse maxrows 4 samplen 2 font ",8"
    set grid noxtics ytics
    # the targets: decode >= 70% for the 16- and 32-bit formats (the first three), >= 50% for the
    # others; prefill >= 50% for all
    set arrow 1 from -0.5, 70 to 2.5, 70 nohead dt 2 lw 1 lc rgb C_BASE front
    set arrow 2 from -0.5, 50 to 4.5, 50 nohead dt 2 lw 1 lc rgb "#303030" front
    plot $FRACTIONS using ($0 - 0.18):2:xtic(1) with boxes lc rgb C_BASE title "decode / bandwidth bound", \
         '' using ($0 + 0.18):3 with boxes lc rgb OI_ORANGE title "prefill / sgemm bound", \
         '' using ($0 - 0.18):2:(sprintf("%.0f", $2)) with labels offset 0, 0.6 font ",7" notitle, \
         '' using ($0 + 0.18):3:(sprintf("%.0f", $3)) with labels offset 0, 0.6 font ",7" notitle, \
         NaN with lines dt 2 lw 1 lc rgb C_BASE title "decode target (16/32-bit)", \
         NaN with lines dt 2 lw 1 lc rgb "#303030" title "target (8/4-bit decode, prefill)"
    unset arrow 1
    unset arrow 2
    set grid xtics ytics
    unset key
    unset multiplot
    unset output
}
eval PUBLISH
