// lab-generate: completions of code prompts with a model (and adapter) on the CPU, through the KV
// cache of infer.c; writes codelm-lab/generations/1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "checkpoint.h"
#include "common.h"
#include "h5io.h"
#include "infer.h"
#include "metrics.h"
#include "tasks.h"

#define MAX_STOPS 64

static void usage(void) {
    printf(
        "usage: lab-generate --model BASE.h5 [--adapter ADAPTER.h5] --tokenizer TOKENIZER.h5\n"
        "                    (--prompt-file F | --prompts-jsonl F) --out GEN.h5\n"
        "                    [--max-new-tokens 128] [--temperature 0] [--top-k 0] [--top-p 1]\n"
        "                    [--seed 0] [--n-samples 1] [--batch 8] [--stop S]... [--no-stops]\n"
        "                    [--no-dedent] [--threads N]\n"
        "\n"
        "Generates --n-samples completions per prompt and writes codelm-lab/generations/1: a\n"
        "/generations/ table (task, sample, task_id, completion, n_tokens, stop_reason) and the\n"
        "prompts as /prompts. With one prompt, the completions also go to stdout (one sample: its\n"
        "text alone; several: each after a line '=== sample K ===').\n"
        "\n"
        "  --prompt-file F     the whole file is one prompt\n"
        "  --prompts-jsonl F   one JSON object per line with a \"prompt\" string (and optionally a\n"
        "                      \"task_id\"), as HumanEval's HumanEval.jsonl\n"
        "  --temperature T     0: greedy; --top-k K (0: off) and --top-p P (1: off) restrict sampling\n"
        "  --seed S            sample K of task I draws from its own stream, derived from S, I and K,\n"
        "                      so the results do not depend on --batch (up to float rounding)\n"
        "  --batch B           sequences decoded together\n"
        "\n"
        "A prompt longer than the model's context less --max-new-tokens (but at least half the\n"
        "context) keeps its last tokens: /prompt_tokens_dropped says how many each lost.\n"
        "\n"
        "A completion stops (stop_reason) at eot; at a stop string ('stop': cut before it; default\n"
        "\\ndef \\nclass \\nif \\nprint \\n#, replaced by the --stop flags, which read the escapes\n"
        "\\n \\t \\\\; none with --no-stops); when a line dedents below the body's first line\n"
        "('dedent': cut before that line's '\\n'; off with --no-dedent); after --max-new-tokens\n"
        "('max_tokens'); or when the model's context is full ('context'). n_tokens counts every\n"
        "token sampled, the stopping one included.\n");
}

// ---------------------------------------------------------------------------------------------
// main

// A --stop value with the escapes \n, \t and \\ turned into their bytes (a newline is awkward to
// pass through a shell and a Snakefile). Dies on any other escape and on an empty result.
static const char *unescape_stop(const char *v) {
    char *s = lab_malloc(strlen(v) + 1), *o = s;
    for (const char *c = v; *c; c++) {
        if (*c != '\\') { *o++ = *c; continue; }
        c++;
        if (*c == 'n') *o++ = '\n';
        else if (*c == 't') *o++ = '\t';
        else if (*c == '\\') *o++ = '\\';
        else lab_die("--stop '%s': expected the escapes \\n, \\t or \\\\ only, found '\\%c'", v, *c ? *c : ' ');
    }
    *o = '\0';
    if (!*s) lab_die("--stop: expected a non-empty string, found ''");
    return s;
}

