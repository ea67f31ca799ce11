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
           "  --workers N       candidates at once (default 1)\n"
           "  --cpu S           CPU seconds (default %g)\n"
           "  --wall S          wall-clock seconds (default %g)\n"
           "  --mem SIZE        address space, e.g. 512M (default %lluM)\n"
           "  --nproc N         processes (default %llu)\n"
           "  --fsize SIZE      largest file written (default %lluM)\n"
           "  --nofile N        open files (default %llu)\n"
           "  --output-cap SIZE stdout and stderr bytes kept, each (default %lluK)\n"
           "  --python PATH     interpreter (default /usr/bin/python3)\n"
           "  --help            this text\n",
           d.cpu_s, d.wall_s, (unsigned long long)(d.mem_bytes >> 20), (unsigned long long)d.nproc,
           (unsigned long long)(d.fsize_bytes >> 20), (unsigned long long)d.nofile,
           (unsigned long long)(d.output_cap >> 10));
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
        else if (!strcmp(a, "--cpu")) lim.cpu_s = lab_parse_double(a, v, 1, 86400);
        else if (!strcmp(a, "--wall")) lim.wall_s = lab_parse_double(a, v, 0.01, 86400);
        else if (!strcmp(a, "--mem")) lim.mem_bytes = lab_parse_size(a, v);
        else if (!strcmp(a, "--nproc")) lim.nproc = (uint64_t)lab_parse_int(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--fsize")) lim.fsize_bytes = lab_parse_size(a, v);
        else if (!strcmp(a, "--nofile")) lim.nofile = (uint64_t)lab_parse_int(a, v, 4, 1 << 20);
        else if (!strcmp(a, "--output-cap")) lim.output_cap = lab_parse_size(a, v);
        else if (!strcmp(a, "--python")) lim.python = v;
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
    h5_attr_f64(w.file, "cpu_limit_s", lim.cpu_s);
    h5_attr_f64(w.file, "wall_limit_s", lim.wall_s);
    h5_attr_i64(w.file, "mem_limit_bytes", (int64_t)lim.mem_bytes);
    h5_attr_i64(w.file, "nproc_limit", (int64_t)lim.nproc);
    h5_attr_i64(w.file, "fsize_limit_bytes", (int64_t)lim.fsize_bytes);
    h5_attr_i64(w.file, "nofile_limit", (int64_t)lim.nofile);
    h5_attr_i64(w.file, "output_cap_bytes", (int64_t)lim.output_cap);
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
