// lab-train: pretraining (all weights, random init), full fine-tuning (all weights, from a base)
// and LoRA fine-tuning (base frozen) on a tokens.h5 split (windows of the token stream, or, for a
// pairs file, one prompt + completion per row with the loss on the completion only), with AdamW,
// warmup + cosine, clipping, gradient accumulation, validation, atomic periodic checkpoints and
// --resume that continues bit for bit.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "tokens.h"

static void usage(void) {
    printf(
        "usage: lab-train --mode pretrain --tokens TOKENS.h5 --out BASE.h5 [options]\n"
        "       lab-train --mode lora --base BASE.h5 --tokens TOKENS.h5 --out ADAPTER.h5 [options]\n"
        "       lab-train --mode full --base BASE.h5 --tokens TOKENS.h5 --out MODEL.h5 [options]\n"
        "\n"
        "pretrain trains every weight of a new model, initialised from --seed, and writes a\n"
        "checkpoint (codelm-lab/checkpoint/1). full trains every weight of BASE.h5 (fresh optimizer\n"
        "moments) and writes a checkpoint. lora freezes BASE.h5 and trains low-rank adapters on\n"
        "the chosen projections, written alone (codelm-lab/adapter/1, with the base's config and\n"
        "the sha256 of its parameters); lab-merge folds one into a full checkpoint.\n"
        "\n"
        "data\n"
        "  --tokens PATH          tokens.h5 from lab-tokenizer encode or encode-pairs\n"
        "  --train-split NAME     split to train on (train)\n"
        "  --val-split NAME       split to validate on, or 'none' (val)\n"
        "  --batch B              sequences per micro-batch (8)\n"
        "  --seq T                tokens per sequence (the model's --ctx)\n"
        "  --accum K              micro-batches per optimizer step (1); a step sees B*T*K tokens\n"
        "  --seed S               initialisation, data order and dropout masks (1). Row b of\n"
        "                         micro-batch k of step s starts at a position drawn from\n"
        "                         (S, s, k, b) alone, so a resumed run sees the same data\n"
        "  A split of a pairs file (lab-tokenizer encode-pairs) is read a pair per row instead: row\n"
        "  b holds the pair drawn from (S, s, k, b), from its start, padded with eot, and only its\n"
        "  completion and final eot are targets (the prompt is context). Validation takes pairs\n"
        "  evenly spaced over the split (each pair once when --val-batches x --batch is the\n"
        "  split's pair count). Losses are means over the scored targets\n"
        "model (pretrain; lora and full take the base's)\n"
        "  --dim C (256)  --layers L (4)  --heads NH (4)  --kv-heads NKV (NH)  --ctx T_max (256)\n"
        "  --ffn F (8C/3 rounded up to a multiple of 32)  --rope-theta (10000)  --norm-eps (1e-5)\n"
        "  the vocabulary size is the tokens file's\n"
        "lora\n"
        "  --base PATH            the base checkpoint (lora: frozen; full: the starting point)\n"
        "  --lora-targets LIST    any of q,k,v,o,gate,up,down, or all (q,v)\n"
        "  --lora-rank R (8)  --lora-alpha A (16; scale A/R)  --lora-dropout P (0.05)\n"
        "optimizer (AdamW; weight decay on 2-D weight matrices only, never on norm gains)\n"
        "  --steps N (1000)  --lr (3e-4)  --lr-min (lr/10)  --warmup (0) steps of linear warmup,\n"
        "  then cosine from lr to lr-min at step N\n"
        "  --weight-decay (0.1)  --beta1 (0.9)  --beta2 (0.95)  --eps (1e-8)\n"
        "  --grad-clip (1.0) max global gradient L2 norm, 0 for none\n"
        "evaluation, logging, checkpoints\n"
        "  --val-every N          validate every N steps, and after the last (0: after the last only)\n"
        "  --val-batches M        fixed validation batches, evenly spread over the split (8)\n"
        "  --log-every N          print a line every N steps (10)\n"
        "  --log PATH             write the train log (codelm-lab/trainlog/1): a row per step\n"
        "  --save-every N         write --out (atomically) every N steps as well as at the end\n"
        "  --resume               continue from --out (optimizer moments, step, tokens seen, log);\n"
        "                         starts from scratch when --out does not exist yet. On the same\n"
        "                         machine and thread count, a run stopped and resumed ends with the\n"
        "                         same bytes as one never stopped\n"
        "  --threads N            OpenMP and BLAS threads (OMP_NUM_THREADS or all cores)\n"
        "  --config-sha256 HEX    recorded in the outputs' provenance\n"
        "\n"
        "Each logged line: step, train loss (nats/token), lr, gradient norm (before clipping),\n"
        "tokens/s and GFLOP/s achieved, counting 6N + 12*L*T*C FLOPs per token for pretraining (N\n"
        "parameters; attention's QK^T and PV forward and backward) and 4N + 6N_adapter + 12*L*T*C\n"
        "for lora (frozen weights get no weight gradient). A loss or gradient that is not finite\n"
        "stops the run with an error naming the step.\n");
}

