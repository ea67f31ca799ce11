// serve: traces, the static and continuous schedulers in real time, and vLLM's metrics (see serve.h).
#include "serve.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

// ---------------------------------------------------------------------------------------------
// traces

// uniform in (0, 1]: 53 random bits, so -log(u) is finite
static double uniform_open0(Rng *r) { return ((double)(rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); }

void serve_poisson_arrivals(double *arrival, int n, double rate, uint64_t seed) {
    if (!(rate > 0)) lab_die("serve_poisson_arrivals: expected a rate > 0 requests/s (or inf), found %g", rate);
    Rng r;
    rng_seed(&r, seed);
    double t = 0.0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && isfinite(rate)) t += -log(uniform_open0(&r)) / rate;
        arrival[i] = t;
    }
}

static int uniform_int(Rng *r, int lo, int hi) { return lo + (int)rng_below(r, (uint32_t)(hi - lo + 1)); }

void serve_trace_random(ServeTrace *t, int n, double rate, int prompt_min, int prompt_max, int output_min,
                        int output_max, int vocab_size, uint64_t seed) {
    if (n < 1 || prompt_min < 1 || prompt_max < prompt_min || output_min < 1 || output_max < output_min ||
        vocab_size < 1)
        lab_die("serve_trace_random: expected n >= 1, 1 <= prompt_min <= prompt_max, 1 <= output_min <= output_max, "
                "found n=%d prompt %d..%d output %d..%d", n, prompt_min, prompt_max, output_min, output_max);
    memset(t, 0, sizeof *t);
    t->n = n;
    t->req = lab_calloc(n, sizeof(ServeRequest));
    double *arrival = lab_malloc((size_t)n * sizeof(double));
    serve_poisson_arrivals(arrival, n, rate, lab_hash64(seed ^ 0x61727269766c73ULL));
    Rng r;
    rng_seed(&r, lab_hash64(seed ^ 0x70726f6d707473ULL));
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        t->req[i].arrival = arrival[i];
        t->req[i].prompt_len = uniform_int(&r, prompt_min, prompt_max);
        t->req[i].output_len = uniform_int(&r, output_min, output_max);
        total += t->req[i].prompt_len;
    }
    t->tokens = lab_malloc(total * sizeof(int32_t));
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        t->req[i].prompt = t->tokens + at;
        for (int k = 0; k < t->req[i].prompt_len; k++) t->tokens[at++] = (int32_t)rng_below(&r, (uint32_t)vocab_size);
    }
    free(arrival);
}

