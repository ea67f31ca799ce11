// sandbox: hostile candidates (endless loop, escaped process, memory bomb, fork bomb, huge file,
// deleting a file outside, network, reading the parent's environment, flooding output) are each
// classified and contained; after every run nothing outside changed: the canary file is intact, no
// temp dir is left, no process of the run's uid (or of its process group) is alive.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include "sandbox.h"
#include "test_util.h"

static char base_dir[4200], canary[4200];
static const char canary_text[] = "canary: must survive every candidate\n";

// A process is gone when /proc has no entry for it or it is a zombie waiting for its reaper.
static int pid_alive(long pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

// What every test asserts after a run: nothing outside the sandbox changed.
static void check_contained(const SandboxResult *r, const char *what) {
    CHECK(dir_entries(base_dir) == 0, "%s: expected no temp dir left in %s, found %d entries", what, base_dir,
          dir_entries(base_dir));
    size_t n = 0;
    char *text = access(canary, F_OK) == 0 ? test_read_file(canary, &n) : NULL;
    CHECK(text && n == strlen(canary_text) && !memcmp(text, canary_text, n), "%s: canary %s changed or gone", what, canary);
    free(text);
    if (geteuid() == 0) {
        CHECK(r->uid >= SANDBOX_UID_BASE, "%s: expected a sandbox uid as root, found %u", what, r->uid);
        CHECK(sandbox_uid_alive(r->uid) == 0, "%s: expected no process of uid %u left, found %d", what, r->uid,
              sandbox_uid_alive(r->uid));
    }
}

static SandboxLimits test_limits(void) {
    SandboxLimits l = sandbox_default_limits();
    // Generous time limits: a loaded CI machine must not turn another limit's case into a
    // timeout. The tests of the wall clock set their own.
    l.cpu_s = 10;
    l.wall_s = 30;
    l.mem_bytes = 512ull << 20;
    l.nproc = 16;
    l.fsize_bytes = 1 << 20;
    l.tmp_base = base_dir;
    return l;
}

static SandboxResult run(const char *prog, const SandboxLimits *l, const char *what) {
    SandboxResult r = sandbox_run(prog, l);
    check_contained(&r, what);
    return r;
}

static void expect(const SandboxResult *r, SandboxStatus st, const char *reason_part, const char *what) {
    CHECK(r->status == st, "%s: expected status %s, found %s (%s; stderr: %.300s)", what, sandbox_status_name(st),
          sandbox_status_name(r->status), r->reason, r->err);
    CHECK(strstr(r->reason, reason_part) != NULL, "%s: expected a reason containing '%s', found '%s'", what,
          reason_part, r->reason);
}

static void test_classification(void) {
    SandboxLimits l = test_limits();
    SandboxResult r = run("print('hello')\n", &l, "pass");
    expect(&r, SANDBOX_PASSED, "exit 0", "pass");
    CHECK(!strcmp(r.out, "hello\n") && r.out_bytes == 6, "pass: expected stdout 'hello\\n', found '%s'", r.out);
    CHECK(r.exit_code == 0 && r.signal == 0, "pass: expected exit 0, found %d/%d", r.exit_code, r.signal);
    sandbox_result_free(&r);

    r = run("def add(a, b):\n    return a - b\nassert add(2, 2) == 4, 'wrong'\n", &l, "assert");
    expect(&r, SANDBOX_FAILED, "AssertionError", "assert");
    CHECK(r.exit_code == 1, "assert: expected exit code 1, found %d", r.exit_code);
    sandbox_result_free(&r);

    r = run("def f(:\n    pass\n", &l, "syntax");
    expect(&r, SANDBOX_ERROR, "SyntaxError", "syntax");
    sandbox_result_free(&r);

    r = run("print(undefined_name)\n", &l, "name");
    expect(&r, SANDBOX_ERROR, "NameError", "name");
    sandbox_result_free(&r);

    r = run("import sys\nsys.exit(3)\n", &l, "exit 3");
    expect(&r, SANDBOX_ERROR, "exit 3", "exit 3");
    sandbox_result_free(&r);

    l.python = "/nonexistent/python3";
    r = run("print('never')\n", &l, "no interpreter");
    expect(&r, SANDBOX_ERROR, "cannot start /nonexistent/python3: No such file", "no interpreter");
    sandbox_result_free(&r);
}

// An endless loop that first starts a child leaving the process group (setsid): the wall clock
// kills the group and, as root, the uid sweep kills the escaped child.
static void test_timeout(void) {
    SandboxLimits l = test_limits();
    l.wall_s = 1.0;
    l.cpu_s = 10;
    // /proc is the host's, so /proc/self names the pid as seen from outside the pid namespace
    const char *prog = "import os, time\n"
                       "def host_pid():\n"
                       "    return int(os.readlink('/proc/self'))\n"
                       "if os.fork() == 0:\n"
                       "    os.setsid()\n"
                       "    print('child', host_pid(), flush=True)\n"
                       "    time.sleep(60)\n"
                       "    os._exit(0)\n"
                       "time.sleep(0.2)\n"
                       "print('main', host_pid(), flush=True)\n"
                       "while True:\n"
                       "    pass\n";
    double t0 = lab_now();
    SandboxResult r = run(prog, &l, "timeout");
    double took = lab_now() - t0;
    expect(&r, SANDBOX_TIMEOUT, "wall timeout 1.0 s", "timeout");
    CHECK(r.signal == SIGKILL, "timeout: expected SIGKILL, found signal %d", r.signal);
    // the kill is prompt: far from the 60 s the escaped child would sleep (slack for a loaded machine)
    CHECK(r.wall_s >= 1.0 && took < 10.0, "timeout: expected 1.0 <= wall_s and < 10 s in all, found %.2f / %.2f",
          r.wall_s, took);
    const char *m = strstr(r.out, "main "), *c = strstr(r.out, "child ");
    long main_pid = m ? strtol(m + 5, NULL, 10) : 0, child_pid = c ? strtol(c + 6, NULL, 10) : 0;
    CHECK(main_pid > 1 && child_pid > 1, "timeout: expected both host pids, found '%s'", r.out);
    CHECK(main_pid > 1 && !pid_alive(main_pid), "timeout: candidate %ld still alive", main_pid);
    CHECK(child_pid > 1 && !pid_alive(child_pid), "timeout: escaped child %ld still alive", child_pid);
    sandbox_result_free(&r);

    l.cpu_s = 1;
    l.wall_s = 5;
    r = run("while True:\n    pass\n", &l, "cpu");
    expect(&r, SANDBOX_ERROR, "CPU limit", "cpu");
    sandbox_result_free(&r);
}

static void test_memory_bomb(void) {
    SandboxLimits l = test_limits();
    SandboxResult r = run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n", &l, "memory");
    expect(&r, SANDBOX_ERROR, "memory limit", "memory");
    sandbox_result_free(&r);
    r = run("b = bytearray(64 * 1024 ** 3)\n", &l, "memory one block");
    expect(&r, SANDBOX_ERROR, "memory limit", "memory one block");
    sandbox_result_free(&r);
    // the test process itself still gets and uses memory
    size_t n = 256u << 20;
    char *p = lab_malloc(n);
    memset(p, 1, n);
    CHECK(p[n - 1] == 1, "memory: the test process could not use 256 MiB after the bomb");
    free(p);
}

// As root RLIMIT_NPROC binds only because the candidate runs as an unprivileged uid of its own.
static void test_fork_bomb(void) {
    SandboxLimits l = test_limits();
    l.wall_s = 3;  // a bomb whose processes keep re-forking as others die may run until the wall clock
    SandboxResult r = run("import os\nwhile True:\n    os.fork()\n", &l, "fork bomb");
    CHECK(r.status == SANDBOX_ERROR || r.status == SANDBOX_TIMEOUT, "fork bomb: expected error or timeout, found %s (%s)",
          sandbox_status_name(r.status), r.reason);
    sandbox_result_free(&r);
    // count how many processes it gets: the limit (the candidate itself is one of them)
    const char *count = "import os, time\n"
                        "n = 0\n"
                        "try:\n"
                        "    while True:\n"
                        "        if os.fork() == 0:\n"
                        "            time.sleep(60)\n"
                        "            os._exit(0)\n"
                        "        n += 1\n"
                        "except OSError:\n"
                        "    print(n)\n";
    r = run(count, &l, "fork count");
    expect(&r, SANDBOX_PASSED, "exit 0", "fork count");
    long got = strtol(r.out, NULL, 10);
    CHECK(got >= 1 && got < (long)l.nproc, "fork count: expected 1..%llu forks, found '%s'", (unsigned long long)l.nproc - 1, r.out);
    sandbox_result_free(&r);
    pid_t pid = fork();  // and the test process can still fork
    if (pid == 0) _exit(0);
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st), "fork bomb: the test process cannot fork");
}

