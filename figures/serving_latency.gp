# serving_latency: static vs continuous batching under load. A Poisson trace of requests runs
# through each scheduler with a contiguous and with a paged KV cache, at each arrival rate. Left
# and middle: time to first token and time per output token, p50 / p90 / p99 (vLLM's benchmark
# definitions), log scale; static batching in orange, continuous in purple, a paged cache hatched.
# Right: the share of the reserved KV memory that held no token, averaged over the engine's steps,
# beside what Kwon et al. (2023, PagedAttention) report: 60-80% of the KV memory wasted by
# contiguous per-request reservations in existing systems, under 4% with paging (vLLM).
#
#   gnuplot -c figures/serving_latency.gp OUT_STEM SERVE.tsv
#
# SERVE.tsv  lab-export SERVE.h5 runs (codelm-lab/serve/1): one row per (scheduler, kv_mode, rate),
#            schedulers static and continuous, kv_mode contiguous and paged, every pair at the
#            same rates; columns scheduler, kv_mode, rate, ttft_p50_s, ttft_p90_s, ttft_p99_s,
#            tpot_p50_s, tpot_p90_s, tpot_p99_s, kv_mean_waste
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) {
    print "usage: gnuplot -c figures/serving_latency.gp OUT_STEM SERVE.tsv"
    exit status 2
}
STEM = ARG1
SERVE = ARG2
COLS = "scheduler kv_mode rate ttft_p50_s ttft_p90_s ttft_p99_s tpot_p50_s tpot_p90_s tpot_p99_s kv_mean_waste"
err = out_error(STEM) . tsv_error(SERVE, COLS)
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

SCHEDULERS = "static continuous"
KVS = "contiguous paged"
PCTS = "50 90 99"
C_STATIC = OI_ORANGE
C_CONTINUOUS = OI_PURPLE
C_CONTIGUOUS = OI_BLUE
C_PAGED = OI_GREEN
# the rates, in the order they first appear
RATES = ""
stats SERVE using (RATES = strstrt(RATES, sprintf(" %g ", column("rate"))) ? RATES : RATES . sprintf(" %g ", column("rate")), 0) \
    nooutput
N_RATES = words(RATES)
# read every needed number into arrays indexed (scheduler, kv, rate, metric)
METRICS = "ttft_p50_s ttft_p90_s ttft_p99_s tpot_p50_s tpot_p90_s tpot_p99_s kv_mean_waste"
N_METRICS = words(METRICS)
array V[2 * 2 * N_RATES * N_METRICS]
idx(s, k, r, m) = 1 + (((s - 1) * 2 + (k - 1)) * N_RATES + (r - 1)) * N_METRICS + (m - 1)
do for [s = 1:2] {
    do for [k = 1:2] {
        do for [r = 1:N_RATES] {
            set table $ROW
            plot SERVE using "ttft_p50_s":"ttft_p90_s":"ttft_p99_s":"tpot_p50_s":"tpot_p90_s":"tpot_p99_s":"kv_mean_waste" \
                with table if (strcol("scheduler") eq word(SCHEDULERS, s) && strcol("kv_mode") eq word(KVS, k) \
                               && sprintf("%g", column("rate")) eq word(RATES, r))
            unset table
            set datafile nocolumnheaders
            stats $ROW using 1 name "ROW" nooutput
            if (ROW_records != 1) {
                print sprintf("%s: expected one run of scheduler %s, kv_mode %s at rate %s, found %d", \
                              SERVE, word(SCHEDULERS, s), word(KVS, k), word(RATES, r), ROW_records)
                exit status 1
            }
            do for [m = 1:N_METRICS] { stats $ROW using (V[idx(s, k, r, m)] = column(m)) nooutput }
            set datafile columnheaders
        }
    }
}
set datafile nocolumnheaders

# one datablock per metric family: a row per (rate, percentile), the four runs' values (ms)
do for [family = 1:2] {
    eval sprintf('set print $%s', family == 1 ? "TTFT" : "TPOT")
    do for [r = 1:N_RATES] {
        do for [p = 1:3] {
            m = (family - 1) * 3 + p
            print sprintf("p%s\t%g\t%g\t%g\t%g", word(PCTS, p), \
                          1000 * V[idx(1, 1, r, m)], 1000 * V[idx(1, 2, r, m)], 1000 * V[idx(2, 1, r, m)], 1000 * V[idx(2, 2, r, m)])
        }
    }
    unset print
}
# the KV waste: a row per (rate, scheduler), contiguous and paged in percent
set print $WASTE
do for [r = 1:N_RATES] {
    do for [s = 1:2] { print sprintf("%s\t%g\t%g", word("static cont.", s), 100 * V[idx(s, 1, r, 7)], 100 * V[idx(s, 2, r, 7)]) }
}
unset print
stats $TTFT using 2:3 name "A" nooutput
stats $TTFT using 4:5 name "B" nooutput
TTFT_LO = A_min_x < A_min_y ? A_min_x : A_min_y
TTFT_LO = B_min_x < TTFT_LO ? B_min_x : TTFT_LO
TTFT_LO = B_min_y < TTFT_LO ? B_min_y : TTFT_LO
TTFT_HI = A_max_x > A_max_y ? A_max_x : A_max_y
TTFT_HI = B_max_x > TTFT_HI ? B_max_x : TTFT_HI
TTFT_HI = B_max_y > TTFT_HI ? B_max_y : TTFT_HI
stats $TPOT using 2:3 name "A" nooutput
stats $TPOT using 4:5 name "B" nooutput
TPOT_LO = A_min_x < A_min_y ? A_min_x : A_min_y
TPOT_LO = B_min_x < TPOT_LO ? B_min_x : TPOT_LO
TPOT_LO = B_min_y < TPOT_LO ? B_min_y : TPOT_LO
TPOT_HI = A_max_x > A_max_y ? A_max_x : A_max_y
TPOT_HI = B_max_x > TPOT_HI ? B_max_x : TPOT_HI
TPOT_HI = B_max_y > TPOT_HI ? B_max_y : TPOT_HI

