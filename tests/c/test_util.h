// What the C tests share: CHECK and the failure count, a scratch directory, running code that must
// die in a child process, reading a file whole, finite-difference gradient checks, and the closing
// summary line. Header-only, every function static inline: each test is one executable and uses
// only some of them (an unused static inline function draws no warning).
// Call lab_init() first: the scratch directory and the summary are named after lab_prog().
#pragma once
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static int test_failures;
#define CHECK(cond, ...) do { if (!(cond)) { test_failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

// ---------------------------------------------------------------------------------------------
// scratch directory

static char test_dir_path[4096];

// A fresh directory $LAB_TEST_TMP/<prog>.XXXXXX (/tmp when LAB_TEST_TMP is unset or empty), made on
// first use; test_summary() removes it when every check passed and leaves it for inspection otherwise.
static inline const char *test_tmp_dir(void) {
    if (!test_dir_path[0]) {
        const char *base = getenv("LAB_TEST_TMP");
        if (!base || !*base) base = "/tmp";
        mkdir(base, 0755);
        snprintf(test_dir_path, sizeof test_dir_path, "%.3000s/%s.XXXXXX", base, lab_prog());
        if (!mkdtemp(test_dir_path)) lab_die("cannot create the directory %s: %s", test_dir_path, strerror(errno));
    }
    return test_dir_path;
}

// NAME inside the scratch directory; eight calls may be in use at once.
static inline char *test_path(const char *name) {
    static char buf[8][4200];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmp_dir(), name);
    return buf[k];
}

// rm -rf PATH, not following links; 0 when all of it is gone.
static inline int test_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -1;
        struct dirent *e;
        char sub[4400];
        int failed = 0;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                failed |= (size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= sizeof sub ||
                          test_remove_tree(sub) != 0;
        closedir(d);
        return failed ? -1 : rmdir(path);
    }
    return unlink(path);
}

// ---------------------------------------------------------------------------------------------
// errors: lab_die exits, so code that must fail runs in a child process

// Runs fn(arg) in a child with stderr captured; returns its exit status and the first stderr line
// in err, and checks there was at most one.
static inline int test_run_child(void (*fn)(const char *), const char *arg, char *err, size_t cap) {
    char errpath[4200];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", test_tmp_dir());
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(errpath, "w", stderr)) _exit(99);
        fn(arg);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    FILE *f = fopen(errpath, "r");
    err[0] = '\0';
    if (f) {
        if (!fgets(err, (int)cap, f)) err[0] = '\0';
        int extra = fgetc(f);
        CHECK(extra == EOF, "expected one error line, found more after: %s", err);
        fclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// fn(arg) must exit with status 1 and one stderr line that contains want and names arg (a file).
static inline void test_expect_error(void (*fn)(const char *), const char *arg, const char *want, const char *what) {
    char err[1024];
    int code = test_run_child(fn, arg, err, sizeof err);
    CHECK(code == 1, "%s: expected exit status 1, found %d", what, code);
    CHECK(strstr(err, want) != NULL, "%s: expected an error containing '%s', found '%s'", what, want, err);
    CHECK(strstr(err, arg) != NULL, "%s: expected the error to name %s, found '%s'", what, arg, err);
}

// ---------------------------------------------------------------------------------------------
// files

// The whole file, with one spare byte after it; dies if it cannot be read.
static inline char *test_read_file(const char *path, size_t *n) {
    FILE *f = lab_fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = lab_malloc(*n + 1);
    if (fread(buf, 1, *n, f) != *n) lab_die("short read of %s", path);
    fclose(f);
    return buf;
}

// ---------------------------------------------------------------------------------------------
// comparing float code with a double reference

// max |got - ref| over n values; *max_ref gets max |ref|, for a tolerance relative to the values.
static inline double test_max_abs_error(const float *got, const double *ref, size_t n, double *max_ref) {
    double maxerr = 0;
    *max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        *max_ref = fmax(*max_ref, fabs(ref[i]));
        maxerr = fmax(maxerr, fabs(got[i] - ref[i]));
    }
    return maxerr;
}

// grad (n) against central differences (step eps) of loss(ctx) in x (n doubles that loss reads):
// returns max |grad - fd| / max |fd| (the absolute error when every fd is 0); *max_fd gets max |fd|.
static inline double test_fd_grad_error(double (*loss)(void *ctx), void *ctx, double *x, const float *grad,
                                        size_t n, double eps, double *max_fd) {
    double maxdiff = 0;
    *max_fd = 0;
    for (size_t i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + eps;
        double plus = loss(ctx);
        x[i] = save - eps;
        double minus = loss(ctx);
        x[i] = save;
        double fd = (plus - minus) / (2 * eps);
        *max_fd = fmax(*max_fd, fabs(fd));
        maxdiff = fmax(maxdiff, fabs(grad[i] - fd));
    }
    return *max_fd > 0 ? maxdiff / *max_fd : maxdiff;
}

// ---------------------------------------------------------------------------------------------
// the end

// Prints "<prog>: ok" or "<prog>: FAILED", removes the scratch directory when all passed, and
// returns main's exit status.
static inline int test_summary(void) {
    if (!test_failures && test_dir_path[0] && test_remove_tree(test_dir_path) != 0)
        printf("could not remove %s\n", test_dir_path);
    printf("%s: %s\n", lab_prog(), test_failures ? "FAILED" : "ok");
    return test_failures != 0;
}
