// common: errors, checked allocation and I/O, timing, RNG, sha256, progress, provenance state.
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

// ---------------------------------------------------------------------------------------------
// start-up and errors

static char g_prog[64] = "lab";
static char *g_command_line;

#define MAX_CLEANUP 16
static char *g_cleanup[MAX_CLEANUP];

static void cleanup_files(void) {
    for (int i = 0; i < MAX_CLEANUP; i++)
        if (g_cleanup[i]) unlink(g_cleanup[i]);
}

static void on_fatal_signal(int sig) {
    cleanup_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

void lab_cleanup_register(const char *path) {
    for (int i = 0; i < MAX_CLEANUP; i++)
        if (!g_cleanup[i]) { g_cleanup[i] = lab_strdup(path); return; }
    lab_die("internal: more than %d temporary files open at once", MAX_CLEANUP);
}

void lab_cleanup_unregister(const char *path) {
    for (int i = 0; i < MAX_CLEANUP; i++)
        if (g_cleanup[i] && strcmp(g_cleanup[i], path) == 0) { free(g_cleanup[i]); g_cleanup[i] = NULL; }
}

// One line on stderr: "<prog>: <kind><message>".
__attribute__((format(printf, 2, 0))) static void report(const char *kind, const char *fmt, va_list ap) {
    fprintf(stderr, "%s: %s", g_prog, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void lab_die(const char *fmt, ...) {
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    report("", fmt, ap);
    va_end(ap);
    cleanup_files();
    exit(1);
}

void lab_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report("warning: ", fmt, ap);
    va_end(ap);
}

// The cores OpenBLAS 0.3.21 picks when it does not recognise a CPU: generic SSE kernels.
int lab_blas_core_is_fallback(const char *core) {
    static const char *const fallback[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                           "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                           "Opteron", "Barcelona", "Bobcat", "unknown"};
    for (size_t i = 0; i < sizeof(fallback) / sizeof(*fallback); i++)
        if (strcasecmp(core, fallback[i]) == 0) return 1;
    return 0;
}

const char *lab_blas_core_for_cpu(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    if (__builtin_cpu_supports("avx")) return "Sandybridge";
    return NULL;
}

static void append_quoted(char **buf, size_t *len, size_t *cap, const char *arg) {
    int plain = *arg != '\0';
    for (const char *c = arg; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%", *c))
            plain = 0;
    size_t need = *len + 4 * strlen(arg) + 4;
    if (need > *cap) { *cap = 2 * need; *buf = lab_realloc(*buf, *cap); }
    if (*len) (*buf)[(*len)++] = ' ';
    if (plain) {
        *len += (size_t)sprintf(*buf + *len, "%s", arg);
        return;
    }
    (*buf)[(*len)++] = '\'';
    for (const char *c = arg; *c; c++) {
        if (*c == '\'') { memcpy(*buf + *len, "'\\''", 4); *len += 4; }
        else (*buf)[(*len)++] = *c;
    }
    (*buf)[(*len)++] = '\'';
    (*buf)[*len] = '\0';
}

void lab_init(const char *prog, int argc, char **argv) {
    snprintf(g_prog, sizeof g_prog, "%s", prog);
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && lab_blas_core_is_fallback(core)) {
        const char *want = lab_blas_core_for_cpu();
        if (want) {
            // The variable is read when libopenblas loads: run ourselves again with it set.
            setenv("OPENBLAS_CORETYPE", want, 1);
            execv("/proc/self/exe", argv);
            lab_warn("OpenBLAS detected core %s (generic kernels) and re-running with "
                     "OPENBLAS_CORETYPE=%s failed: %s", core, want, strerror(errno));
        }
    }
    size_t len = 0, cap = 256;
    g_command_line = lab_malloc(cap);
    g_command_line[0] = '\0';
    for (int i = 0; i < argc; i++) {
        // argv[0] as invoked would make files depend on the build directory: keep its base name.
        const char *arg = i == 0 ? (strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]) : argv[i];
        append_quoted(&g_command_line, &len, &cap, arg);
    }
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    // One BLAS thread per OpenMP thread, both from OMP_NUM_THREADS (or the core count).
    lab_set_threads(omp_get_max_threads());
}

const char *lab_prog(void) { return g_prog; }
const char *lab_command_line(void) { return g_command_line ? g_command_line : g_prog; }

void *lab_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) lab_die("out of memory allocating %zu bytes", n);
    return p;
}

