// lab-bench: times the model's forward + backward at a given size on the CPU backend and sets the
// time its matmuls take against the machine's own sgemm rate, measured in the same run at the
// same thread count, on the model's most common product shape.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "machine.h"
#include "lora.h"
#include "model.h"

static void usage(void) {
    printf(
        "usage: lab-bench [options]\n"
        "\n"
        "Runs forward + backward of a randomly initialised model on random tokens and prints\n"
        "tokens/s, the GFLOP/s of the linear layers' matmuls (time measured inside the backend),\n"
        "the machine's sgemm GFLOP/s on the shape (B*T) x F x C measured in the same run, and the\n"
        "ratio of the two.\n"
        "\n"
        "  --vocab V (4096)  --dim C (256)  --layers L (4)  --heads NH (4)  --kv-heads NKV (NH)\n"
        "  --ffn F (8C/3 rounded up to a multiple of 32)  --ctx T (256)  --batch B (8)\n"
        "  --lora-rank R          time LoRA training (targets q,v, dropout 0.05) instead of\n"
        "                         pretraining; 0 for none (0)\n"
        "  --steps N (5)          timed forward+backward steps, after one untimed warm-up step;\n"
        "                         the breakdown is the fastest step's (the one a shared machine\n"
        "                         disturbed least)\n"
        "  --threads N            OpenMP and BLAS threads (OMP_NUM_THREADS or all cores)\n");
}


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    lab_init("lab-bench", argc, argv);
    ModelConfig c = {.vocab_size = 4096, .dim = 256, .n_layers = 4, .n_heads = 4, .n_kv_heads = 0,
                     .ffn_dim = 0, .max_seq_len = 256, .norm_eps = 1e-5f, .rope_theta = 10000};
    int batch = 8, steps = 5, threads = 0, lora_rank = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value after it (see --help)", f);
        const char *v = argv[++i];
        if (strcmp(f, "--vocab") == 0) c.vocab_size = (int)lab_parse_int(f, v, 1, 1 << 24);
        else if (strcmp(f, "--dim") == 0) c.dim = (int)lab_parse_int(f, v, 1, 1 << 16);
        else if (strcmp(f, "--layers") == 0) c.n_layers = (int)lab_parse_int(f, v, 1, 1024);
        else if (strcmp(f, "--heads") == 0) c.n_heads = (int)lab_parse_int(f, v, 1, 1024);
        else if (strcmp(f, "--kv-heads") == 0) c.n_kv_heads = (int)lab_parse_int(f, v, 1, 1024);
        else if (strcmp(f, "--ffn") == 0) c.ffn_dim = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (strcmp(f, "--ctx") == 0) c.max_seq_len = (int)lab_parse_int(f, v, 1, 1 << 16);
        else if (strcmp(f, "--batch") == 0) batch = (int)lab_parse_int(f, v, 1, 1 << 16);
        else if (strcmp(f, "--lora-rank") == 0) lora_rank = (int)lab_parse_int(f, v, 0, 1 << 16);
        else if (strcmp(f, "--steps") == 0) steps = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (strcmp(f, "--threads") == 0) threads = (int)lab_parse_int(f, v, 1, 1024);
        else lab_die("unknown flag %s (see --help)", f);
    }
    if (threads) lab_set_threads(threads);
    if (!c.n_kv_heads) c.n_kv_heads = c.n_heads;
    if (!c.ffn_dim) c.ffn_dim = (8 * c.dim / 3 + 31) / 32 * 32;
    model_config_check(&c);
    int T = c.max_seq_len, N = batch * T;

    Model m;
    model_init(&m, &c, &backend_cpu);
    model_init_random(&m, 1);
    if (lora_rank) {
        LoraConfig lc = {.rank = lora_rank, .alpha = 2.0f * lora_rank, .dropout = 0.05f,
                         .targets = lora_parse_targets("q,v")};
        lora_attach(&m, &lc, 1);
        m.training = 1;
    }
    int32_t *inp = lab_malloc((size_t)N * sizeof(int32_t)), *tgt = lab_malloc((size_t)N * sizeof(int32_t));
    Rng rng;
    rng_seed(&rng, 2);
    for (int n = 0; n < N; n++) {
        inp[n] = (int32_t)rng_below(&rng, (uint32_t)c.vocab_size);
        tgt[n] = (int32_t)rng_below(&rng, (uint32_t)c.vocab_size);
    }
    printf("model: V=%d C=%d L=%d NH=%d NKV=%d F=%d, %.2fM parameters%s; batch %d x ctx %d\n", c.vocab_size,
           c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn_dim, model_num_params(&c) / 1e6,
           lora_rank ? " (LoRA q,v training)" : "", batch, T);
    printf("machine: %s, %d threads, OpenBLAS core %s, load average %.2f at the start\n", lab_cpu_name(),
           lab_threads(), lab_blas_core(), lab_load_average());

    // one untimed warm-up step (allocations, first touch), then each step timed on its own
    double *step_s = lab_malloc((size_t)steps * sizeof(double)), best_fwd = 0, best_bwd = 0;
    BackendStats best = {0}, st;
    for (int s = -1; s < steps; s++) {
        backend_cpu.stats(NULL, 1);
        double t0 = lab_now();
        m.dropout_seed = (uint64_t)s;
        model_forward(&m, inp, tgt, batch, T);
        double t1 = lab_now();
        model_zero_grad(&m);
        model_backward(&m);
        double t2 = lab_now();
        if (s < 0) continue;
        backend_cpu.stats(&st, 0);
        step_s[s] = t2 - t0;
        if (s == 0 || t2 - t0 < best_fwd + best_bwd) {
            best_fwd = t1 - t0;
            best_bwd = t2 - t1;
            best = st;
        }
    }
    double best_s = best_fwd + best_bwd;
    qsort(step_s, (size_t)steps, sizeof(double), cmp_double);
    double median_s = step_s[steps / 2];
    double mm_rate = best.matmul_flop / best.matmul_s / 1e9;
    double machine = machine_sgemm_gflops(N, c.ffn_dim, c.dim, 1.0);
    double square = machine_sgemm_gflops(1024, 1024, 1024, 1.0);
    printf("forward+backward: %.1f tokens/s in the median step, %.1f in the best (%d steps)\n", N / median_s,
           N / best_s, steps);
    printf("best step %.3f s: forward %.3f, backward %.3f, loss %.4f\n", best_s, best_fwd, best_bwd, m.mean_loss);
    printf("  matmuls (linear layers + head): %.3f s = %.0f%%, %.1f GFLOP/s\n", best.matmul_s,
           100 * best.matmul_s / best_s, mm_rate);
    printf("  attention (products + softmax): %.3f s = %.0f%%, %.1f GFLOP/s in the products\n",
           best.attention_s, 100 * best.attention_s / best_s, best.attention_flop / best.attention_s / 1e9);
    printf("  everything else: %.3f s = %.0f%%\n", best_s - best.matmul_s - best.attention_s,
           100 * (best_s - best.matmul_s - best.attention_s) / best_s);
    printf("machine sgemm %dx%dx%d: %.1f GFLOP/s (1024^3: %.1f GFLOP/s), best of 1 s of repeats\n", N,
           c.ffn_dim, c.dim, machine, square);
    printf("ratio model matmuls / machine sgemm: %.2f (load average %.2f at the end)\n", mm_rate / machine,
           lab_load_average());
    free(step_s);
    free(inp);
    free(tgt);
    model_free(&m);
    return 0;
}
