// machine: bandwidth, sgemm rate and memory of this process (see machine.h).
#include "machine.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

size_t machine_l3_bytes(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (!f) return 0;
    char buf[64] = {0};
    size_t n = 0;
    if (fgets(buf, sizeof buf, f)) {
        char *end;
        n = strtoull(buf, &end, 10);
        if (*end == 'K') n <<= 10;
        else if (*end == 'M') n <<= 20;
    }
    fclose(f);
    return n;
}

size_t machine_bandwidth_buffer_bytes(void) {
    size_t b = 8 * machine_l3_bytes();
    return b > ((size_t)256 << 20) ? b : (size_t)256 << 20;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Every thread sums its share with 8 independent accumulators, so the loads, not the adds, set
// the pace.
static uint64_t read_pass(const uint64_t *buf, size_t words) {
    uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t i = words * t / nt / 8 * 8;
        const size_t end = t == nt - 1 ? words : words * (t + 1) / nt / 8 * 8;
        uint64_t s[8] = {0};
        for (; i + 8 <= end; i += 8)
            for (int k = 0; k < 8; k++) s[k] += buf[i + k];
        for (; i < end; i++) s[0] += buf[i];
        for (int k = 0; k < 8; k++) total += s[k];
    }
    return total;
}

MachineStat machine_read_bandwidth(size_t bytes, int reps) {
    size_t words = bytes / sizeof(uint64_t);
    uint64_t *buf = lab_malloc(words * sizeof(uint64_t));
    // first touch by the threads that read it (pages land near them) and one warm pass
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < words; i++) buf[i] = i;
    volatile uint64_t sink = read_pass(buf, words);
    double *gbs = lab_malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double t0 = lab_now();
        sink += read_pass(buf, words);
        gbs[r] = (double)(words * sizeof(uint64_t)) / (lab_now() - t0) / 1e9;
    }
    (void)sink;
    free(buf);
    qsort(gbs, (size_t)reps, sizeof(double), cmp_double);
    MachineStat s = {.median = reps % 2 ? gbs[reps / 2] : 0.5 * (gbs[reps / 2 - 1] + gbs[reps / 2]),
                     .min = gbs[0], .max = gbs[reps - 1], .n = reps};
    free(gbs);
    return s;
}

double machine_sgemm_gflops(int M, int N, int K, double seconds) {
    float *a = lab_malloc((size_t)M * K * sizeof(float)), *b = lab_malloc((size_t)N * K * sizeof(float));
    float *c = lab_malloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double best = 1e30, start = lab_now();
    do {
        double t0 = lab_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
        double t = lab_now() - t0;
        best = t < best ? t : best;
    } while (lab_now() - start < seconds);
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K / best / 1e9;
}

static size_t status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen)) {
            kb = strtoull(line + klen, NULL, 10);
            break;
        }
    fclose(f);
    return kb << 10;
}

size_t machine_rss_bytes(void) { return status_kb("VmRSS:"); }
size_t machine_peak_rss_bytes(void) { return status_kb("VmHWM:"); }