void *lab_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) lab_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *lab_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) lab_die("out of memory reallocating to %zu bytes", n);
    return q;
}

char *lab_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = lab_malloc(n);
    memcpy(d, s, n);
    return d;
}

FILE *lab_fopen(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    if (!f)
        lab_die("cannot open %s for %s: %s", path, mode[0] == 'r' ? "reading" : "writing",
                strerror(errno));
    return f;
}

char *lab_read_file(const char *path, size_t *len) {
    FILE *f = lab_fopen(path, "rb");
    size_t cap = 4096, n = 0, got;
    char *buf = lab_malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) buf = lab_realloc(buf, cap *= 2);
    }
    if (ferror(f)) lab_die("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

FILE *lab_atomic_open(const char *path, char **tmp) {
    *tmp = lab_malloc(strlen(path) + 5);
    sprintf(*tmp, "%s.tmp", path);
    lab_cleanup_register(*tmp);
    return lab_fopen(*tmp, "w");
}

void lab_atomic_close(FILE *f, char *tmp, const char *path) {
    if (fclose(f) != 0) lab_die("cannot write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) lab_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
    lab_cleanup_unregister(tmp);
    free(tmp);
}

// ---------------------------------------------------------------------------------------------
// flag values

long long lab_parse_int(const char *flag, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno)
        lab_die("%s: expected an integer, found '%s'", flag, s ? s : "(nothing)");
    if (v < lo || v > hi) lab_die("%s: expected %lld..%lld, found %lld", flag, lo, hi, v);
    return v;
}

double lab_parse_double(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s ? s : "", &end);
    if (!s || !*s || *end || errno || isnan(v))
        lab_die("%s: expected a number, found '%s'", flag, s ? s : "(nothing)");
    if (v < lo || v > hi) lab_die("%s: expected %g..%g, found %g", flag, lo, hi, v);
    return v;
}

uint64_t lab_parse_size(const char *flag, const char *s) {
    const uint64_t max = (uint64_t)1 << 62;
    char *end;
    errno = 0;
    long long v = strtoll(s ? s : "", &end, 10);
    int shift = !*end ? 0 : !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : -1;
    if (!s || end == s || errno || shift < 0 || v < 1 || (uint64_t)v > max >> shift)
        lab_die("%s: expected a size of 1 to 2^62 bytes (N, NK, NM or NG; K = 1024), found '%s'", flag,
                s ? s : "(nothing)");
    return (uint64_t)v << shift;
}

// ---------------------------------------------------------------------------------------------
// time and machine

double lab_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int lab_threads(void) { return omp_get_max_threads(); }

void lab_set_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

const char *lab_blas_core(void) { return openblas_get_corename(); }

const char *lab_cpu_name(void) {
    static char name[256];
    if (name[0]) return name;
    snprintf(name, sizeof name, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return name;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ') v++;
                v[strcspn(v, "\n")] = '\0';
                snprintf(name, sizeof name, "%s", v);
            }
            break;
        }
    }
    fclose(f);
    return name;
}

const char *lab_host_name(void) {
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "unknown");
    return host;
}

double lab_load_average(void) {
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    return load;
}

// ---------------------------------------------------------------------------------------------
// random numbers

