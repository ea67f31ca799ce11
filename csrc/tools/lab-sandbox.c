// lab-sandbox: run Python files as untrusted candidates (see src/sandbox.h), write a results table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "h5io.h"
#include "sandbox.h"

static void usage(void) {
    SandboxLimits d = sandbox_default_limits();
    printf("usage: lab-sandbox [flags] --out RESULTS.h5 FILE.py...\n"
           "\n"
           "Runs each FILE.py as its own python3 process in a sandbox (fresh temp dir, minimal\n"
           "environment, rlimits, a new network namespace where permitted, its own uid as root, a\n"
           "wall clock that kills the process group) and writes one row per file, in the order\n"
           "given, to the table `results` of RESULTS.h5 (schema codelm-lab/sandbox/1), and a TSV\n"
           "summary (index, status, reason, wall_s, network, file) on stdout.\n"
           "status: passed (exit 0), failed (AssertionError), timeout (wall clock), error (else).\n"
           "\n"
           "  --out PATH        results file (required)\n"
           "  --workers N       candidates at once (default 1)\n");
    sandbox_limits_help(&d, stdout);
    printf("  --help            this text\n");
}

static char *read_text(const char *path) {
    size_t n;
    char *buf = lab_read_file(path, &n);
    if (memchr(buf, '\0', n)) lab_die("%s: expected Python text, found a NUL byte", path);
    return buf;
}

static void on_done(size_t done, void *ctx) { progress_update(ctx, done, NULL); }

int main(int argc, char **argv) {
    lab_init("lab-sandbox", argc, argv);
    SandboxLimits lim = sandbox_default_limits();
    const char *out_path = NULL;
    int workers = 1;
    const char **files = lab_malloc(sizeof *files * (size_t)argc);
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (a[0] != '-' || a[1] != '-') { files[n++] = a; continue; }
        if (i + 1 >= argc) lab_die("%s: expected a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--workers")) workers = (int)lab_parse_int(a, v, 1, 1024);
        else if (sandbox_limits_flag(&lim, a, v)) continue;
        else lab_die("unknown flag '%s' (see --help)", a);
    }
    if (!out_path) lab_die("expected --out RESULTS.h5 (see --help)");
    if (n == 0) lab_die("expected at least one FILE.py (see --help)");

    char **texts = lab_malloc(sizeof *texts * n);
    for (size_t i = 0; i < n; i++) {
        texts[i] = read_text(files[i]);
        lab_add_input(files[i]);
    }
    SandboxResult *res = lab_calloc(n, sizeof *res);
    Progress prog;
    progress_start(&prog, "sandbox", n);
    sandbox_run_many((const char *const *)texts, n, workers, &lim, res, on_done, &prog);

    int64_t *index = lab_malloc(sizeof(int64_t) * n);
    int32_t *code = lab_malloc(sizeof(int32_t) * n), *sig = lab_malloc(sizeof(int32_t) * n);
    double *wall = lab_malloc(sizeof(double) * n), *cpu = lab_malloc(sizeof(double) * n);
    uint64_t *ob = lab_malloc(sizeof(uint64_t) * n), *eb = lab_malloc(sizeof(uint64_t) * n);
    const char **status = lab_malloc(sizeof(char *) * n), **reason = lab_malloc(sizeof(char *) * n),
               **net = lab_malloc(sizeof(char *) * n);
    size_t counts[4] = {0};
    for (size_t i = 0; i < n; i++) {
        index[i] = (int64_t)i;
        status[i] = sandbox_status_name(res[i].status);
        reason[i] = res[i].reason;
        net[i] = res[i].netns ? "netns" : "none";
        code[i] = res[i].exit_code;
        sig[i] = res[i].signal;
        wall[i] = res[i].wall_s;
        cpu[i] = res[i].cpu_s;
        ob[i] = res[i].out_bytes;
        eb[i] = res[i].err_bytes;
        counts[res[i].status]++;
    }
    char summary[160];
    snprintf(summary, sizeof summary, "%zu passed, %zu failed, %zu timeout, %zu error", counts[0], counts[1],
             counts[2], counts[3]);
    progress_end(&prog, summary);

    H5Writer w = h5_create(out_path, "codelm-lab/sandbox/1");
    H5Column cols[] = {
        {"index", LAB_I64, index, NULL},          {"file", LAB_STR, files, NULL},
        {"status", LAB_STR, status, NULL},        {"reason", LAB_STR, reason, NULL},
        {"exit_code", LAB_I32, code, NULL},       {"signal", LAB_I32, sig, NULL},
        {"wall_s", LAB_F64, wall, "s"},           {"cpu_s", LAB_F64, cpu, "s"},
        {"network", LAB_STR, net, NULL},          {"stdout_bytes", LAB_U64, ob, "bytes"},
        {"stderr_bytes", LAB_U64, eb, "bytes"},
    };
    h5_table_write(w.file, "results", n, (int)(sizeof cols / sizeof cols[0]), cols);
    sandbox_limits_attrs(&lim, w.file);
    h5_attr_i64(w.file, "workers", workers);
    h5_finish(&w);

    printf("index\tstatus\treason\twall_s\tnetwork\tfile\n");
    for (size_t i = 0; i < n; i++)
        printf("%zu\t%s\t%s\t%.3f\t%s\t%s\n", i, status[i], reason[i], wall[i], net[i], files[i]);
    fprintf(stderr, "lab-sandbox: %s -> %s\n", summary, out_path);
    for (size_t i = 0; i < n; i++) {
        sandbox_result_free(&res[i]);
        free(texts[i]);
    }
    free(res); free(texts); free(files); free(index); free(code); free(sig); free(wall); free(cpu);
    free(ob); free(eb); free(status); free(reason); free(net);
    return 0;
}