static void test_files(void) {
    SandboxLimits l = test_limits();
    SandboxResult r = run("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n", &l, "big file");
    expect(&r, SANDBOX_ERROR, "file size limit", "big file");
    sandbox_result_free(&r);

    char prog[9000];
    snprintf(prog, sizeof prog, "import os\nos.remove(%s%s%s)\n", "'", canary, "'");
    r = run(prog, &l, "delete canary");
    CHECK(r.status != SANDBOX_PASSED, "delete canary: expected a failure, found passed");
    if (geteuid() == 0) expect(&r, SANDBOX_ERROR, "PermissionError", "delete canary");
    sandbox_result_free(&r);

    snprintf(prog, sizeof prog, "open(%s%s/intruder.txt%s, 'w').write('x')\n", "'", base_dir, "'");
    r = run(prog, &l, "write outside");
    if (geteuid() == 0) expect(&r, SANDBOX_ERROR, "PermissionError", "write outside");
    sandbox_result_free(&r);

    r = run("fs = []\nwhile True:\n    fs.append(open('/dev/null'))\n", &l, "open files");
    expect(&r, SANDBOX_ERROR, "OSError", "open files");
    CHECK(strstr(r.err, "Too many open files") != NULL, "open files: expected EMFILE, found %.200s", r.err);
    sandbox_result_free(&r);
}

