# pretrain_loss: pretraining loss against tokens seen: the training loss of every step (a line)
# and the validation loss where it was measured (points on a dashed line).
#
#   gnuplot -c figures/pretrain_loss.gp OUT_STEM PRETRAIN_LOG.tsv
#
# PRETRAIN_LOG.tsv  lab-export LOG.h5 train_log (codelm-lab/trainlog/1): columns tokens_seen,
#                   train_loss, val_loss (nats/token; "nan" on steps without validation)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 2) { print "usage: gnuplot -c figures/pretrain_loss.gp OUT_STEM PRETRAIN_LOG.tsv"; exit status 2 }
STEM = ARG1
LOG = ARG2
err = out_error(STEM) . tsv_error(LOG, "tokens_seen train_loss val_loss")
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

stats LOG using (column("tokens_seen") / 1e6) name "TOK" nooutput
set xrange [0:*]
set xtics nice_step(TOK_max)
set title "Pretraining loss"
set xlabel "tokens seen (millions)"
set ylabel "loss (nats/token)"
set key top right
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.5, 3.8)
    set output part(STEM, fmt)
    plot LOG using (column("tokens_seen") / 1e6):"train_loss" with lines lw 1 lc rgb C_TRAIN title "train", \
         LOG using (column("tokens_seen") / 1e6):"val_loss" with linespoints dt 2 pt 7 ps 0.9 lw 1.5 lc rgb C_VAL title "validation"
    unset output
}
eval PUBLISH