void serve_trace_free(ServeTrace *t) {
    free(t->req);
    free(t->tokens);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------------------------------------
// the engine

const char *serve_scheduler_name(ServeScheduler s) {
    return s == SERVE_STATIC ? "static" : s == SERVE_CONTINUOUS ? "continuous" : "unknown";
}

int serve_scheduler_parse(const char *name, ServeScheduler *out) {
    if (!strcmp(name, "static")) *out = SERVE_STATIC;
    else if (!strcmp(name, "continuous")) *out = SERVE_CONTINUOUS;
    else return -1;
    return 0;
}

// What a run keeps while it goes: the rows' requests and this step's entries.
typedef struct {
    InferState *s;
    const ServeTrace *t;
    ServeRun *run;
    double t0;              // lab_now() at the start
    int *slot;              // (B) request in each row, -1: free
    int *last;              // (B) the entry whose logits the row's next token comes from
    int *rows;              // this step's entries
    int32_t *toks;
    int N, n_prefill;
} Engine;

static double since_start(const Engine *e) { return lab_now() - e->t0; }

// sleeps until `at` seconds after the start (lab_now is CLOCK_MONOTONIC)
static void sleep_until(const Engine *e, double at) {
    double target = e->t0 + at;
    struct timespec ts = {.tv_sec = (time_t)target, .tv_nsec = (long)((target - floor(target)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

// Request i takes row b (promised its positions); its prompt joins this step's entries. 0, or -1
// when the pool cannot promise them yet.
static int admit(Engine *e, int b, int i) {
    const ServeRequest *q = &e->t->req[i];
    if (infer_admit(e->s, b, q->prompt_len + q->output_len - 1) != 0) return -1;
    e->slot[b] = i;
    ServeRecord *r = &e->run->rec[i];
    r->admitted = since_start(e);
    r->row = b;
    for (int k = 0; k < q->prompt_len; k++) {
        e->rows[e->N] = b;
        e->toks[e->N++] = q->prompt[k];
    }
    e->last[b] = e->N - 1;
    e->n_prefill++;
    return 0;
}

// One forward over this step's entries; each row in it gets its next token, and the rows that
// go on get their token as an entry of the next step. Returns how many requests finished
// (finished[b] set); their rows keep their request until the caller frees them.
static int step(Engine *e, int *finished) {
    InferState *s = e->s;
    int V = s->m->cfg.vocab_size, running = 0, done = 0;
    for (int b = 0; b < s->B; b++) running += e->slot[b] >= 0 && e->last[b] >= 0;
    ServeStep st = {.start = since_start(e), .n_entries = e->N, .n_prefill = e->n_prefill, .n_running = running};
    const float *lg = infer_forward(s, e->N, e->rows, e->toks);
    double now = since_start(e);
    SamplerConfig greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};
    e->N = 0;
    e->n_prefill = 0;
    for (int b = 0; b < s->B; b++) {
        finished[b] = 0;
        int i = e->slot[b];
        if (i < 0 || e->last[b] < 0) continue;
        ServeRecord *r = &e->run->rec[i];
        int tok = sample_token(lg + (size_t)e->last[b] * V, V, &greedy, NULL, NULL, NULL);
        r->tokens[r->n_tokens] = tok;
        r->token_time[r->n_tokens++] = now;
        if (r->n_tokens == 1) r->first_token = now;
        if (r->n_tokens == r->output_len) {
            r->finish = now;
            finished[b] = 1;
            e->last[b] = -1;
            done++;
        } else {
            e->rows[e->N] = b;
            e->toks[e->N] = tok;
            e->last[b] = e->N++;
        }
    }
    st.end = now;
    st.kv_allocated = infer_kv_allocated_bytes(s);
    st.kv_used = infer_kv_used_bytes(s);
    ServeRun *run = e->run;
    if (run->n_steps == run->cap_steps) {
        run->cap_steps = run->cap_steps ? 2 * run->cap_steps : 256;
        run->steps = lab_realloc(run->steps, (size_t)run->cap_steps * sizeof(ServeStep));
    }
    run->steps[run->n_steps++] = st;
    return done;
}

static void check_trace(const InferState *s, const ServeTrace *t) {
    for (int i = 0; i < t->n; i++) {
        const ServeRequest *q = &t->req[i];
        if (q->prompt_len < 1 || q->output_len < 1 || q->prompt_len + q->output_len - 1 > s->T_max)
            lab_die("serve_run: request %d: expected prompt_len >= 1, output_len >= 1 and prompt_len + output_len - 1 "
                    "<= T_max (%d), found %d + %d", i, s->T_max, q->prompt_len, q->output_len);
        if (i > 0 && q->arrival < t->req[i - 1].arrival)
            lab_die("serve_run: request %d: expected arrival times in order, found %g after %g", i, q->arrival,
                    t->req[i - 1].arrival);
        if (s->opt.mode == KV_PAGED && infer_blocks_for(s, q->prompt_len + q->output_len - 1) > s->n_blocks)
            lab_die("serve_run: request %d: expected at most %d positions (the paged pool), found %d", i,
                    s->n_blocks * s->block_size, q->prompt_len + q->output_len - 1);
    }
}

// Static batching: wait for B arrivals, prefill them together, decode until all are done.
static void run_static(Engine *e, int *finished) {
    InferState *s = e->s;
    const ServeTrace *t = e->t;
    for (int next = 0; next < t->n;) {
        int k = t->n - next < s->B ? t->n - next : s->B;
        double ready = t->req[next + k - 1].arrival;
        if (since_start(e) < ready) sleep_until(e, ready);
        int taken = 0;
        while (taken < k && admit(e, taken, next + taken) == 0) taken++;
        next += taken;
        for (int left = taken; left > 0;) left -= step(e, finished);
        for (int b = 0; b < taken; b++) e->slot[b] = -1;
        infer_reset(s);
    }
}

// Continuous batching: requests join and leave the running batch at every step.
static void run_continuous(Engine *e, int *finished) {
    InferState *s = e->s;
    const ServeTrace *t = e->t;
    int next = 0, done = 0;
    while (done < t->n) {
        double now = since_start(e);
        for (int b = 0; b < s->B && next < t->n && t->req[next].arrival <= now; b++)
            if (e->slot[b] < 0 && admit(e, b, next) == 0) next++;
        if (e->N == 0) {  // nothing running, and the next request has not arrived
            sleep_until(e, t->req[next].arrival);
            continue;
        }
        done += step(e, finished);
        for (int b = 0; b < s->B; b++)
            if (finished[b]) {
                e->slot[b] = -1;
                infer_reset_row(s, b);
            }
    }
}

void serve_run(InferState *s, const ServeTrace *t, ServeScheduler sched, ServeRun *out) {
    if (sched != SERVE_STATIC && sched != SERVE_CONTINUOUS) lab_die("serve_run: unknown scheduler %d", (int)sched);
    check_trace(s, t);
    memset(out, 0, sizeof *out);
    out->sched = sched;
    out->n = t->n;
    out->rec = lab_calloc(t->n, sizeof(ServeRecord));
    size_t entries = 0;
    for (int i = 0; i < t->n; i++) {
        ServeRecord *r = &out->rec[i];
        r->prompt_len = t->req[i].prompt_len;
        r->output_len = t->req[i].output_len;
        r->arrival = t->req[i].arrival;
        r->row = -1;
        r->tokens = lab_malloc((size_t)r->output_len * sizeof(int32_t));
        r->token_time = lab_malloc((size_t)r->output_len * sizeof(double));
        entries = r->prompt_len > (int)entries ? (size_t)r->prompt_len : entries;
    }
    int B = s->B;
    entries = (entries + 1) * B;  // a step holds at most a prompt or a decode token per row
    Engine e = {.s = s, .t = t, .run = out};
    e.slot = lab_malloc((size_t)B * sizeof(int));
    e.last = lab_malloc((size_t)B * sizeof(int));
    e.rows = lab_malloc(entries * sizeof(int));
    e.toks = lab_malloc(entries * sizeof(int32_t));
    int *finished = lab_malloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) e.slot[b] = e.last[b] = -1;
    infer_reset(s);
    e.t0 = lab_now();
    if (sched == SERVE_STATIC)
        run_static(&e, finished);
    else
        run_continuous(&e, finished);
    infer_reset(s);
    out->kv_token_bytes = infer_kv_token_bytes(s);
    out->kv_capacity = infer_kv_capacity_bytes(s);
    double waste = 0.0;
    int counted = 0;
    for (int k = 0; k < out->n_steps; k++) {
        const ServeStep *st = &out->steps[k];
        out->kv_peak_allocated = st->kv_allocated > out->kv_peak_allocated ? st->kv_allocated : out->kv_peak_allocated;
        out->kv_peak_used = st->kv_used > out->kv_peak_used ? st->kv_used : out->kv_peak_used;
        if (st->kv_allocated > 0) {
            waste += 1.0 - (double)st->kv_used / (double)st->kv_allocated;
            counted++;
        }
    }
    out->kv_mean_waste = counted ? waste / counted : 0.0;
    free(e.slot);
    free(e.last);
    free(e.rows);
    free(e.toks);
    free(finished);
}

void serve_run_free(ServeRun *r) {
    for (int i = 0; i < r->n; i++) {
        free(r->rec[i].tokens);
        free(r->rec[i].token_time);
    }
    free(r->rec);
    free(r->steps);
    memset(r, 0, sizeof *r);
}

// ---------------------------------------------------------------------------------------------
// metrics

double serve_percentile(const double *sorted, int n, double p) {
    if (n < 1 || !(p >= 0 && p <= 100)) lab_die("serve_percentile: expected n >= 1 and p in [0, 100], found n=%d p=%g", n, p);
    double rank = p / 100.0 * (n - 1);
    int lo = (int)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (rank - lo) * (sorted[hi] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void serve_stat(const double *x, int n, ServeStat *out) {
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n == 0) return;
    double *v = lab_malloc((size_t)n * sizeof(double)), sum = 0.0, ss = 0.0;
    memcpy(v, x, (size_t)n * sizeof(double));
    qsort(v, n, sizeof *v, cmp_double);
    for (int i = 0; i < n; i++) sum += v[i];
    out->mean = sum / n;
    for (int i = 0; i < n; i++) ss += (v[i] - out->mean) * (v[i] - out->mean);
    out->std = sqrt(ss / n);
    out->median = out->p50 = serve_percentile(v, n, 50);
    out->p90 = serve_percentile(v, n, 90);
    out->p95 = serve_percentile(v, n, 95);
    out->p99 = serve_percentile(v, n, 99);
    free(v);
}

int serve_itl_count(const ServeRecord *rec, int n) {
    int count = 0;
    for (int i = 0; i < n; i++) count += rec[i].n_tokens > 1 ? rec[i].n_tokens - 1 : 0;
    return count;
}

void serve_samples(const ServeRecord *rec, int n, double *ttft, double *tpot, double *e2el, double *itl) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        const ServeRecord *r = &rec[i];
        double first = r->n_tokens > 0 ? r->token_time[0] : NAN, e2e = r->finish - r->arrival;
        if (ttft) ttft[i] = first - r->arrival;
        if (e2el) e2el[i] = e2e;
        if (tpot) tpot[i] = r->n_tokens > 1 ? (e2e - (first - r->arrival)) / (r->n_tokens - 1) : NAN;
        for (int j = 1; j < r->n_tokens; j++) {
            if (itl) itl[k] = r->token_time[j] - r->token_time[j - 1];
            k++;
        }
    }
}

void serve_metrics(const ServeRecord *rec, int n, ServeMetrics *m) {
    memset(m, 0, sizeof *m);
    int n_itl = serve_itl_count(rec, n);
    double *ttft = lab_malloc((size_t)(n + 1) * sizeof(double)), *tpot = lab_malloc((size_t)(n + 1) * sizeof(double));
    double *e2el = lab_malloc((size_t)(n + 1) * sizeof(double)), *itl = lab_malloc((size_t)(n_itl + 1) * sizeof(double));
    serve_samples(rec, n, ttft, tpot, e2el, itl);
    // only the completed requests count; tpot only where defined
    int done = 0, with_tpot = 0;
    double first_arrival = INFINITY, last_finish = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (rec[i].n_tokens < 1) continue;
        first_arrival = rec[i].arrival < first_arrival ? rec[i].arrival : first_arrival;
        last_finish = rec[i].finish > last_finish ? rec[i].finish : last_finish;
        m->total_input += rec[i].prompt_len;
        m->total_output += rec[i].n_tokens;
        if (rec[i].n_tokens > 1) tpot[with_tpot++] = tpot[i];
        ttft[done] = ttft[i];
        e2el[done++] = e2el[i];
    }
    m->completed = done;
    if (done > 0) {
        m->duration = last_finish - first_arrival;
        if (m->duration > 0) {
            m->request_throughput = done / m->duration;
            m->output_throughput = (double)m->total_output / m->duration;
            m->total_token_throughput = (double)(m->total_input + m->total_output) / m->duration;
        }
    }
    serve_stat(ttft, done, &m->ttft);
    serve_stat(tpot, with_tpot, &m->tpot);
    serve_stat(itl, n_itl, &m->itl);
    serve_stat(e2el, done, &m->e2el);
    free(ttft);
    free(tpot);
    free(e2el);
    free(itl);
}