uint64_t lab_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void rng_seed(Rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        seed = lab_hash64(seed);
        r->s[i] = seed;
    }
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t rng_below(Rng *r, uint32_t n) {
    // Lemire's multiply-shift, with rejection so every value is equally likely.
    uint64_t m = (uint64_t)(uint32_t)(rng_u64(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = -n % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(rng_u64(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float rng_uniform(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(Rng *r) {
    double u1 = ((double)(rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

// ---------------------------------------------------------------------------------------------
// sha256 (FIPS 180-4)

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(Sha256 *s, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

void sha256_init(Sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}

void sha256_update(Sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take; p += take; n -= take;
        if (s->nbuf == 64) { sha256_block(s, s->buf); s->nbuf = 0; }
    }
    for (; n >= 64; p += 64, n -= 64) sha256_block(s, p);
    if (n) { memcpy(s->buf, p, n); s->nbuf = n; }
}

void sha256_final(Sha256 *s, char hex[65]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->nbuf != 56) sha256_update(s, &zero, 1);
    uint8_t lenbe[8];
    for (int i = 0; i < 8; i++) lenbe[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, lenbe, 8);
    for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", s->h[i]);
    hex[64] = '\0';
}

void sha256_hex(const void *data, size_t n, char hex[65]) {
    Sha256 s;
    sha256_init(&s);
    sha256_update(&s, data, n);
    sha256_final(&s, hex);
}

void sha256_file(const char *path, char hex[65]) {
    FILE *f = lab_fopen(path, "rb");
    Sha256 s;
    sha256_init(&s);
    static uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&s, buf, n);
    if (ferror(f)) lab_die("%s: read error while hashing", path);
    fclose(f);
    sha256_final(&s, hex);
}

// ---------------------------------------------------------------------------------------------
// progress

void progress_start(Progress *p, const char *label, uint64_t total) {
    p->label = label;
    p->total = total;
    p->t0 = p->last = lab_now();
    p->tty = isatty(STDERR_FILENO);
    p->last_pct = -1;
}

void progress_update(Progress *p, uint64_t done, const char *extra) {
    double now = lab_now();
    int pct = p->total ? (int)(100.0 * (double)done / (double)p->total) : 0;
    if (p->tty) {
        if (now - p->last < 0.1 && done < p->total) return;
        int width = 30, fill = p->total ? (int)((double)width * (double)done / (double)p->total) : 0;
        if (fill > width) fill = width;
        fprintf(stderr, "\r%s [%.*s%*s] %3d%% %.0fs %s", p->label, fill,
                "##############################", width - fill, "", pct, now - p->t0, extra ? extra : "");
    } else {
        // In a log: a line at each tenth, or every 30 s, whichever comes first.
        if (pct / 10 == p->last_pct / 10 && now - p->last < 30) return;
        fprintf(stderr, "%s: %d%% (%llu/%llu) %.0fs %s\n", p->label, pct, (unsigned long long)done,
                (unsigned long long)p->total, now - p->t0, extra ? extra : "");
    }
    p->last = now;
    p->last_pct = pct;
    fflush(stderr);
}

void progress_end(Progress *p, const char *extra) {
    double secs = lab_now() - p->t0;
    if (p->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "%s: done in %.1fs %s\n", p->label, secs, extra ? extra : "");
}

// ---------------------------------------------------------------------------------------------
// provenance state

static char *g_inputs;
static size_t g_inputs_len;
static uint64_t g_seed;
static int g_have_seed;
static char g_config_sha[65];

void lab_add_input(const char *path) {
    char hex[65];
    sha256_file(path, hex);
    size_t add = strlen(path) + 66;
    g_inputs = lab_realloc(g_inputs, g_inputs_len + add + 1);
    g_inputs_len += (size_t)sprintf(g_inputs + g_inputs_len, "%s %s\n", path, hex);
}

const char *lab_inputs(void) { return g_inputs ? g_inputs : ""; }
void lab_set_seed(uint64_t seed) { g_seed = seed; g_have_seed = 1; }

int lab_get_seed(uint64_t *seed) {
    if (g_have_seed) *seed = g_seed;
    return g_have_seed;
}

void lab_set_config_sha256(const char *hex) {
    size_t n = strlen(hex);
    if (n != 64 || strspn(hex, "0123456789abcdef") != 64)
        lab_die("--config-sha256: expected 64 lowercase hex digits, found '%s'", hex);
    memcpy(g_config_sha, hex, 65);
}

const char *lab_config_sha256(void) { return g_config_sha; }
