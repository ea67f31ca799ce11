// sandbox: one python3 process per candidate under rlimits, its own uid (as root), a new network
// namespace, a fresh temp dir and a wall clock. See sandbox.h for what each run gets and why.
#define _GNU_SOURCE
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "h5io.h"

SandboxLimits sandbox_default_limits(void) {
    return (SandboxLimits){.cpu_s = 5, .wall_s = 10, .mem_bytes = 1ull << 30, .nproc = 32,
                           .fsize_bytes = 16ull << 20, .nofile = 64, .output_cap = 64 << 10};
}

int sandbox_limits_flag(SandboxLimits *lim, const char *f, const char *v) {
    if (!strcmp(f, "--cpu")) lim->cpu_s = lab_parse_double(f, v, 1, 86400);
    else if (!strcmp(f, "--wall")) lim->wall_s = lab_parse_double(f, v, 0.01, 86400);
    else if (!strcmp(f, "--mem")) lim->mem_bytes = lab_parse_size(f, v);
    else if (!strcmp(f, "--nproc")) lim->nproc = (uint64_t)lab_parse_int(f, v, 1, 1 << 20);
    else if (!strcmp(f, "--fsize")) lim->fsize_bytes = lab_parse_size(f, v);
    else if (!strcmp(f, "--nofile")) lim->nofile = (uint64_t)lab_parse_int(f, v, 4, 1 << 20);
    else if (!strcmp(f, "--output-cap")) lim->output_cap = lab_parse_size(f, v);
    else if (!strcmp(f, "--python")) lim->python = v;
    else return 0;
    return 1;
}

void sandbox_limits_help(const SandboxLimits *d, FILE *out) {
    fprintf(out,
            "  --cpu S           CPU seconds (default %g)\n"
            "  --wall S          wall-clock seconds (default %g)\n"
            "  --mem SIZE        address space, e.g. 512M (default %lluM)\n"
            "  --nproc N         processes (default %llu)\n"
            "  --fsize SIZE      largest file written (default %lluM)\n"
            "  --nofile N        open files (default %llu)\n"
            "  --output-cap SIZE stdout and stderr bytes kept, each (default %lluK)\n"
            "  --python PATH     interpreter (default /usr/bin/python3)\n",
            d->cpu_s, d->wall_s, (unsigned long long)(d->mem_bytes >> 20), (unsigned long long)d->nproc,
            (unsigned long long)(d->fsize_bytes >> 20), (unsigned long long)d->nofile,
            (unsigned long long)(d->output_cap >> 10));
}

void sandbox_limits_attrs(const SandboxLimits *lim, int64_t obj) {
    h5_attr_f64(obj, "cpu_limit_s", lim->cpu_s);
    h5_attr_f64(obj, "wall_limit_s", lim->wall_s);
    h5_attr_i64(obj, "mem_limit_bytes", (int64_t)lim->mem_bytes);
    h5_attr_i64(obj, "nproc_limit", (int64_t)lim->nproc);
    h5_attr_i64(obj, "fsize_limit_bytes", (int64_t)lim->fsize_bytes);
    h5_attr_i64(obj, "nofile_limit", (int64_t)lim->nofile);
    h5_attr_i64(obj, "output_cap_bytes", (int64_t)lim->output_cap);
}

const char *sandbox_status_name(SandboxStatus s) {
    static const char *names[] = {"passed", "failed", "timeout", "error"};
    return names[s];
}

void sandbox_result_free(SandboxResult *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

// ---------------------------------------------------------------------------------------------
// uid slots: as root every worker runs its candidates as a uid of its own. The claim is a bound
// abstract unix socket: unique on the machine, released by the kernel when the holder dies, and it
// leaves no file behind.

typedef struct { unsigned uid; int fd; } UidSlot;

static UidSlot slot_claim(void) {
    if (geteuid() != 0) return (UidSlot){.uid = getuid(), .fd = -1};
    for (unsigned k = 0; k < SANDBOX_UID_SLOTS; k++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) lab_die("sandbox: cannot create a unix socket: %s", strerror(errno));
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "codelm-lab-sandbox-uid-%u", SANDBOX_UID_BASE + k);
        if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) == 0)
            return (UidSlot){.uid = SANDBOX_UID_BASE + k, .fd = fd};
        close(fd);
    }
    lab_die("sandbox: expected a free uid slot in %u..%u, found all %u taken", SANDBOX_UID_BASE,
            SANDBOX_UID_BASE + SANDBOX_UID_SLOTS - 1, SANDBOX_UID_SLOTS);
}