typedef struct {
    const char *mode, *tokens, *out, *base, *log, *train_split, *val_split, *lora_targets;
    int batch, seq, accum, val_every, val_batches, log_every, save_every, resume;
    int64_t steps;
    uint64_t seed;
    ModelConfig mc;
    int ffn_set;
    LoraConfig lc;
    OptimConfig oc;
    int lr_min_set;
} Args;

static const char *flag_value(int *i, int argc, char **argv) {
    if (*i + 1 >= argc) lab_die("%s: expected a value", argv[*i]);
    return argv[++*i];
}

static Args parse_args(int argc, char **argv) {
    Args a = {.mode = NULL, .train_split = "train", .val_split = "val", .lora_targets = "q,v",
              .batch = 8, .seq = 0, .accum = 1, .val_batches = 8, .log_every = 10, .steps = 1000,
              .seed = 1};
    a.mc = (ModelConfig){.dim = 256, .n_layers = 4, .n_heads = 4, .n_kv_heads = 0, .ffn_dim = 0,
                         .max_seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    a.lc = (LoraConfig){.rank = 8, .alpha = 16.0f, .dropout = 0.05f};
    a.oc = optim_defaults();
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
#define IS(name) (strcmp(f, name) == 0)
#define VAL flag_value(&i, argc, argv)
#define INT(lo, hi) (int)lab_parse_int(f, VAL, lo, hi)
#define NUM(lo, hi) lab_parse_double(f, VAL, lo, hi)
        if (IS("--help") || IS("-h")) { usage(); exit(0); }
        else if (IS("--mode")) a.mode = VAL;
        else if (IS("--tokens")) a.tokens = VAL;
        else if (IS("--out")) a.out = VAL;
        else if (IS("--base")) a.base = VAL;
        else if (IS("--log")) a.log = VAL;
        else if (IS("--train-split")) a.train_split = VAL;
        else if (IS("--val-split")) a.val_split = VAL;
        else if (IS("--batch")) a.batch = INT(1, 1 << 16);
        else if (IS("--seq")) a.seq = INT(1, 1 << 20);
        else if (IS("--accum")) a.accum = INT(1, 1 << 16);
        else if (IS("--seed")) a.seed = (uint64_t)lab_parse_int(f, VAL, 0, INT64_MAX);
        else if (IS("--dim")) a.mc.dim = INT(1, 1 << 16);
        else if (IS("--layers")) a.mc.n_layers = INT(1, 1024);
        else if (IS("--heads")) a.mc.n_heads = INT(1, 1024);
        else if (IS("--kv-heads")) a.mc.n_kv_heads = INT(1, 1024);
        else if (IS("--ffn")) { a.mc.ffn_dim = INT(1, 1 << 20); a.ffn_set = 1; }
        else if (IS("--ctx")) a.mc.max_seq_len = INT(1, 1 << 20);
        else if (IS("--rope-theta")) a.mc.rope_theta = (float)NUM(1e-6, 1e12);
        else if (IS("--norm-eps")) a.mc.norm_eps = (float)NUM(1e-12, 1);
        else if (IS("--lora-targets")) a.lora_targets = VAL;
        else if (IS("--lora-rank")) a.lc.rank = INT(1, 65536);
        else if (IS("--lora-alpha")) a.lc.alpha = (float)NUM(1e-6, 1e6);
        else if (IS("--lora-dropout")) a.lc.dropout = (float)NUM(0, 0.99);
        else if (IS("--steps")) a.steps = lab_parse_int(f, VAL, 1, INT64_MAX / 2);
        else if (IS("--lr")) a.oc.lr = (float)NUM(0, 1e38);
        else if (IS("--lr-min")) { a.oc.lr_min = (float)NUM(0, 1e38); a.lr_min_set = 1; }
        else if (IS("--warmup")) a.oc.warmup = lab_parse_int(f, VAL, 0, INT64_MAX / 2);
        else if (IS("--weight-decay")) a.oc.weight_decay = (float)NUM(0, 1e6);
        else if (IS("--beta1")) a.oc.beta1 = (float)NUM(0, 0.999999);
        else if (IS("--beta2")) a.oc.beta2 = (float)NUM(0, 0.999999);
        else if (IS("--eps")) a.oc.eps = (float)NUM(0, 1);
        else if (IS("--grad-clip")) a.oc.grad_clip = (float)NUM(0, 1e38);
        else if (IS("--val-every")) a.val_every = INT(0, 1 << 30);
        else if (IS("--val-batches")) a.val_batches = INT(1, 1 << 20);
        else if (IS("--log-every")) a.log_every = INT(1, 1 << 30);
        else if (IS("--save-every")) a.save_every = INT(0, 1 << 30);
        else if (IS("--resume")) a.resume = 1;
        else if (IS("--threads")) lab_set_threads(INT(1, 4096));
        else if (IS("--config-sha256")) lab_set_config_sha256(VAL);
        else lab_die("unknown flag '%s' (see --help)", f);
#undef IS
#undef VAL
#undef INT
#undef NUM
    }
    if (!a.mode) lab_die("expected --mode pretrain, lora or full (see --help)");
    if (strcmp(a.mode, "pretrain") != 0 && strcmp(a.mode, "lora") != 0 && strcmp(a.mode, "full") != 0)
        lab_die("--mode: expected pretrain, lora or full, found '%s'", a.mode);
    if (!a.tokens) lab_die("expected --tokens TOKENS.h5 (see --help)");
    if (!a.out) lab_die("expected --out PATH (see --help)");
    int pretrain = strcmp(a.mode, "pretrain") == 0;
    if (!pretrain && !a.base) lab_die("--mode %s: expected --base BASE.h5", a.mode);
    if (pretrain && a.base) lab_die("--base: only with --mode lora or full");
    if (!a.mc.n_kv_heads) a.mc.n_kv_heads = a.mc.n_heads;
    if (!a.ffn_set) a.mc.ffn_dim = (8 * a.mc.dim / 3 + 31) / 32 * 32;
    if (!a.lr_min_set) a.oc.lr_min = a.oc.lr / 10;
    a.oc.total_steps = a.steps;
    a.lc.targets = lora_parse_targets(a.lora_targets);
    return a;
}

