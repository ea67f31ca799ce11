// sandbox: run untrusted generated Python, one python3 process per candidate, and classify how it
// ended. What each run gets:
// - fork + setsid + exec of `python3 -I -S -B candidate.py` in a fresh temporary directory (mode
//   0700, owned by the run's uid) that is removed afterwards;
// - an environment of exactly PATH=/usr/bin:/bin, HOME=TMPDIR=<the temp dir>, LANG=C.UTF-8,
//   PYTHONDONTWRITEBYTECODE=1; every other descriptor closed;
// - rlimits: CPU seconds, address space, processes, file size, open files, no core files;
// - a new network namespace (only a down loopback: no address is reachable). As root that is
//   unshare(CLONE_NEWNET); otherwise unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWPID) with the own
//   uid mapped. Where neither is permitted the run goes on and records network "none";
// - a new pid namespace where permitted, python its init: when python ends, the kernel kills and
//   reaps whatever it started (a forked process that called setsid included), so no zombie keeps
//   counting against RLIMIT_NPROC. The forked child stays outside, waits and ends the same way;
// - as root, a uid of its own: root is exempt from RLIMIT_NPROC, so the candidate runs as an
//   unprivileged uid that no account uses (SANDBOX_UID_BASE + k, one per worker, claimed through an
//   abstract unix socket so that concurrent sandboxes never share one). RLIMIT_NPROC then bounds a
//   fork bomb, the candidate cannot touch root's files, and after the run every process of that uid
//   is killed (kill(-1) from a helper running as it), including ones that left the process group;
// - a wall-clock limit: SIGKILL to the whole process group, then the uid sweep above;
// - stdout and stderr captured up to output_cap bytes each; the rest is read, counted, dropped.
// Not root: no uid switch, so the process group and the pid namespace are the containment and
// RLIMIT_NPROC counts every process of the calling user.
// Not isolated: the file system (the candidate reads what "others" may read, and sees the host's
// /proc), CPU time of other candidates, and SysV IPC.
//
// HDF5 schema "codelm-lab/sandbox/1" (written by lab-sandbox): a table `results`, one row per
// candidate in input order, columns
//   index (i64), file (str), status (str: passed | failed | timeout | error),
//   reason (str: "exit 0", "AssertionError", "NameError", "wall timeout 3.0 s", "CPU limit",
//   "memory limit (MemoryError)", "file size limit", "signal 11 (SIGSEGV)", ...),
//   exit_code (i32, -1 when killed by a signal), signal (i32, 0 when it exited),
//   wall_s (f64, s), cpu_s (f64, s: user+system of the candidate),
//   network (str: "netns" | "none"), stdout_bytes (u64, bytes), stderr_bytes (u64, bytes: totals
//   written, captured or not); and root attributes cpu_limit_s, wall_limit_s, mem_limit_bytes,
//   nproc_limit, fsize_limit_bytes, nofile_limit, output_cap_bytes, workers.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SANDBOX_UID_BASE 2140000000u   // far above any account or systemd's dynamic users
#define SANDBOX_UID_SLOTS 4096u

typedef struct {
    double cpu_s;           // RLIMIT_CPU (soft; the hard limit is one second more)
    double wall_s;          // wall clock, then SIGKILL to the process group
    uint64_t mem_bytes;     // RLIMIT_AS
    uint64_t nproc;         // RLIMIT_NPROC
    uint64_t fsize_bytes;   // RLIMIT_FSIZE
    uint64_t nofile;        // RLIMIT_NOFILE
    uint64_t output_cap;    // bytes kept of stdout and of stderr, each
    const char *python;     // interpreter; NULL: /usr/bin/python3
    const char *tmp_base;   // where temp dirs go; NULL: $TMPDIR or /tmp (must be searchable by all)
} SandboxLimits;

// cpu 5 s, wall 10 s, 1 GiB, 32 processes, 16 MiB files, 64 files, 64 KiB output
SandboxLimits sandbox_default_limits(void);
// The limit flags tools share: --cpu S, --wall S, --mem SIZE, --nproc N, --fsize SIZE, --nofile N,
// --output-cap SIZE, --python PATH. Returns 1 when flag is one of them (value parsed into lim, dying
// on a bad value), 0 otherwise.
int sandbox_limits_flag(SandboxLimits *lim, const char *flag, const char *value);
// The help lines for those flags, with lim's values as the defaults.
void sandbox_limits_help(const SandboxLimits *lim, FILE *out);
// Records the limits as attributes of obj (an HDF5 file or group): cpu_limit_s, wall_limit_s,
// mem_limit_bytes, nproc_limit, fsize_limit_bytes, nofile_limit, output_cap_bytes.
void sandbox_limits_attrs(const SandboxLimits *lim, int64_t obj);

typedef enum { SANDBOX_PASSED, SANDBOX_FAILED, SANDBOX_TIMEOUT, SANDBOX_ERROR } SandboxStatus;
const char *sandbox_status_name(SandboxStatus s);   // "passed", ...

typedef struct {
    SandboxStatus status;
    char reason[96];
    int exit_code;          // -1 when killed by a signal
    int signal;             // 0 when it exited
    double wall_s, cpu_s;
    int netns;              // 1 when a new network namespace was in effect
    char *out, *err;        // captured text (NUL-terminated, at most output_cap bytes each)
    uint64_t out_bytes, err_bytes;   // totals written
    unsigned uid;           // the uid the candidate ran as
} SandboxResult;

// Runs one candidate with the first free uid slot. Dies only on failures of the machinery (no temp
// dir, fork fails); anything the candidate does ends in the result.
SandboxResult sandbox_run(const char *program_text, const SandboxLimits *lim);
// Runs n candidates, `workers` at a time (each worker a thread with a uid of its own); out[i] is the
// result of programs[i], whatever order they finished in. done_cb (may be NULL) is called after
// each finishes, from the worker threads one at a time, with the count finished so far.
void sandbox_run_many(const char *const *programs, size_t n, int workers, const SandboxLimits *lim,
                      SandboxResult *out, void (*done_cb)(size_t done, void *ctx), void *ctx);
void sandbox_result_free(SandboxResult *r);
// Processes of uid that are alive (not zombies), from /proc: tests check that none is left.
int sandbox_uid_alive(unsigned uid);
