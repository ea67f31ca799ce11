// lab-qbench: batch-1 matvec speed of each weight format (quant.h) against the machine's own read
// bandwidth, measured in the same run: decode streams every weight once per token, so the fraction
// of the bandwidth a format's matvec reaches is the fraction of the decode speed bound it reaches.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "machine.h"
#include "quant.h"

static void usage(void) {
    printf(
        "usage: lab-qbench [options]\n"
        "\n"
        "Measures in one run, each as the median of --reps repetitions with the spread (min..max):\n"
        "  - read bandwidth (machine.h): all threads summing their share of a buffer far beyond\n"
        "    the L3 cache, before and after the matvecs (the fractions use the mean of the two\n"
        "    medians);\n"
        "  - the cost of an empty OpenMP parallel region (fork + join);\n"
        "  - for each format, y = W x with one x row (batch-1 decode) over two weight sets:\n"
        "      model: the default model's linear layers (4 layers of q,k,v,o C x C, gate,up F x C,\n"
        "             down C x F, and the V x C head), called in decode order;\n"
        "      big:   layers of the shape --big-dim / --big-ffn, repeated until the set in that\n"
        "             format holds at least --big-bytes, so it streams from DRAM;\n"
        "    as ms per pass, GB/s of weight bytes and the fraction of the measured bandwidth;\n"
        "  - matvecs of R x C for R = 64..1024 per format on 1 thread, on every thread, and with\n"
        "    the library's threshold (qmat_parallel_min_weights), to show what the threshold saves.\n"
        "\n"
        "  --formats LIST       comma-separated, of f32,bf16,f16,q8_0,q4_0 (all)\n"
        "  --kernel K           portable, avx2 or avx512 (the best this CPU runs)\n"
        "  --threads N          OpenMP threads (OMP_NUM_THREADS or all cores)\n"
        "  --reps R (7)         repetitions per measurement, at least 5\n"
        "  --min-time S (0.1)   seconds each repetition runs (whole passes, averaged)\n"
        "  --dim C (256)  --ffn F (704)  --layers L (4)  --vocab V (4096)   the model set\n"
        "  --big-dim D (768)  --big-ffn G (2048)                          the big set's layer\n"
        "  --big-bytes B        the big set's size (4 x L3, or 128M when L3 is unknown)\n"
        "  --bw-bytes B         the bandwidth buffer (8 x L3, at least 256M)\n");
}

// ---------------------------------------------------------------------------------------------
// statistics

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct { double median, min, max; } Stat;

static Stat stat_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    Stat s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1]};
    return s;
}

// seconds per call of fn(ctx): per repetition, whole calls for at least min_time, averaged
static Stat time_calls(void (*fn)(void *), void *ctx, int reps, double min_time) {
    double *v = lab_malloc((size_t)reps * sizeof(double));
    fn(ctx);  // warm-up: first touch, caches, thread start
    for (int r = 0; r < reps; r++) {
        long calls = 0;
        double t0 = lab_now(), t;
        do {
            fn(ctx);
            calls++;
        } while ((t = lab_now() - t0) < min_time);
        v[r] = t / calls;
    }
    Stat s = stat_of(v, reps);
    free(v);
    return s;
}

// ---------------------------------------------------------------------------------------------
// machine

