// common: errors, checked allocation and I/O, timing, seeded RNG, sha256, progress, provenance state.
// Every executable calls lab_init() first; every error ends in lab_die(): one line, exit status 1.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// ---------------------------------------------------------------------------------------------
// start-up and errors

// Records the program name and command line for provenance, and makes sure OpenBLAS runs its
// proper kernels: OpenBLAS 0.3.21 misdetects some CPUs and falls back to SSE3 kernels (5x slower
// sgemm). OPENBLAS_CORETYPE is read when the library loads, so when the detected core is a fallback
// and the variable is unset, lab_init sets it from the CPU's features and re-executes the program.
void lab_init(const char *prog, int argc, char **argv);
const char *lab_prog(void);          // "lab-train"
const char *lab_command_line(void);  // argv joined with spaces (shell-quoted where needed)

// Prints "<prog>: <message>\n" on stderr, removes any half-written output (see h5io), exit(1).
_Noreturn void lab_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lab_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Register a temporary file that lab_die (and a fatal signal) must unlink.
void lab_cleanup_register(const char *path);
void lab_cleanup_unregister(const char *path);

void *lab_malloc(size_t n);              // dies with the size on failure
void *lab_calloc(size_t n, size_t size);
void *lab_realloc(void *p, size_t n);
char *lab_strdup(const char *s);
FILE *lab_fopen(const char *path, const char *mode);  // dies: "cannot open PATH for reading: why"
// A whole file in memory, NUL-terminated (it may hold NUL bytes before len); dies when unreadable.
char *lab_read_file(const char *path, size_t *len);
// A text output written atomically: lab_atomic_open writes PATH.tmp (removed by lab_die),
// lab_atomic_close closes it, checks the write and renames it to PATH.
FILE *lab_atomic_open(const char *path, char **tmp);
void lab_atomic_close(FILE *f, char *tmp, const char *path);

// ---------------------------------------------------------------------------------------------
// numbers from strings, for flag parsing: die naming the flag on bad input
long long lab_parse_int(const char *flag, const char *s, long long lo, long long hi);
double lab_parse_double(const char *flag, const char *s, double lo, double hi);
// A byte count: N, or N with a K, M or G suffix (powers of 1024), from 1 byte up to 2^62.
uint64_t lab_parse_size(const char *flag, const char *s);

// ---------------------------------------------------------------------------------------------
// time and machine
double lab_now(void);                // monotonic seconds
int lab_threads(void);               // OpenMP max threads (== BLAS threads, set together)
void lab_set_threads(int n);         // sets OpenMP and OpenBLAS thread counts
const char *lab_blas_core(void);     // openblas_get_corename()
int lab_blas_core_is_fallback(const char *core);  // a generic-SSE core OpenBLAS picks when it misdetects
const char *lab_blas_core_for_cpu(void);          // the core this CPU's features call for, or NULL
const char *lab_cpu_name(void);      // model name from /proc/cpuinfo
const char *lab_host_name(void);
double lab_load_average(void);       // 1-minute load, from /proc/loadavg

// ---------------------------------------------------------------------------------------------
// seeded random numbers (splitmix64 seeding + xoshiro256**); same seed, same stream on any machine
typedef struct { uint64_t s[4]; } Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
uint32_t rng_below(Rng *r, uint32_t n);     // uniform in [0, n)
float rng_uniform(Rng *r);                   // [0, 1)
float rng_normal(Rng *r);                    // N(0, 1), Box-Muller
uint64_t lab_hash64(uint64_t x);             // splitmix64 finaliser, to derive sub-seeds

// ---------------------------------------------------------------------------------------------
// sha256
typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t nbuf; } Sha256;
void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, char hex[65]);
void sha256_hex(const void *data, size_t n, char hex[65]);
void sha256_file(const char *path, char hex[65]);   // dies if unreadable

// ---------------------------------------------------------------------------------------------
// progress on long work: a bar on a terminal, a plain line every ~10% (or `every` seconds) in a log
typedef struct { const char *label; uint64_t total; double t0, last; int tty; int last_pct; } Progress;
void progress_start(Progress *p, const char *label, uint64_t total);
void progress_update(Progress *p, uint64_t done, const char *extra);  // extra may be NULL
void progress_end(Progress *p, const char *extra);

// ---------------------------------------------------------------------------------------------
// provenance: what every HDF5 file records at its root (h5io writes it)
void lab_add_input(const char *path);        // records the path and its sha256 as an input
const char *lab_inputs(void);                // "path sha256\n..." in the order added
void lab_set_seed(uint64_t seed);            // recorded as the `seed` attribute
int lab_get_seed(uint64_t *seed);            // 0 when no seed was set
void lab_set_config_sha256(const char *hex); // from --config-sha256 (the pipeline passes it)
const char *lab_config_sha256(void);         // "" when not given
