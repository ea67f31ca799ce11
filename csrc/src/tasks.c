// tasks: HumanEval JSONL task sets and harness programs (see tasks.h).
#include "tasks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------------------------------------
// a minimal JSON reader for one line's object: string and integer fields, the rest skipped

typedef struct { const char *s, *path; size_t line; } Json;

_Noreturn static void json_fail(const Json *j, const char *expected) {
    lab_die("%s:%zu: expected %s, found '%.20s'", j->path, j->line, expected, *j->s ? j->s : "end of line");
}

static void json_ws(Json *j) {
    while (*j->s == ' ' || *j->s == '\t' || *j->s == '\r') j->s++;
}

static void put_utf8(char **o, unsigned cp) {
    unsigned char *u = (unsigned char *)*o;
    if (cp < 0x80) { *u++ = cp; }
    else if (cp < 0x800) { *u++ = 0xC0 | cp >> 6; *u++ = 0x80 | (cp & 0x3F); }
    else if (cp < 0x10000) { *u++ = 0xE0 | cp >> 12; *u++ = 0x80 | (cp >> 6 & 0x3F); *u++ = 0x80 | (cp & 0x3F); }
    else { *u++ = 0xF0 | cp >> 18; *u++ = 0x80 | (cp >> 12 & 0x3F); *u++ = 0x80 | (cp >> 6 & 0x3F); *u++ = 0x80 | (cp & 0x3F); }
    *o = (char *)u;
}

static unsigned json_hex4(Json *j) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->s++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else { j->s--; json_fail(j, "4 hex digits after \\u"); }
    }
    return v;
}

// Parses a string at j->s; returns it decoded to UTF-8 (caller free()s), or NULL when !keep.
static char *json_string(Json *j, int keep) {
    if (*j->s != '"') json_fail(j, "a string");
    j->s++;
    char *out = keep ? lab_malloc(strlen(j->s) * 2 + 1) : NULL, *o = out;  // \uXXXX: 6 bytes -> <= 4
    for (;;) {
        char c = *j->s++;
        if (c == '\0') { j->s--; json_fail(j, "a closing '\"'"); }
        if (c == '"') break;
        if (c != '\\') { if (keep) *o++ = c; continue; }
        char e = *j->s++;
        unsigned cp;
        switch (e) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case '"': case '\\': case '/': cp = (unsigned char)e; break;
        case 'u':
            cp = json_hex4(j);
            if (cp >= 0xD800 && cp < 0xDC00 && j->s[0] == '\\' && j->s[1] == 'u') {
                j->s += 2;
                unsigned lo = json_hex4(j);
                if (lo < 0xDC00 || lo >= 0xE000) json_fail(j, "a low surrogate after a high one");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            break;
        default: j->s--; json_fail(j, "an escape (\\n \\t \\r \\b \\f \\\" \\\\ \\/ \\uXXXX)");
        }
        if (keep) put_utf8(&o, cp);
    }
    if (keep) *o = '\0';
    return out;
}

static void json_skip_value(Json *j) {
    json_ws(j);
    if (*j->s == '"') { json_string(j, 0); return; }
    if (*j->s == '{' || *j->s == '[') {
        int depth = 0;
        do {
            if (*j->s == '"') { json_string(j, 0); continue; }
            if (*j->s == '{' || *j->s == '[') depth++;
            else if (*j->s == '}' || *j->s == ']') depth--;
            else if (!*j->s) json_fail(j, "a closing bracket");
            j->s++;
        } while (depth > 0);
        return;
    }
    const char *start = j->s;  // number, true, false, null
    while (*j->s && !strchr(",}] \t\r", *j->s)) j->s++;
    if (j->s == start) json_fail(j, "a value");
}

static long long json_int(Json *j, const char *key) {
    char *end;
    long long v = strtoll(j->s, &end, 10);
    if (end == j->s || strchr(".eE", *end)) {
        char what[64];
        snprintf(what, sizeof what, "an integer for \"%s\"", key);
        json_fail(j, what);
    }
    j->s = end;
    return v;
}

// ---------------------------------------------------------------------------------------------
// task files

static const char *const STRING_KEYS[] = {"task_id", "prompt", "entry_point", "canonical_solution", "test", "package"};

static char **task_field(Task *t, int k) {
    char **f[] = {&t->task_id, &t->prompt, &t->entry_point, &t->canonical_solution, &t->test, &t->package};
    return f[k];
}

static void parse_line(Json *j, Task *t) {
    if (*j->s++ != '{') { j->s--; json_fail(j, "a JSON object"); }
    json_ws(j);
    while (*j->s != '}') {
        char *key = json_string(j, 1);
        json_ws(j);
        if (*j->s++ != ':') { j->s--; json_fail(j, "':'"); }
        json_ws(j);
        int k = -1;
        for (int i = 0; i < 6; i++)
            if (!strcmp(key, STRING_KEYS[i])) k = i;
        if (k >= 0) {
            char what[64];
            snprintf(what, sizeof what, "a string for \"%s\"", key);
            if (*j->s != '"') json_fail(j, what);
            free(*task_field(t, k));
            *task_field(t, k) = json_string(j, 1);
        } else if (!strcmp(key, "difficulty")) {
            long long d = json_int(j, key);
            if (d < 1 || d > 3) lab_die("%s:%zu: expected difficulty 1, 2 or 3, found %lld", j->path, j->line, d);
            t->difficulty = (int)d;
        } else {
            json_skip_value(j);
        }
        free(key);
        json_ws(j);
        if (*j->s == ',') { j->s++; json_ws(j); }
        else if (*j->s != '}') json_fail(j, "',' or '}'");
    }
    j->s++;
    json_ws(j);
    if (*j->s) json_fail(j, "the end of the line after the object");
}

