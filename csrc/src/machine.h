// machine: the physical limits that speeds are compared with, measured in the same run as the
// speeds themselves (a shared machine's limits move from minute to minute).
//   read bandwidth  every OpenMP thread sums its contiguous share of a buffer far larger than the
//                   last-level cache (8 x L3, at least 256 MiB): the rate at which weights can
//                   stream from DRAM, which bounds batch-1 decode.
//   sgemm rate      OpenBLAS sgemm on a given shape, the best of repeats over a time budget (on a
//                   shared machine the best run is the one least disturbed): what prefill's
//                   matmuls can reach.
#pragma once
#include <stddef.h>

typedef struct {
    double median, min, max;   // over the repetitions
    int n;
} MachineStat;

size_t machine_l3_bytes(void);               // from sysfs; 0 when unknown
size_t machine_bandwidth_buffer_bytes(void); // 8 x L3, at least 256 MiB
// GB/s (1e9 bytes/s) of `reps` passes over a buffer of `bytes`, after one pass to touch it.
MachineStat machine_read_bandwidth(size_t bytes, int reps);
// GFLOP/s of c (M, N) = a (M, K) @ b (N, K)^T: the best of as many runs as fit in `seconds`.
double machine_sgemm_gflops(int M, int N, int K, double seconds);
// Resident memory of this process now, and its peak so far (bytes, from /proc/self/status).
size_t machine_rss_bytes(void);
size_t machine_peak_rss_bytes(void);