static void slot_release(UidSlot *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

int sandbox_uid_alive(unsigned uid) {
    DIR *d = opendir("/proc");
    if (!d) lab_die("sandbox: cannot list /proc: %s", strerror(errno));
    int alive = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%s", e->d_name);
        if (stat(path, &st) != 0 || st.st_uid != uid) continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        const char *paren = strrchr(buf, ')');  // "pid (comm) S ...": comm may hold anything
        if (paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X') alive++;
    }
    closedir(d);
    return alive;
}

// Kills every process of `uid` (as root only: a helper takes the uid and signals all it may, which
// are that uid's processes), until /proc shows none alive or ~2 s passed. kill(-1, 0) cannot tell
// when they are gone: it answers 0 here even for a uid that has no process at all.
static void sweep_uid(unsigned uid) {
    if (geteuid() != 0) return;
    for (int i = 0; i < 400 && sandbox_uid_alive(uid); i++) {
        pid_t h = fork();
        if (h < 0) lab_die("sandbox: cannot fork the sweep helper: %s", strerror(errno));
        if (h == 0) {
            if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) _exit(1);
            kill(-1, SIGKILL);
            _exit(0);
        }
        while (waitpid(h, NULL, 0) < 0 && errno == EINTR) {}
        usleep(5000);
    }
}

// ---------------------------------------------------------------------------------------------
// temp dirs

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tree(const char *dir) {
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        lab_warn("sandbox: could not remove all of %s: %s", dir, strerror(errno));
}

static void write_program(const char *path, const char *text, unsigned uid) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) lab_die("sandbox: cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) lab_die("sandbox: cannot write %s: %s", path, strerror(errno));
        off += (size_t)w;
    }
    if (geteuid() == 0 && fchown(fd, uid, uid) != 0) lab_die("sandbox: cannot chown %s: %s", path, strerror(errno));
    close(fd);
}

// ---------------------------------------------------------------------------------------------
// the child: everything it calls between fork and exec is async-signal-safe (the parent may have
// other threads), so every string it needs is made before the fork.

typedef struct {
    const char *dir;
    char *argv[6];
    char *envp[7];
    char uid_map[64], gid_map[64];
    unsigned uid;
    int root;
    const SandboxLimits *lim;
} ChildPlan;

static int write_proc(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = (ssize_t)strlen(text);
    int ok = write(fd, text, (size_t)n) == n;
    close(fd);
    return ok ? 0 : -1;
}

static int set_limit(int res, uint64_t soft, uint64_t hard) {
    struct rlimit r = {.rlim_cur = soft, .rlim_max = hard};
    return setrlimit(res, &r);
}

// The status pipe carries 'N' (network namespace) or 'n' (none) just before exec, or 'F' and an
// errno when a step fails; exec closes it, so the parent reads up to end of file.
static _Noreturn void child_fail(int status_fd, int err) {
    char rec[1 + sizeof(int)] = {'F'};
    memcpy(rec + 1, &err, sizeof err);
    if (write(status_fd, rec, sizeof rec) < 0) {}
    _exit(127);
}

static _Noreturn void child_main(const ChildPlan *p, int out_fd, int err_fd, int status_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    setsid();
    int in_fd = open("/dev/null", O_RDONLY);
    if (in_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) child_fail(status_fd, errno);
    // every descriptor the process inherited (other workers' pipes included) closes at exec
    syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);

    char net = 'n';
    int pidns = 0;
    if (p->root) {
        if (unshare(CLONE_NEWNET) == 0) net = 'N';
        pidns = unshare(CLONE_NEWPID) == 0;
    } else if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID) == 0) {
        if (write_proc("/proc/self/setgroups", "deny") || write_proc("/proc/self/uid_map", p->uid_map) ||
            write_proc("/proc/self/gid_map", p->gid_map))
            child_fail(status_fd, errno);
        net = 'N';
        pidns = 1;
    }
    // In a new pid namespace python is its init: when it ends, the kernel kills and reaps everything
    // else in the namespace, so nothing it started outlives it and no zombie keeps counting against
    // RLIMIT_NPROC. This process stays outside, waits for it and ends the same way.
    if (pidns) {
        pid_t init = fork();
        if (init < 0) child_fail(status_fd, errno);
        if (init > 0) {
            close(status_fd);
            int st = 0;
            while (waitpid(init, &st, 0) < 0)
                if (errno != EINTR) _exit(127);
            if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
            prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // re-raising SIGXCPU or SIGSEGV must not dump a core here
            struct sigaction dfl = {.sa_handler = SIG_DFL};
            sigaction(WTERMSIG(st), &dfl, NULL);
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, WTERMSIG(st));
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            kill(getpid(), WTERMSIG(st));
            _exit(128 + WTERMSIG(st));
        }
    }
    if (chdir(p->dir) != 0) child_fail(status_fd, errno);
    const SandboxLimits *l = p->lim;
    uint64_t cpu = (uint64_t)(l->cpu_s + 0.999);
    if (set_limit(RLIMIT_CPU, cpu, cpu + 1) || set_limit(RLIMIT_AS, l->mem_bytes, l->mem_bytes) ||
        set_limit(RLIMIT_NPROC, l->nproc, l->nproc) || set_limit(RLIMIT_FSIZE, l->fsize_bytes, l->fsize_bytes) ||
        set_limit(RLIMIT_NOFILE, l->nofile, l->nofile) || set_limit(RLIMIT_CORE, 0, 0))
        child_fail(status_fd, errno);
    if (p->root && (setgroups(0, NULL) || setresgid(p->uid, p->uid, p->uid) || setresuid(p->uid, p->uid, p->uid)))
        child_fail(status_fd, errno);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // after the uid change, which clears it
    if (write(status_fd, &net, 1) != 1) _exit(127);
    execve(p->argv[0], p->argv, p->envp);
    child_fail(status_fd, errno);
}