int main(int argc, char **argv) {
    lab_init("lab-generate", argc, argv);
    const char *model = NULL, *adapter = NULL, *tokenizer = NULL, *prompt_file = NULL, *jsonl = NULL;
    const char *out = NULL;
    const char *stops[MAX_STOPS];
    int n_stops = 0, no_stops = 0, dedent = 1, n_samples = 1, batch = 8;
    GenConfig gc = {.max_new_tokens = 128, .sampler = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f}};
    uint64_t seed = 0;
    if (argc < 2) { usage(); return 1; }
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (!strcmp(f, "--no-stops")) { no_stops = 1; continue; }
        if (!strcmp(f, "--no-dedent")) { dedent = 0; continue; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--model")) model = v;
        else if (!strcmp(f, "--adapter")) adapter = v;
        else if (!strcmp(f, "--tokenizer")) tokenizer = v;
        else if (!strcmp(f, "--prompt-file")) prompt_file = v;
        else if (!strcmp(f, "--prompts-jsonl")) jsonl = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--max-new-tokens")) gc.max_new_tokens = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--temperature")) gc.sampler.temperature = (float)lab_parse_double(f, v, 0, 100);
        else if (!strcmp(f, "--top-k")) gc.sampler.top_k = (int)lab_parse_int(f, v, 0, 1 << 30);
        else if (!strcmp(f, "--top-p")) gc.sampler.top_p = (float)lab_parse_double(f, v, 1e-9, 1);
        else if (!strcmp(f, "--seed")) seed = (uint64_t)lab_parse_int(f, v, 0, (1ll << 62));
        else if (!strcmp(f, "--n-samples")) n_samples = (int)lab_parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--batch")) batch = (int)lab_parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--threads")) lab_set_threads((int)lab_parse_int(f, v, 1, 4096));
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(v);
        else if (!strcmp(f, "--stop")) {
            if (n_stops == MAX_STOPS) lab_die("--stop: expected at most %d stop strings, found more", MAX_STOPS);
            stops[n_stops++] = unescape_stop(v);
        } else lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!model || !tokenizer || !out) lab_die("expected --model, --tokenizer and --out (see --help)");
    if (!prompt_file == !jsonl) lab_die("expected exactly one of --prompt-file and --prompts-jsonl (see --help)");
    if (no_stops && n_stops) lab_die("--no-stops: expected no --stop flags with it, found %d", n_stops);
    if (!no_stops && !n_stops)
        for (int i = 0; i < 5; i++) stops[n_stops++] = humaneval_stops[i];
    if (no_stops) n_stops = 0;
    gc.stops = stops;
    gc.n_stops = n_stops;
    gc.stop_on_dedent = dedent;
    lab_set_seed(seed);

    TaskSet pr = {0};
    if (prompt_file) {
        size_t len;
        char *text = lab_read_file(prompt_file, &len);
        if (strlen(text) != len) lab_die("%s: expected text, found a NUL byte", prompt_file);
        pr.n = 1;
        pr.t = lab_calloc(1, sizeof(Task));
        pr.t[0].prompt = text;
        pr.t[0].task_id = lab_strdup("0");
        lab_add_input(prompt_file);
    } else {
        taskset_load(&pr, jsonl, TASK_NEED_PROMPT);
        lab_add_input(jsonl);
    }

    Model m;
    model_load_for_inference(&m, model, adapter);
    Bpe *bpe = bpe_load(tokenizer);
    lab_add_input(tokenizer);
    if (bpe->vocab_size != m.cfg.vocab_size)
        lab_die("%s: expected a tokenizer of vocab_size %d (%s's), found %d", tokenizer, m.cfg.vocab_size, model,
                bpe->vocab_size);
    gc.eot = bpe->eot;

    BpeTokens *enc = lab_calloc(pr.n, sizeof(BpeTokens));
    // room for a prompt: the context less max_new_tokens, but never less than half of it
    int T = m.cfg.max_seq_len;
    size_t room = (size_t)(T - gc.max_new_tokens > T / 2 ? T - gc.max_new_tokens : T / 2);
    int64_t *dropped = lab_calloc(pr.n, sizeof(int64_t));
    size_t n_cut = 0;
    int32_t **ids = lab_malloc((size_t)pr.n * sizeof(int32_t *));
    for (size_t t = 0; t < pr.n; t++) {
        size_t tl = strlen(pr.t[t].prompt);
        bpe_encode(bpe, NULL, (const uint8_t *)pr.t[t].prompt, tl, &enc[t]);
        if (enc[t].n < 1)
            lab_die("%s: prompt %zu (%s): expected at least one token, found an empty prompt",
                    prompt_file ? prompt_file : jsonl, t, pr.t[t].task_id);
        // a prompt too long for the context keeps its end (what the completion continues)
        size_t keep = enc[t].n < room ? enc[t].n : room;
        dropped[t] = (int64_t)(enc[t].n - keep);
        n_cut += dropped[t] > 0;
        ids[t] = lab_malloc(keep * sizeof(int32_t));
        for (size_t k = 0; k < keep; k++) ids[t][k] = (int32_t)enc[t].ids[enc[t].n - keep + k];
        enc[t].n = keep;
    }
    int n = (int)pr.n * n_samples;
    GenRequest *req = lab_malloc((size_t)n * sizeof(GenRequest));
    for (size_t t = 0; t < pr.n; t++)
        for (int k = 0; k < n_samples; k++) {
            size_t tl = strlen(pr.t[t].prompt);
            req[t * n_samples + k] = (GenRequest){
                .prompt = ids[t], .prompt_len = (int)enc[t].n, .at_line_start = tl == 0 || pr.t[t].prompt[tl - 1] == '\n',
                .seed = lab_hash64(seed ^ lab_hash64(((uint64_t)t << 32) | (uint64_t)k))};
        }
    Completion *comp = lab_calloc(n, sizeof(Completion));
    InferState st;
    infer_init(&st, &m, batch < n ? batch : n, m.cfg.max_seq_len);
    double t0 = lab_now();
    infer_generate(&st, bpe, &gc, req, n, comp);
    double secs = lab_now() - t0;
    infer_free(&st);

    int64_t *task = lab_malloc((size_t)n * sizeof(int64_t)), *sample = lab_malloc((size_t)n * sizeof(int64_t));
    int64_t *ntok = lab_malloc((size_t)n * sizeof(int64_t));
    const char **tid = lab_malloc((size_t)n * sizeof(char *)), **text = lab_malloc((size_t)n * sizeof(char *));
    const char **why = lab_malloc((size_t)n * sizeof(char *));
    int64_t total_tokens = 0;
    for (int i = 0; i < n; i++) {
        task[i] = i / n_samples;
        sample[i] = i % n_samples;
        tid[i] = pr.t[i / n_samples].task_id;
        // a completion cut at max_tokens may end inside a multi-byte character
        char *clean = lab_malloc(3 * comp[i].len + 1);
        size_t cl = metrics_utf8_sanitize(comp[i].text, comp[i].len, clean);
        clean[cl] = '\0';
        free(comp[i].text);
        comp[i].text = clean;
        comp[i].len = cl;
        text[i] = comp[i].text;
        ntok[i] = comp[i].n_tokens;
        why[i] = stop_reason_name(comp[i].stop);
        total_tokens += comp[i].n_tokens;
    }
    H5Writer w = h5_create(out, "codelm-lab/generations/1");
    H5Column cols[6] = {{"task", LAB_I64, task, NULL},          {"sample", LAB_I64, sample, NULL},
                        {"task_id", LAB_STR, tid, NULL},        {"completion", LAB_STR, text, NULL},
                        {"n_tokens", LAB_I64, ntok, "tokens"},  {"stop_reason", LAB_STR, why, NULL}};
    h5_table_write(w.file, "generations", (uint64_t)n, 6, cols);
    const char **ptext = lab_malloc((size_t)pr.n * sizeof(char *));
    for (size_t t = 0; t < pr.n; t++) ptext[t] = pr.t[t].prompt;
    h5_write_strings(w.file, "prompts", ptext, (uint64_t)pr.n);
    free(ptext);
    uint64_t np = pr.n;
    h5_write(w.file, "prompt_tokens_dropped", LAB_I64, dropped, 1, &np, "tokens");
    h5_attr_i64(w.file, "prompt_room_tokens", (int64_t)room);
    h5_attr_str(w.file, "model", model);
    h5_attr_str(w.file, "adapter", adapter ? adapter : "");
    h5_attr_str(w.file, "tokenizer", tokenizer);
    h5_attr_i64(w.file, "n_tasks", pr.n);
    h5_attr_i64(w.file, "n_samples", n_samples);
    h5_attr_i64(w.file, "max_new_tokens", gc.max_new_tokens);
    h5_attr_f64(w.file, "temperature", gc.sampler.temperature);
    h5_attr_i64(w.file, "top_k", gc.sampler.top_k);
    h5_attr_f64(w.file, "top_p", gc.sampler.top_p);
    h5_attr_i64(w.file, "stop_on_dedent", dedent);
    size_t slen = 0;
    for (int i = 0; i < n_stops; i++) slen += strlen(stops[i]) + 1;
    char *joined = lab_calloc(slen + 1, 1);
    for (int i = 0; i < n_stops; i++) {
        strcat(joined, stops[i]);
        if (i + 1 < n_stops) strcat(joined, "\x1f");
    }
    h5_attr_str(w.file, "stops", joined);  // joined by the unit separator 0x1F
    h5_finish(&w);

    if (pr.n == 1)
        for (int i = 0; i < n; i++) {
            if (n > 1) printf("=== sample %d ===\n", i);
            fwrite(comp[i].text, 1, comp[i].len, stdout);
            if (n > 1) printf("\n");
        }
    fflush(stdout);
    if (n_cut)
        fprintf(stderr, "lab-generate: %zu prompts longer than %zu tokens kept their last %zu tokens (see /prompt_tokens_dropped)\n",
                n_cut, room, room);
    fprintf(stderr, "lab-generate: %d completions, %lld tokens in %.2f s (%.1f tokens/s, prefill included); wrote %s\n",
            n, (long long)total_tokens, secs, secs > 0 ? total_tokens / secs : 0.0, out);

    for (int i = 0; i < n; i++) completion_free(&comp[i]);
    for (size_t t = 0; t < pr.n; t++) {
        free(ids[t]);
        bpe_tokens_free(&enc[t]);
    }
    taskset_free(&pr);
    free(ids); free(dropped); free(enc); free(req); free(comp);
    free(task); free(sample); free(ntok); free(tid); free(text); free(why); free(joined);
    bpe_free(bpe);
    model_free(&m);
    return 0;
}