set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9
set grid noxtics ytics
set xtics font ",8"
# One group of clusters per rate (rows (r-1)*n .. r*n-1 of a datablock of n rows per rate), named
# under the axis. Latency: static and continuous in their colours, a paged cache hatched.
group(block, r, n, using_col, style) = sprintf('%s every ::%d::%d using %s %s', block, (r - 1) * n, r * n - 1, using_col, style)
latency_plot(block) = latency_groups(block, 1, "plot ")
latency_groups(block, r, cmd) = r > N_RATES ? cmd : latency_groups(block, r + 1, cmd . (r > 1 ? ", " : "") . \
    sprintf('newhistogram "\n%s req/s" font ",9", ', word(RATES, r)) . \
    group(block, r, 3, "2:xtic(1)", 'fs solid 1.0 border rgb "#303030" lc rgb C_STATIC ' . (r == 1 ? 'title "static, contiguous"' : 'notitle')) . ", " . \
    group(block, r, 3, "3", 'fs pattern 4 border rgb "#303030" lc rgb C_STATIC ' . (r == 1 ? 'title "static, paged"' : 'notitle')) . ", " . \
    group(block, r, 3, "4", 'fs solid 1.0 border rgb "#303030" lc rgb C_CONTINUOUS ' . (r == 1 ? 'title "continuous, contiguous"' : 'notitle')) . ", " . \
    group(block, r, 3, "5", 'fs pattern 4 border rgb "#303030" lc rgb C_CONTINUOUS ' . (r == 1 ? 'title "continuous, paged"' : 'notitle')))
waste_plot(r, cmd) = r > N_RATES ? cmd : waste_plot(r + 1, cmd . (r > 1 ? ", " : "") . \
    sprintf('newhistogram "\n%s req/s" font ",9", ', word(RATES, r)) . \
    group("$WASTE", r, 2, "2:xtic(1)", 'fs solid 1.0 border rgb "#303030" lc rgb C_CONTIGUOUS ' . (r == 1 ? 'title "contiguous (ours)"' : 'notitle')) . ", " . \
    group("$WASTE", r, 2, "3", 'fs solid 1.0 border rgb "#303030" lc rgb C_PAGED ' . (r == 1 ? 'title "paged (ours)"' : 'notitle')))
do for [fmt in "pdf png"] {
    eval terminal(fmt, 10.0, 5.1)
    set output part(STEM, fmt)
    set multiplot layout 1, 3 margins 0.08, 0.98, 1.75 / 5.1, 1 - 0.7 / 5.1 spacing 0.06, 0 \
        title "Serving under load: static vs continuous batching, contiguous vs paged KV cache"
    set key at screen 0.08, screen 0.95 / 5.1 left top Left reverse maxrows 2 samplen 1.5 font ",8"
    set title "time to first token (ms)"
    set logscale y
    set yrange [TTFT_LO / 2 : TTFT_HI * 4]
    eval latency_plot("$TTFT")
    unset key
    set title "time per output token (ms)"
    set yrange [TPOT_LO / 2 : TPOT_HI * 4]
    eval latency_plot("$TPOT")
    set title "unused KV memory (% of reserved)"
    unset logscale y
    set yrange [0 : 100]
    set key at screen 0.62, screen 0.95 / 5.1 left top Left reverse maxrows 2 samplen 1.5 font ",8"
    # PagedAttention's reported ranges, behind the bars, explained under the key
    set object 1 rect from graph 0, first 60 to graph 1, first 80 behind fc rgb C_CONTIGUOUS fs transparent solid 0.15 noborder
    set arrow 1 from graph 0, first 4 to graph 1, first 4 nohead dt 2 lw 1 lc rgb C_PAGED
    set label 1 "shaded: 60-80% wasted in existing systems,\ndashed: under 4% with paging (vLLM),\n" . \
        "as the PagedAttention paper reports;\ncont. = continuous batching" \
        at screen 0.62, screen 0.55 / 5.1 left font ",7"
    eval waste_plot(1, "plot ")
    unset label 1
    unset object 1
    unset arrow 1
    unset multiplot
    unset output
}
eval PUBLISH