// ---------------------------------------------------------------------------------------------
// the parent: capture, wall clock, classification

typedef struct { char *buf; uint64_t kept, total, cap; char tail[1024]; size_t ntail; } Capture;

static void capture_add(Capture *c, const char *data, size_t n) {
    if (c->kept < c->cap) {
        size_t k = n < c->cap - c->kept ? n : (size_t)(c->cap - c->kept);
        memcpy(c->buf + c->kept, data, k);
        c->kept += k;
    }
    c->total += n;
    // the last bytes, wherever the cap cut: the exception line of a traceback is at the end
    if (n >= sizeof c->tail) {
        memcpy(c->tail, data + n - sizeof c->tail, sizeof c->tail);
        c->ntail = sizeof c->tail;
    } else {
        size_t keep = c->ntail + n > sizeof c->tail ? sizeof c->tail - n : c->ntail;
        memmove(c->tail, c->tail + c->ntail - keep, keep);
        memcpy(c->tail + keep, data, n);
        c->ntail = keep + n;
    }
}

// Reads what is there; 0 at end of file.
static int capture_read(Capture *c, int fd) {
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) return 0;
    capture_add(c, buf, (size_t)n);
    return 1;
}

// The exception named on the last non-empty line of stderr ("NameError: name 'x' ..."), or "".
static void last_exception(const Capture *c, char *name, size_t cap) {
    name[0] = '\0';
    size_t end = c->ntail;
    while (end > 0 && (c->tail[end - 1] == '\n' || c->tail[end - 1] == ' ')) end--;
    size_t start = end;
    while (start > 0 && c->tail[start - 1] != '\n') start--;
    size_t k = 0;
    for (size_t i = start; i < end && k + 1 < cap; i++) {
        char ch = c->tail[i];
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' || ch == '.' ||
                 (k > 0 && ch >= '0' && ch <= '9');
        if (!ok) {
            if (ch != ':') k = 0;
            break;
        }
        name[k++] = ch;
    }
    name[k] = '\0';
}

static int tail_has(const Capture *c, const char *needle) {
    return memmem(c->tail, c->ntail, needle, strlen(needle)) != NULL;
}

