# finetune_loss: the two fine-tunings of the base model on the val packages, against tokens seen:
# LoRA (orange) and full fine-tuning (green); training loss of every step as a solid line,
# validation loss where it was measured as points on a dashed line.
#
#   gnuplot -c figures/finetune_loss.gp OUT_STEM LORA_LOG.tsv FULL_LOG.tsv
#
# LORA_LOG.tsv, FULL_LOG.tsv  lab-export LOG.h5 train_log (codelm-lab/trainlog/1) of the LoRA and
#                             of the full fine-tuning run: columns tokens_seen, train_loss,
#                             val_loss (nats/token; "nan" on steps without validation)
# Writes OUT_STEM.pdf and OUT_STEM.png.
last_slash(s, i) = i == 0 ? 0 : s[i:i] eq "/" ? i : last_slash(s, i - 1)
load ARG0[1:last_slash(ARG0, strlen(ARG0))] . "style.gp"

if (ARGC != 3) { print "usage: gnuplot -c figures/finetune_loss.gp OUT_STEM LORA_LOG.tsv FULL_LOG.tsv"; exit status 2 }
STEM = ARG1
LORA = ARG2
FULL = ARG3
COLS = "tokens_seen train_loss val_loss"
err = out_error(STEM) . tsv_error(LORA, COLS) . tsv_error(FULL, COLS)
if (err ne "") { print err; exit status 1 }
eval RERUN_IN_UTC

stats LORA using (column("tokens_seen") / 1e6) name "LORA_TOK" nooutput
stats FULL using (column("tokens_seen") / 1e6) name "FULL_TOK" nooutput
set xrange [0:*]
set xtics nice_step(LORA_TOK_max > FULL_TOK_max ? LORA_TOK_max : FULL_TOK_max)
set title "Fine-tuning on the val packages: LoRA vs full fine-tuning"
set xlabel "tokens seen in fine-tuning (millions)"
set ylabel "loss (nats/token)"
set key top right
do for [fmt in "pdf png"] {
    eval terminal(fmt, 6.5, 3.8)
    set output part(STEM, fmt)
    plot LORA using (column("tokens_seen") / 1e6):"train_loss" with lines lw 1 lc rgb C_LORA title "LoRA, train", \
         LORA using (column("tokens_seen") / 1e6):"val_loss" with linespoints dt 2 pt 7 ps 0.9 lw 1.5 lc rgb C_LORA title "LoRA, validation", \
         FULL using (column("tokens_seen") / 1e6):"train_loss" with lines lw 1 lc rgb C_FULL title "full, train", \
         FULL using (column("tokens_seen") / 1e6):"val_loss" with linespoints dt 2 pt 5 ps 0.9 lw 1.5 lc rgb C_FULL title "full, validation"
    unset output
}
eval PUBLISH