// ---------------------------------------------------------------------------------------------

static int64_t count_scored(const int32_t *tgt, size_t n) {
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) k += tgt[i] >= 0;
    return k;
}

// The mean loss over every scored target of the validation batches (model_forward returns each
// batch's mean over its own scored targets; pairs batches score different numbers of them).
static double val_loss(Model *m, const TokenSplit *val, int n_batches, int B, int T, int32_t *in,
                       int32_t *tgt) {
    m->training = 0;
    double sum = 0;
    int64_t scored = 0;
    for (int i = 0; i < n_batches; i++) {
        if (val->doc_prompt_tokens) tokens_pairs_val_batch(val, i, n_batches, B, T, in, tgt);
        else tokens_val_batch(val, i, n_batches, B, T, in, tgt);
        int64_t k = count_scored(tgt, (size_t)B * T);
        sum += (double)model_forward(m, in, tgt, B, T) * (double)k;
        scored += k;
    }
    return sum / (double)scored;
}

// Marks the 2-D weight matrices of the full model as decaying (everything but the norm gains).
static void decay_weight_matrices(AdamW *opt, const Model *m, const float *slab) {
    const float *const *t = (const float *const *)&m->params;
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        int rank;
        uint64_t dims[3];
        model_param_shape(&m->cfg, i, &rank, dims);
        int is_matrix = i == 0 ? rank == 2 : rank == 3;  // tok_emb (V, C); per layer (L, out, in)
        if (is_matrix) adamw_decay_range(opt, (size_t)(t[i] - slab), m->param_sizes[i]);
    }
}