static void classify(SandboxResult *r, int wstatus, int timed_out, const Capture *err, const SandboxLimits *lim) {
    char exc[64];
    last_exception(err, exc, sizeof exc);
    int memory = !strcmp(exc, "MemoryError") || tail_has(err, "MemoryError") || tail_has(err, "Cannot allocate memory");
    if (timed_out) {
        r->status = SANDBOX_TIMEOUT;
        snprintf(r->reason, sizeof r->reason, "wall timeout %.1f s", lim->wall_s);
    }
    if (WIFEXITED(wstatus)) {
        r->exit_code = WEXITSTATUS(wstatus);
        if (timed_out) return;
        if (r->exit_code == 0) {
            r->status = SANDBOX_PASSED;
            snprintf(r->reason, sizeof r->reason, "exit 0");
        } else if (!strcmp(exc, "AssertionError")) {
            r->status = SANDBOX_FAILED;
            snprintf(r->reason, sizeof r->reason, "exit %d: AssertionError", r->exit_code);
        } else {
            r->status = SANDBOX_ERROR;
            if (memory) snprintf(r->reason, sizeof r->reason, "memory limit (MemoryError)");
            else if (tail_has(err, "File too large"))  // python ignores SIGXFSZ: the write fails, EFBIG
                snprintf(r->reason, sizeof r->reason, "file size limit (%s)", exc[0] ? exc : "EFBIG");
            else if (exc[0]) snprintf(r->reason, sizeof r->reason, "exit %d: %s", r->exit_code, exc);
            else snprintf(r->reason, sizeof r->reason, "exit %d", r->exit_code);
        }
        return;
    }
    r->exit_code = -1;
    r->signal = WTERMSIG(wstatus);
    if (timed_out) return;
    r->status = SANDBOX_ERROR;
    int sig = r->signal;
    const char *abbrev = sigabbrev_np(sig);
    if (sig == SIGXCPU || (sig == SIGKILL && r->cpu_s >= lim->cpu_s))
        snprintf(r->reason, sizeof r->reason, "CPU limit (SIG%s)", abbrev ? abbrev : "?");
    else if (sig == SIGXFSZ) snprintf(r->reason, sizeof r->reason, "file size limit (SIGXFSZ)");
    else if (memory) snprintf(r->reason, sizeof r->reason, "memory limit (SIG%s)", abbrev ? abbrev : "?");
    else snprintf(r->reason, sizeof r->reason, "signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
}

static SandboxResult run_as(const char *text, const SandboxLimits *lim, unsigned uid) {
    SandboxResult r = {.status = SANDBOX_ERROR, .uid = uid};
    int root = geteuid() == 0;
    const char *base = lim->tmp_base ? lim->tmp_base : getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char dir[4096], prog[4200], home[4200], tmpdir[4200];
    snprintf(dir, sizeof dir, "%.4000s/lab-sandbox.XXXXXX", base);
    if (!mkdtemp(dir)) lab_die("sandbox: cannot create a directory in %s: %s", base, strerror(errno));
    if (root && chown(dir, uid, uid) != 0) lab_die("sandbox: cannot chown %s: %s", dir, strerror(errno));
    snprintf(prog, sizeof prog, "%s/candidate.py", dir);
    write_program(prog, text, uid);

    ChildPlan p = {.dir = dir, .uid = uid, .root = root, .lim = lim};
    p.argv[0] = (char *)(lim->python ? lim->python : "/usr/bin/python3");
    p.argv[1] = "-I";   // isolated: no PYTHON* variables, no user site, no script dir on sys.path
    p.argv[2] = "-S";   // no site module
    p.argv[3] = "-B";
    p.argv[4] = "candidate.py";
    snprintf(home, sizeof home, "HOME=%s", dir);
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", dir);
    p.envp[0] = "PATH=/usr/bin:/bin";
    p.envp[1] = home;
    p.envp[2] = tmpdir;
    p.envp[3] = "LANG=C.UTF-8";
    p.envp[4] = "PYTHONDONTWRITEBYTECODE=1";
    snprintf(p.uid_map, sizeof p.uid_map, "%u %u 1", (unsigned)getuid(), (unsigned)getuid());
    snprintf(p.gid_map, sizeof p.gid_map, "%u %u 1", (unsigned)getgid(), (unsigned)getgid());

    Capture out = {.buf = lab_malloc(lim->output_cap + 1), .cap = lim->output_cap};
    Capture err = {.buf = lab_malloc(lim->output_cap + 1), .cap = lim->output_cap};
    int po[2], pe[2], ps[2];
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || pipe2(ps, O_CLOEXEC))
        lab_die("sandbox: cannot create a pipe: %s", strerror(errno));
    double t0 = lab_now();
    pid_t pid = fork();
    if (pid < 0) lab_die("sandbox: cannot fork: %s", strerror(errno));
    if (pid == 0) child_main(&p, po[1], pe[1], ps[1]);
    close(po[1]);
    close(pe[1]);
    close(ps[1]);

    char st[16];
    size_t nst = 0;
    for (ssize_t k; nst < sizeof st && (k = read(ps[0], st + nst, sizeof st - nst)) != 0;)
        if (k > 0) nst += (size_t)k;
        else if (errno != EINTR) break;
    close(ps[0]);
    int exec_errno = 0;
    r.netns = nst > 0 && st[0] == 'N';
    const char *fail = memchr(st, 'F', nst);
    if (fail) exec_errno = fail + 1 + sizeof(int) <= st + nst ? (memcpy(&exec_errno, fail + 1, sizeof(int)), exec_errno) : EIO;
    if (nst == 0) exec_errno = EIO;

    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) lab_die("sandbox: pidfd_open failed: %s", strerror(errno));
    int open_o = 1, open_e = 1, exited = 0, timed_out = 0, wstatus = 0;
    struct rusage ru = {0};
    double deadline = t0 + lim->wall_s, drain_deadline = 0;
    while (!exited || open_o || open_e) {
        struct pollfd f[3] = {{.fd = open_o ? po[0] : -1, .events = POLLIN},
                              {.fd = open_e ? pe[0] : -1, .events = POLLIN},
                              {.fd = exited ? -1 : pidfd, .events = POLLIN}};
        double now = lab_now(), until = exited ? drain_deadline : deadline;
        int ms = until > now ? (int)((until - now) * 1000) + 1 : 0;
        int k = poll(f, 3, ms);
        if (k < 0 && errno != EINTR) lab_die("sandbox: poll failed: %s", strerror(errno));
        if (k > 0 && (f[0].revents & (POLLIN | POLLHUP | POLLERR))) open_o = capture_read(&out, po[0]);
        if (k > 0 && (f[1].revents & (POLLIN | POLLHUP | POLLERR))) open_e = capture_read(&err, pe[0]);
        if (k > 0 && (f[2].revents & POLLIN)) {
            while (wait4(pid, &wstatus, 0, &ru) < 0 && errno == EINTR) {}
            exited = 1;
            r.wall_s = lab_now() - t0;
            // what the candidate left behind: its group, then (as root) anything of its uid
            kill(-pid, SIGKILL);
            sweep_uid(uid);
            drain_deadline = lab_now() + 1.0;
        }
        if (!exited && lab_now() >= deadline && !timed_out) {
            timed_out = 1;
            kill(-pid, SIGKILL);
        }
        // not root, a process that left the group may hold the pipes open: stop reading after 1 s
        if (exited && lab_now() >= drain_deadline) open_o = open_e = 0;
    }
    close(pidfd);
    close(po[0]);
    close(pe[0]);
    remove_tree(dir);

    r.cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    out.buf[out.kept] = '\0';
    err.buf[err.kept] = '\0';
    r.out = out.buf;
    r.err = err.buf;
    r.out_bytes = out.total;
    r.err_bytes = err.total;
    if (exec_errno) {
        r.status = SANDBOX_ERROR;
        r.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
        snprintf(r.reason, sizeof r.reason, "cannot start %.30s: %.40s", p.argv[0], strerror(exec_errno));
        return r;
    }
    classify(&r, wstatus, timed_out, &err, lim);
    return r;
}