void taskset_load(TaskSet *ts, const char *path, unsigned need) {
    memset(ts, 0, sizeof *ts);
    ts->path = lab_strdup(path);
    size_t len;
    char *buf = lab_read_file(path, &len);
    if (strlen(buf) != len) lab_die("%s: expected JSON lines, found a NUL byte", path);
    size_t line = 0;
    for (char *ln = buf; ln && *ln; line++) {
        char *nl = strchr(ln, '\n');
        if (nl) *nl = '\0';
        Json j = {ln, path, line + 1};
        json_ws(&j);
        if (*j.s) {
            ts->t = lab_realloc(ts->t, (ts->n + 1) * sizeof(Task));
            Task *t = &ts->t[ts->n];
            memset(t, 0, sizeof *t);
            parse_line(&j, t);
            const char *missing = !t->prompt && (need & TASK_NEED_PROMPT)                  ? "prompt"
                                  : !t->entry_point && (need & TASK_NEED_ENTRY)            ? "entry_point"
                                  : !t->test && (need & TASK_NEED_TEST)                    ? "test"
                                  : !t->canonical_solution && (need & TASK_NEED_CANONICAL) ? "canonical_solution"
                                                                                           : NULL;
            if (missing) lab_die("%s:%zu: expected a \"%s\" string field, found none", path, line + 1, missing);
            if (!t->task_id) {
                t->task_id = lab_malloc(32);
                snprintf(t->task_id, 32, "%zu", ts->n);
            }
            for (size_t i = 0; i < ts->n; i++)
                if (!strcmp(ts->t[i].task_id, t->task_id))
                    lab_die("%s:%zu: expected a unique task_id, found \"%s\" again", path, line + 1, t->task_id);
            ts->n++;
        }
        ln = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (ts->n == 0) lab_die("%s: expected at least one task (a JSON object per line), found none", path);
}

void taskset_free(TaskSet *ts) {
    for (size_t i = 0; i < ts->n; i++)
        for (int k = 0; k < 6; k++) free(*task_field(&ts->t[i], k));
    free(ts->t);
    free(ts->path);
    memset(ts, 0, sizeof *ts);
}

static void json_put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*c < 0x20) fprintf(f, "\\u%04x", *c);
            else fputc(*c, f);
        }
    }
    fputc('"', f);
}

void task_write_json(FILE *f, const Task *t) {
    int first = 1;
    for (int k = 0; k < 5; k++) {
        const char *v = *task_field((Task *)t, k);
        if (!v) continue;
        fprintf(f, "%s\"%s\": ", first ? "{" : ", ", STRING_KEYS[k]);
        json_put_string(f, v);
        first = 0;
    }
    if (t->difficulty) fprintf(f, "%s\"difficulty\": %d", first ? "{" : ", ", t->difficulty), first = 0;
    if (t->package) {
        fprintf(f, "%s\"package\": ", first ? "{" : ", ");
        json_put_string(f, t->package);
        first = 0;
    }
    fputs(first ? "{}\n" : "}\n", f);
}

// ---------------------------------------------------------------------------------------------
// harness programs

static char *concat(const char *const *parts, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *s = lab_malloc(len), *o = s;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(o, parts[i], l);
        o += l;
    }
    *o = '\0';
    return s;
}

char *task_program(const Task *t, const char *completion) {
    const char *parts[] = {t->prompt, completion, "\n", t->test ? t->test : "", "\ncheck(", t->entry_point, ")\n"};
    return concat(parts, 7);
}

// Wraps ENTRY after its definition; bool comes before int because bool is an int.
static const char PLANTED_BUG[] =
    "\n"
    "def _lab_planted_bug(r):\n"
    "    if isinstance(r, bool):\n"
    "        return not r\n"
    "    if isinstance(r, (int, float)):\n"
    "        return r + 1\n"
    "    if isinstance(r, str):\n"
    "        return r + 'x'\n"
    "    if isinstance(r, list):\n"
    "        return r + [None]\n"
    "    if isinstance(r, tuple):\n"
    "        return r + (None,)\n"
    "    if isinstance(r, dict):\n"
    "        return {**r, '_lab_planted_bug': None}\n"
    "    if r is None:\n"
    "        return 0\n"
    "    return object()\n"
    "\n"
    "_lab_original = %s\n"
    "\n"
    "def %s(*args, **kwargs):\n"
    "    return _lab_planted_bug(_lab_original(*args, **kwargs))\n";

char *task_program_planted_bug(const Task *t) {
    size_t n = sizeof PLANTED_BUG + 2 * strlen(t->entry_point) + strlen(t->canonical_solution);
    char *body = lab_malloc(n);
    int k = snprintf(body, n, "%s", t->canonical_solution);
    snprintf(body + k, n - (size_t)k, PLANTED_BUG, t->entry_point, t->entry_point);
    char *p = task_program(t, body);
    free(body);
    return p;
}