static void empty_region(void *p) {
    (void)p;
    for (int i = 0; i < 1000; i++) {
#pragma omp parallel
        {
            __asm__ volatile("" ::: "memory");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// weight sets

typedef struct {
    QMat *mats;
    int n;
    size_t bytes;
    float *x, *y;  // x holds max cols floats, y max rows
} WeightSet;

static void set_call(void *p) {
    WeightSet *s = p;
    for (int i = 0; i < s->n; i++) qmat_matmul(&s->mats[i], s->x, 1, s->y);
}

static float *random_floats(size_t n, float scale, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    float *v = lab_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = scale * rng_normal(&r);
    return v;
}

// Matrices of the shapes shape[0..n) (rows, cols), quantized from random weights, the whole list
// repeated `repeat` times (copies, so each is its own memory).
static WeightSet make_set(QType t, const int (*shape)[2], int n, int repeat) {
    WeightSet s = {0};
    s.mats = lab_calloc((size_t)n * repeat, sizeof(QMat));
    int maxdim = 0;
    for (int m = 0; m < n; m++) {
        QMat *q = &s.mats[m];
        float *w = random_floats((size_t)shape[m][0] * shape[m][1], 0.02f, 10 + m);
        qmat_quantize(q, t, w, shape[m][0], shape[m][1]);
        free(w);
        maxdim = shape[m][0] > maxdim ? shape[m][0] : maxdim;
        maxdim = shape[m][1] > maxdim ? shape[m][1] : maxdim;
    }
    s.n = n;
    for (int r = 1; r < repeat; r++)
        for (int m = 0; m < n; m++) {
            QMat *q = &s.mats[s.n++];
            *q = s.mats[m];
            if (posix_memalign(&q->data, 64, (q->bytes + 63) / 64 * 64) != 0) lab_die("out of memory for the weight set");
            memcpy(q->data, s.mats[m].data, q->bytes);
        }
    for (int m = 0; m < s.n; m++) s.bytes += s.mats[m].bytes;
    s.x = random_floats((size_t)maxdim, 1.0f, 30);
    s.y = lab_calloc((size_t)maxdim, sizeof(float));
    return s;
}

static void free_set(WeightSet *s) {
    for (int i = 0; i < s->n; i++) qmat_free(&s->mats[i]);
    free(s->mats);
    free(s->x);
    free(s->y);
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    lab_init("lab-qbench", argc, argv);
    int reps = 7, threads = 0, dim = 256, ffn = 704, layers = 4, vocab = 4096, big_dim = 768, big_ffn = 2048;
    double min_time = 0.1;
    const size_t l3 = machine_l3_bytes();
    uint64_t big_bytes = l3 ? 4 * l3 : 128u << 20, bw_bytes = machine_bandwidth_buffer_bytes();
    int use[QT_COUNT] = {1, 1, 1, 1, 1};
    const char *kernel = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            usage();
            return 0;
        }
        if (i + 1 >= argc) lab_die("%s: expected a value after it (see --help)", f);
        const char *v = argv[++i];
        if (strcmp(f, "--formats") == 0) {
            memset(use, 0, sizeof use);
            char *list = lab_strdup(v), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                QType t;
                if (qtype_parse(tok, &t) != 0) lab_die("--formats: expected f32, bf16, f16, q8_0 or q4_0, found '%s'", tok);
                use[t] = 1;
            }
            free(list);
        } else if (strcmp(f, "--kernel") == 0) kernel = v;
        else if (strcmp(f, "--threads") == 0) threads = (int)lab_parse_int(f, v, 1, 1024);
        else if (strcmp(f, "--reps") == 0) reps = (int)lab_parse_int(f, v, 5, 1000);
        else if (strcmp(f, "--min-time") == 0) min_time = lab_parse_double(f, v, 0.001, 60);
        else if (strcmp(f, "--dim") == 0) dim = (int)lab_parse_int(f, v, 32, 1 << 16);
        else if (strcmp(f, "--ffn") == 0) ffn = (int)lab_parse_int(f, v, 32, 1 << 18);
        else if (strcmp(f, "--layers") == 0) layers = (int)lab_parse_int(f, v, 1, 1024);
        else if (strcmp(f, "--vocab") == 0) vocab = (int)lab_parse_int(f, v, 0, 1 << 22);
        else if (strcmp(f, "--big-dim") == 0) big_dim = (int)lab_parse_int(f, v, 32, 1 << 16);
        else if (strcmp(f, "--big-ffn") == 0) big_ffn = (int)lab_parse_int(f, v, 32, 1 << 18);
        else if (strcmp(f, "--big-bytes") == 0) big_bytes = lab_parse_size(f, v);
        else if (strcmp(f, "--bw-bytes") == 0) bw_bytes = lab_parse_size(f, v);
        else lab_die("unknown flag %s (see --help)", f);
    }
    if (dim % QK || ffn % QK || big_dim % QK || big_ffn % QK)
        lab_die("--dim, --ffn, --big-dim and --big-ffn: expected multiples of %d (the Q8_0/Q4_0 group), found %d, %d, %d, %d",
                QK, dim, ffn, big_dim, big_ffn);
    if (threads) lab_set_threads(threads);
    if (kernel) {
        int k = 0;
        while (k < QK_COUNT && strcmp(kernel, qkernel_name((QKernel)k)) != 0) k++;
        if (k == QK_COUNT) lab_die("--kernel: expected portable, avx2 or avx512, found '%s'", kernel);
        if (qkernel_force((QKernel)k) != 0) lab_die("--kernel %s: this CPU cannot run it", kernel);
    }
    printf("machine: %s, %d threads, L3 %zu MiB, OpenBLAS core %s, kernel %s, load average %.2f at the start\n",
           lab_cpu_name(), lab_threads(), l3 >> 20, lab_blas_core(), qkernel_name(qkernel_active()), lab_load_average());

    MachineStat bw0 = machine_read_bandwidth(bw_bytes, reps);
    Stat fj = time_calls(empty_region, NULL, reps, min_time);
    printf("read bandwidth (%llu MiB buffer): %.2f GB/s median, spread %.2f..%.2f\n", (unsigned long long)(bw_bytes >> 20),
           bw0.median, bw0.min, bw0.max);
    printf("omp fork+join (empty parallel region): %.2f us median, spread %.2f..%.2f\n", fj.median * 1e3, fj.min * 1e3,
           fj.max * 1e3);

    // the model set: each layer's q, k, v, o, gate, up, down in decode order, then the head
    int (*model_shape)[2] = lab_malloc(((size_t)layers * 7 + 1) * sizeof *model_shape), n_model = 0;
    for (int l = 0; l < layers; l++) {
        const int layer[7][2] = {{dim, dim}, {dim, dim}, {dim, dim}, {dim, dim}, {ffn, dim}, {ffn, dim}, {dim, ffn}};
        memcpy(model_shape + n_model, layer, sizeof layer);
        n_model += 7;
    }
    if (vocab > 0) {
        model_shape[n_model][0] = vocab;
        model_shape[n_model++][1] = dim;
    }
    const int big_layer[7][2] = {{big_dim, big_dim}, {big_dim, big_dim}, {big_dim, big_dim}, {big_dim, big_dim},
                                 {big_ffn, big_dim}, {big_ffn, big_dim}, {big_dim, big_ffn}};
    typedef struct { Stat s; size_t bytes; int n; } Row;
    Row rows[QT_COUNT][2];
    for (int t = 0; t < QT_COUNT; t++) {
        if (!use[t]) continue;
        WeightSet model = make_set((QType)t, (const int (*)[2])model_shape, n_model, 1);
        rows[t][0] = (Row){time_calls(set_call, &model, reps, min_time), model.bytes, model.n};
        free_set(&model);
        // (gate and up are big_ffn x big_dim, down big_dim x big_ffn: the same bytes each)
        const size_t layer_bytes = qmat_row_bytes((QType)t, big_dim) * (4 * (size_t)big_dim + 3 * (size_t)big_ffn);
        WeightSet big = make_set((QType)t, big_layer, 7, (int)((big_bytes + layer_bytes - 1) / layer_bytes));
        rows[t][1] = (Row){time_calls(set_call, &big, reps, min_time), big.bytes, big.n};
        free_set(&big);
    }
    free(model_shape);
    MachineStat bw1 = machine_read_bandwidth(bw_bytes, reps);
    const double bw = (bw0.median + bw1.median) / 2;
    printf("read bandwidth again: %.2f GB/s median, spread %.2f..%.2f; fractions below use %.2f GB/s\n",
           bw1.median, bw1.min, bw1.max, bw);

    printf("%-6s %-5s %8s %5s %9s %9s %9s %8s %6s %9s\n", "format", "set", "MiB", "mats", "ms/pass", "ms_min",
           "ms_max", "GB/s", "of_bw", "pass/s");
    for (int t = 0; t < QT_COUNT; t++)
        for (int s = 0; s < 2 && use[t]; s++) {
            Row *r = &rows[t][s];
            double gbs = r->bytes / r->s.median / 1e9;
            printf("%-6s %-5s %8.2f %5d %9.4f %9.4f %9.4f %8.2f %6.3f %9.1f\n", qtype_name((QType)t), s ? "big" : "model",
                   r->bytes / 1048576.0, r->n, r->s.median * 1e3, r->s.min * 1e3, r->s.max * 1e3, gbs, gbs / bw,
                   1 / r->s.median);
        }

    // small matvecs (R x C): 1 thread, every thread, and the library's choice
    const size_t threshold = qmat_parallel_min_weights();
    const int max_threads = lab_threads(), small_rows[] = {64, 128, 256, 512, 1024};
    printf("small matvecs, us per call (median): 1 thread, %d threads, the library's choice (%zu weights per "
           "thread at least)\n", max_threads, threshold);
    printf("%-6s %10s %8s %9s %9s %9s %7s\n", "format", "shape", "KiB", "1thread", "allthr", "auto", "threads");
    for (int t = 0; t < QT_COUNT; t++)
        for (int i = 0; i < 5 && use[t]; i++) {
            const int shape[1][2] = {{small_rows[i], dim}};
            WeightSet one = make_set((QType)t, shape, 1, 1);
            Stat st[3];
            omp_set_num_threads(1);
            st[0] = time_calls(set_call, &one, reps, min_time / 5);
            omp_set_num_threads(max_threads);
            qmat_set_parallel_min_weights(0);
            st[1] = time_calls(set_call, &one, reps, min_time / 5);
            qmat_set_parallel_min_weights(threshold);
            st[2] = time_calls(set_call, &one, reps, min_time / 5);
            printf("%-6s %5dx%-4d %8.1f %9.2f %9.2f %9.2f %7d\n", qtype_name((QType)t), small_rows[i], dim,
                   one.bytes / 1024.0, st[0].median * 1e6, st[1].median * 1e6, st[2].median * 1e6,
                   qmat_matmul_threads(&one.mats[0], 1));
            free_set(&one);
        }
    printf("load average %.2f at the end\n", lab_load_average());
    return 0;
}