// A listener on the test's own loopback: reachable unless the candidate is in a new namespace.
static void test_network(void) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4) || getsockname(ls, (struct sockaddr *)&a, &len))
        lab_die("cannot listen on 127.0.0.1: %s", strerror(errno));
    char prog[512];
    snprintf(prog, sizeof prog, "import socket\nsocket.create_connection(('127.0.0.1', %d), timeout=1).close()\n",
             ntohs(a.sin_port));
    SandboxLimits l = test_limits();
    SandboxResult r = run(prog, &l, "network");
    struct pollfd pf = {.fd = ls, .events = POLLIN};
    int reached = poll(&pf, 1, 0) > 0;
    if (geteuid() == 0) CHECK(r.netns, "network: expected a network namespace as root, found none");
    if (r.netns) {
        expect(&r, SANDBOX_ERROR, "OSError", "network");
        CHECK(!reached, "network: the candidate reached the test's listener from inside its namespace");
    } else {
        CHECK(reached == (r.status == SANDBOX_PASSED), "network 'none': expected the connection to show on the listener");
    }
    sandbox_result_free(&r);
    close(ls);
    r = run("import socket\nsocket.getaddrinfo('example.com', 80)\n", &l, "dns");
    if (r.netns) expect(&r, SANDBOX_ERROR, "gaierror", "dns");
    sandbox_result_free(&r);
}

static void test_environment(void) {
    setenv("LAB_SANDBOX_SECRET", "hunter2-do-not-leak", 1);
    SandboxLimits l = test_limits();
    SandboxResult r = run("import os, sys\nprint(sorted(os.environ.items()))\nprint(sys.flags.isolated, sys.flags.no_site)\n",
                          &l, "environment");
    expect(&r, SANDBOX_PASSED, "exit 0", "environment");
    CHECK(!strstr(r.out, "hunter2") && !strstr(r.out, "LAB_SANDBOX_SECRET"), "environment: the secret leaked: %s", r.out);
    CHECK(strstr(r.out, "('PATH', '/usr/bin:/bin')") && strstr(r.out, "('LANG', 'C.UTF-8')") &&
          strstr(r.out, "('PYTHONDONTWRITEBYTECODE', '1')") && strstr(r.out, "\n1 1\n"),
          "environment: expected exactly the minimal environment and -I -S, found %s", r.out);
    sandbox_result_free(&r);
    unsetenv("LAB_SANDBOX_SECRET");
}