SandboxResult sandbox_run(const char *program_text, const SandboxLimits *lim) {
    UidSlot s = slot_claim();
    SandboxResult r = run_as(program_text, lim, s.uid);
    slot_release(&s);
    return r;
}

// ---------------------------------------------------------------------------------------------
// many at once

typedef struct {
    const char *const *programs;
    size_t n, next, done;
    const SandboxLimits *lim;
    SandboxResult *out;
    void (*done_cb)(size_t, void *);
    void *ctx;
    pthread_mutex_t mu;
} Pool;

static void *pool_worker(void *arg) {
    Pool *p = arg;
    UidSlot s = slot_claim();
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t i = p->next < p->n ? p->next++ : p->n;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n) break;
        p->out[i] = run_as(p->programs[i], p->lim, s.uid);
        pthread_mutex_lock(&p->mu);
        p->done++;
        if (p->done_cb) p->done_cb(p->done, p->ctx);
        pthread_mutex_unlock(&p->mu);
    }
    slot_release(&s);
    return NULL;
}

void sandbox_run_many(const char *const *programs, size_t n, int workers, const SandboxLimits *lim,
                      SandboxResult *out, void (*done_cb)(size_t done, void *ctx), void *ctx) {
    if (workers < 1) workers = 1;
    if ((size_t)workers > n) workers = n ? (int)n : 1;
    Pool p = {.programs = programs, .n = n, .lim = lim, .out = out, .done_cb = done_cb, .ctx = ctx};
    pthread_mutex_init(&p.mu, NULL);
    pthread_t *t = lab_malloc(sizeof *t * (size_t)workers);
    for (int w = 0; w < workers; w++)
        if (pthread_create(&t[w], NULL, pool_worker, &p) != 0) lab_die("sandbox: cannot start worker thread %d", w);
    for (int w = 0; w < workers; w++) pthread_join(t[w], NULL);
    free(t);
    pthread_mutex_destroy(&p.mu);
}
