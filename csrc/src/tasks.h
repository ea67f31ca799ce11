// tasks: task sets in HumanEval's JSONL format, and the programs the harness runs.
//
// A task file has one JSON object per line (blank lines ignored), as openai/human-eval's
// HumanEval.jsonl and MBPP conversions of it: string fields task_id, prompt, entry_point,
// canonical_solution, test; this project adds an optional integer difficulty (1..3: one-liner,
// loop, small data structure) and an optional string package (where a mined task came from). Other
// keys are skipped, whatever their value. Which fields must be present depends on the use
// (TASK_NEED_*): generation needs only prompt; scoring also entry_point and test; edit distance
// canonical_solution. A missing task_id becomes the line's index among the tasks ("0", "1", ...).
//
// The program run for a completion is HumanEval's:
//     prompt + completion + "\n" + test + "\n" + "check(" + entry_point + ")\n"
// and it passes when python exits 0 (the sandbox's "passed").
#pragma once
#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *task_id, *prompt, *entry_point, *canonical_solution, *test, *package;  // NULL when absent
    int difficulty;   // 0 when absent
} Task;

typedef struct {
    char *path;
    Task *t;
    size_t n;
} TaskSet;

enum { TASK_NEED_PROMPT = 1, TASK_NEED_ENTRY = 2, TASK_NEED_TEST = 4, TASK_NEED_CANONICAL = 8 };

// Loads PATH; dies with "PATH:LINE: expected ..., found ..." on malformed JSON, a field of the wrong
// type, a missing needed field, a duplicate task_id, or a file with no task.
void taskset_load(TaskSet *ts, const char *path, unsigned need);
void taskset_free(TaskSet *ts);

// Writes t as one JSON line (keys in the order task_id, prompt, entry_point, canonical_solution,
// test, difficulty, package; absent ones left out; non-ASCII UTF-8 kept as is).
void task_write_json(FILE *f, const Task *t);

// The harness program for `completion` of task t (malloc'd, NUL-terminated).
char *task_program(const Task *t, const char *completion);

// The harness's planted bug for self-checks: the canonical solution, with the entry point wrapped
// so that its return value is changed in a type-aware way (a bool negated, a number plus one, a
// string, list, tuple or dict extended, None turned into 0, anything else into a new object). A
// test that checks return values fails it.
char *task_program_planted_bug(const Task *t);