static void save_output(const Args *a, const Model *m, const char *base_sha, const TrainState *st) {
    if (m->lora) adapter_save(a->out, m, base_sha, st);
    else checkpoint_save(a->out, m, st);
    if (a->log) trainlog_save(a->log, st->log);
}

int main(int argc, char **argv) {
    lab_init("lab-train", argc, argv);
    Args a = parse_args(argc, argv);
    int lora = strcmp(a.mode, "lora") == 0;
    lab_set_seed(a.seed);

    TokenSplit train, val;
    int have_val = strcmp(a.val_split, "none") != 0;
    tokens_load(&train, a.tokens, a.train_split);
    if (have_val) tokens_load(&val, a.tokens, a.val_split);
    lab_add_input(a.tokens);

    // the model, and where training starts
    int resuming = a.resume && access(a.out, F_OK) == 0;
    if (a.resume && !resuming) printf("%s does not exist yet: starting from step 0\n", a.out);
    Model m;
    char base_sha[65] = "";
    if (lora) {
        checkpoint_load(a.base, &m, &backend_cpu);
        lab_add_input(a.base);
        model_params_sha256(&m, base_sha);
        if (resuming) {
            adapter_load(a.out, &m, a.base);
            LoraConfig had = m.lora->cfg;
            if (had.rank != a.lc.rank || had.alpha != a.lc.alpha || had.dropout != a.lc.dropout ||
                had.targets != a.lc.targets)
                lab_die("%s: cannot resume: it holds an adapter with rank %d, alpha %g, dropout %g, "
                        "targets %s; this run asks for rank %d, alpha %g, dropout %g, targets %s",
                        a.out, had.rank, had.alpha, had.dropout, lora_format_targets(had.targets),
                        a.lc.rank, a.lc.alpha, a.lc.dropout, a.lora_targets);
        } else {
            lora_attach(&m, &a.lc, lab_hash64(a.seed ^ 0x10a4));
        }
    } else if (strcmp(a.mode, "full") == 0) {
        lab_add_input(a.base);
        checkpoint_load(resuming ? a.out : a.base, &m, &backend_cpu);
        if (resuming) {  // the base's config is enough to compare: its weights are not needed
            hid_t bf = h5_open(a.base, SCHEMA_CHECKPOINT);
            ModelConfig base_cfg = model_config_read(bf);
            h5_close(bf);
            double had, want;
            const char *field = model_config_diff(&m.cfg, &base_cfg, &had, &want);
            if (field)
                lab_die("%s: cannot resume: it holds a model with %s %g, the base %s has %g", a.out, field,
                        had, a.base, want);
        }
    } else {
        a.mc.vocab_size = train.vocab_size;
        model_config_check(&a.mc);
        if (resuming) {
            checkpoint_load(a.out, &m, &backend_cpu);
            double had, want;
            const char *field = model_config_diff(&m.cfg, &a.mc, &had, &want);
            if (field)
                lab_die("%s: cannot resume: it holds a model with %s %g, this run asks for %g", a.out,
                        field, had, want);
        } else {
            model_init(&m, &a.mc, &backend_cpu);
            model_init_random(&m, a.seed);
        }
    }
    if (train.vocab_size != m.cfg.vocab_size)
        lab_die("%s: expected tokens for vocab_size %d (the model's), found vocab_size %d", a.tokens,
                m.cfg.vocab_size, train.vocab_size);
    int T = a.seq ? a.seq : m.cfg.max_seq_len, B = a.batch, K = a.accum;
    if (T > m.cfg.max_seq_len) lab_die("--seq %d: expected at most the model's context %d", T, m.cfg.max_seq_len);

    float *params, *grads;
    size_t n;
    model_trainable(&m, &params, &grads, &n);
    AdamW opt;
    adamw_init(&opt, &a.oc, n);
    if (lora) adamw_decay_range(&opt, 0, n);  // A and B are all matrices
    else decay_weight_matrices(&opt, &m, params);
    TrainLog log = {0};
    TrainState st = {.settings = {.mode = a.mode, .seed = a.seed, .batch = B, .seq_len = T,
                                  .accum = K, .train_split = a.train_split, .optim = a.oc},
                     .opt = &opt, .log = &log};
    if (resuming) {
        train_state_load(a.out, lora ? SCHEMA_ADAPTER : SCHEMA_CHECKPOINT, &st);
        if (a.log) trainlog_merge_speeds(&log, a.log);
        printf("resuming %s from step %lld (%lld tokens seen)\n", a.out, (long long)opt.step,
               (long long)st.tokens_seen);
    }

    // FLOPs per token: 6N (forward 2N, backward 4N) + attention's QK^T and PV (12 L T C)
    double n_model = (double)m.num_params, attn = 12.0 * m.cfg.n_layers * (double)T * m.cfg.dim;
    double flop_per_token = lora ? 4.0 * n_model + 6.0 * (double)n + attn : 6.0 * n_model + attn;
    printf("%s: %zu model parameters, %zu trainable; %d x %d tokens x %d accum per step, "
           "%lld steps; threads %d, BLAS core %s\n",
           a.mode, m.num_params, n, B, T, K, (long long)a.steps, lab_threads(), lab_blas_core());
    if (lora) printf("lora: targets %s, rank %d, alpha %g, dropout %g\n", lora_format_targets(m.lora->cfg.targets),
                     m.lora->cfg.rank, m.lora->cfg.alpha, m.lora->cfg.dropout);
    if (train.doc_prompt_tokens)
        printf("train split '%s': loss on completions only: %llu pairs, %llu scored tokens in rows of %d\n",
               a.train_split, (unsigned long long)train.n_docs, (unsigned long long)tokens_pairs_check(&train, T), T);
    if (have_val && val.doc_prompt_tokens)
        printf("val split '%s': loss on completions only: %llu pairs, %llu scored tokens in rows of %d\n",
               a.val_split, (unsigned long long)val.n_docs, (unsigned long long)tokens_pairs_check(&val, T), T);
    else if (have_val)
        printf("val split '%s': %llu tokens, unigram entropy %.4f nats/token (the loss of a model that "
               "knows only token frequencies)\n", a.val_split, (unsigned long long)val.n_tokens,
               tokens_unigram_entropy(&val));

    size_t BT = (size_t)B * T;
    int pairs = train.doc_prompt_tokens != NULL;
    int32_t *in = lab_malloc(BT * sizeof(int32_t)), *tgt = lab_malloc(BT * sizeof(int32_t));
    int64_t start_step = opt.step;
    double t_run = lab_now(), train_s = 0, interval_s = 0, interval_loss = 0;
    int64_t interval_steps = 0, tokens_per_step = (int64_t)BT * K;
    for (int64_t step = start_step; step < a.steps; step++) {
        double t0 = lab_now();
        model_zero_grad(&m);
        // The step's loss is the mean over all its scored targets, and its gradient that mean's.
        // model_backward adds the gradient of one micro-batch's own mean: its summed loss over its
        // n_k scored targets. So the accumulated gradient is kept as that of (the summed loss so
        // far) / n_k: before micro-batch k adds its own, it is rescaled by n_{k-1} / n_k, and at
        // the end by n_{K-1} / (n_0 + ... + n_{K-1}). Windows of a tokens file score B*T targets
        // in every micro-batch: no rescale, and the end factor is 1/K (exactly, while K*B*T < 2^24).
        double loss_sum = 0;
        int64_t scored = 0, prev = 0;
        for (int k = 0; k < K; k++) {
            if (pairs) tokens_pairs_train_batch(&train, a.seed, step, k, B, T, in, tgt);
            else tokens_train_batch(&train, a.seed, step, k, B, T, in, tgt);
            int64_t nk = count_scored(tgt, BT);
            if (prev && nk != prev) optim_scale_and_clip(grads, n, (float)((double)prev / (double)nk), 0);
            m.training = 1;
            m.dropout_seed = lab_hash64(lab_hash64(a.seed ^ 0xd50f) ^ (uint64_t)(step * K + k));
            loss_sum += (double)model_forward(&m, in, tgt, B, T) * (double)nk;
            model_backward(&m);
            scored += nk;
            prev = nk;
        }
        double loss = loss_sum / (double)scored;
        double norm = optim_scale_and_clip(grads, n, (float)prev / (float)scored, a.oc.grad_clip);
        if (!isfinite(loss) || !isfinite(norm))
            lab_die("step %lld: training diverged: loss %g, gradient norm %g (expected finite "
                    "values); try a lower --lr (now %g)", (long long)step + 1, loss, norm, a.oc.lr);
        float lr = optim_lr(&a.oc, step);
        adamw_update(&opt, params, grads, lr);
        st.tokens_seen += tokens_per_step;
        int64_t done = step + 1;
        double step_s = lab_now() - t0, tok_s = (double)tokens_per_step / step_s;
        train_s += step_s;
        interval_s += step_s;
        interval_loss += loss;
        interval_steps++;

        double vl = NAN;
        int last = done == a.steps;
        if (have_val && (last || (a.val_every && done % a.val_every == 0)))
            vl = val_loss(&m, &val, a.val_batches, B, T, in, tgt);
        trainlog_append(&log, done, st.tokens_seen, loss, vl, lr, norm, tok_s);
        if (done % a.log_every == 0 || last || !isnan(vl)) {
            double rate = (double)(interval_steps * tokens_per_step) / interval_s;
            printf("step %6lld/%lld | loss %.4f | lr %.3e | norm %.3f | %.0f tok/s | %.2f GFLOP/s",
                   (long long)done, (long long)a.steps, interval_loss / (double)interval_steps, lr,
                   norm, rate, rate * flop_per_token * 1e-9);
            if (!isnan(vl)) printf(" | val loss %.4f", vl);
            printf("\n");
            fflush(stdout);
            interval_s = 0;
            interval_loss = 0;
            interval_steps = 0;
        }
        if (a.save_every && done % a.save_every == 0 && !last) save_output(&a, &m, base_sha, &st);
    }
    save_output(&a, &m, base_sha, &st);

    double trained = (double)(a.steps - start_step) * (double)tokens_per_step;
    if (trained > 0)
        printf("trained %lld steps, %.0f tokens: %.0f tokens/s, %.2f GFLOP/s achieved "
               "(%.2f s in training steps, %.2f s in all)\n",
               (long long)(a.steps - start_step), trained, trained / train_s,
               trained / train_s * flop_per_token * 1e-9, train_s, lab_now() - t_run);
    char sha[65];
    sha256_hex(params, n * sizeof(float), sha);
    printf("trainable parameters sha256 %s\nwrote %s%s%s\n", sha, a.out, a.log ? " and " : "", a.log ? a.log : "");
    free(in);
    free(tgt);
    trainlog_free(&log);
    adamw_free(&opt);
    model_free(&m);
    tokens_free(&train);
    if (have_val) tokens_free(&val);
    return 0;
}