static void test_output_cap(void) {
    SandboxLimits l = test_limits();
    l.output_cap = 1000;
    SandboxResult r = run("import sys\nprint('x' * 5000)\nsys.stderr.write('e' * 300000)\n", &l, "output cap");
    expect(&r, SANDBOX_PASSED, "exit 0", "output cap");
    CHECK(r.out_bytes == 5001 && strlen(r.out) == 1000, "output cap: expected 1000 of 5001 bytes kept, found %zu of %llu",
          strlen(r.out), (unsigned long long)r.out_bytes);
    CHECK(r.err_bytes == 300000 && strlen(r.err) == 1000, "output cap: expected 1000 of 300000 stderr bytes, found %zu of %llu",
          strlen(r.err), (unsigned long long)r.err_bytes);
    sandbox_result_free(&r);
}

// Two workers, candidates that finish out of order: results still in input order.
static void test_many(void) {
    const char *progs[] = {
        "import time\ntime.sleep(0.4)\nprint(0)\n", "print(1)\nassert False\n", "print(2)\nraise KeyError(2)\n",
        "import time\ntime.sleep(0.2)\nprint(3)\n", "print(4)\n", "print(5, flush=True)\nwhile True:\n    pass\n", "print(6)\n",
    };
    SandboxStatus want[] = {SANDBOX_PASSED, SANDBOX_FAILED, SANDBOX_ERROR, SANDBOX_PASSED, SANDBOX_PASSED,
                            SANDBOX_TIMEOUT, SANDBOX_PASSED};
    size_t n = sizeof progs / sizeof progs[0];
    SandboxLimits l = test_limits();
    l.wall_s = 1.0;
    SandboxResult r[7];
    sandbox_run_many(progs, n, 2, &l, r, NULL, NULL);
    unsigned uids[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "many[%zu]", i);
        CHECK(r[i].status == want[i], "%s: expected %s, found %s (%s)", what, sandbox_status_name(want[i]),
              sandbox_status_name(r[i].status), r[i].reason);
        CHECK(strtol(r[i].out, NULL, 10) == (long)i, "%s: expected stdout %zu, found '%s'", what, i, r[i].out);
        check_contained(&r[i], what);
        if (!uids[0] || uids[0] == r[i].uid) uids[0] = r[i].uid;
        else uids[1] = r[i].uid;
        sandbox_result_free(&r[i]);
    }
    if (geteuid() == 0) CHECK(uids[1] && uids[0] != uids[1], "many: expected two workers with a uid each, found %u and %u",
                              uids[0], uids[1]);
}

int main(int argc, char **argv) {
    lab_init("test_sandbox", argc, argv);
    // the candidate's uid must reach its temp dir but may change nothing on the way
    if (chmod(test_tmp_dir(), 0711) != 0) lab_die("cannot chmod %s: %s", test_tmp_dir(), strerror(errno));
    snprintf(base_dir, sizeof base_dir, "%s", test_path("runs"));
    snprintf(canary, sizeof canary, "%s", test_path("canary.txt"));
    if (mkdir(base_dir, 0711) != 0) lab_die("cannot create %s: %s", base_dir, strerror(errno));
    FILE *f = lab_fopen(canary, "w");
    fputs(canary_text, f);
    fclose(f);

    double t0 = lab_now();
    test_classification();
    test_timeout();
    test_memory_bomb();
    test_fork_bomb();
    test_files();
    test_network();
    test_environment();
    test_output_cap();
    test_many();
    printf("sandbox tests took %.1f s\n", lab_now() - t0);
    return test_summary();
}
