// serve: a serving simulation over an InferState, for profiling: a trace of requests that arrive
// in real time, two schedulers, and vLLM's serving metrics.
//
// A request has a prompt and a fixed output length: it is decoded greedily for exactly that many
// tokens, with no stop rule (vLLM's benchmark_serving with ignore_eos), so lengths are controlled.
// The engine runs against the wall clock (lab_now): with nothing to run it sleeps until the next
// arrival. Every token a forward produces is stamped with the time that forward ended, as a
// streaming server would send it.
//
// Schedulers (B = the InferState's rows):
//   SERVE_STATIC      waits until B requests have arrived (or all that the trace still holds),
//                     prefills them in one forward, then decodes until every one has its output;
//                     a finished row idles, holding its cache, until the batch ends; then all rows
//                     are reset and the next batch starts.
//   SERVE_CONTINUOUS  every engine step admits the requests that have arrived into free rows, in
//                     arrival order (KV_PAGED: only while infer_admit can promise the blocks for
//                     prompt + output; the head of the queue waits otherwise, nobody overtakes it;
//                     vLLM admits on the prompt's blocks and preempts when the pool runs dry, which
//                     admits sooner; promising the whole request never preempts),
//                     and runs one forward holding each new row's whole prompt (no chunking) and
//                     one decode token for every running row. A finished request leaves at once:
//                     its row is reset (its blocks go back to the pool) before the next step.
//
// Metrics (the definitions of vLLM's benchmarks/benchmark_serving.py):
//   TTFT      first token time - arrival
//   TPOT      (E2E - TTFT) / (output tokens - 1), over the requests with more than one token
//   ITL       every gap between consecutive tokens of a request, all requests' gaps pooled
//   E2E       last token time - arrival
//   duration  last finish - first arrival (vLLM: from just before it sends the first request,
//             which goes at once, until the last response is in)
//   request, output-token and total-token (prompt + output) throughput: totals / duration
// Each metric's mean, median, population standard deviation (numpy's default, ddof 0) and
// percentiles p50/p90/p95/p99 by numpy's default rule: linear interpolation at rank p/100 (n-1)
// of the ascending values. An empty set gives zeros (vLLM's np.mean(x or 0)).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "infer.h"

// ---------------------------------------------------------------------------------------------
// traces

typedef struct {
    double arrival;          // seconds after the run starts; non-decreasing along a trace
    const int32_t *prompt;   // prompt_len tokens
    int prompt_len, output_len;
} ServeRequest;

typedef struct {
    int n;
    ServeRequest *req;
    int32_t *tokens;         // the prompts, back to back (the requests point into it)
} ServeTrace;

// Arrival times of n requests at `rate` requests/s: the first at 0, then exponential gaps of mean
// 1/rate (a Poisson process) drawn from seed; rate = INFINITY: all at 0. Same seed, same times.
void serve_poisson_arrivals(double *arrival, int n, double rate, uint64_t seed);
// A trace like vLLM's random dataset: n requests arriving as above, prompt lengths uniform in
// [prompt_min, prompt_max], output lengths uniform in [output_min, output_max], prompt tokens
// uniform over the vocabulary; everything drawn from seed.
void serve_trace_random(ServeTrace *t, int n, double rate, int prompt_min, int prompt_max, int output_min,
                        int output_max, int vocab_size, uint64_t seed);
void serve_trace_free(ServeTrace *t);

// ---------------------------------------------------------------------------------------------
// running a trace

typedef enum { SERVE_STATIC, SERVE_CONTINUOUS } ServeScheduler;
const char *serve_scheduler_name(ServeScheduler s);      // "static", "continuous"
int serve_scheduler_parse(const char *name, ServeScheduler *out);  // 0, or -1 for an unknown name

typedef struct {
    int prompt_len, output_len;
    double arrival;          // seconds after the run started, as are the times below
    double admitted;         // when it took a row
    double first_token, finish;  // token_time[0], token_time[output_len - 1]
    int row;                 // the row it ran in
    int n_tokens;            // == output_len after a run
    int32_t *tokens;         // (output_len) the tokens generated
    double *token_time;      // (output_len) when each was produced
} ServeRecord;

typedef struct {             // one engine step: one forward
    double start, end;       // seconds after the run started
    int n_entries;           // tokens fed
    int n_prefill;           // requests whose prompt it carried
    int n_running;           // rows holding a request during it
    size_t kv_allocated, kv_used;  // after the forward, before finished rows are reset (infer.h)
} ServeStep;

typedef struct {
    ServeScheduler sched;
    int n;
    ServeRecord *rec;        // (n) in trace order
    int n_steps, cap_steps;
    ServeStep *steps;
    size_t kv_token_bytes;   // infer_kv_token_bytes
    size_t kv_capacity;      // infer_kv_capacity_bytes at the end (KV_NONE: its largest scratch)
    size_t kv_peak_allocated, kv_peak_used;  // over the steps
    double kv_mean_waste;    // mean over steps with allocated > 0 of 1 - used / allocated; 0 if none
} ServeRun;

// Runs the trace on s (reset first, and left reset) in real time with the given scheduler. Dies
// when a request does not fit: prompt_len >= 1, output_len >= 1 and prompt_len + output_len - 1
// (the positions it feeds) <= T_max, and with KV_PAGED within the pool.
void serve_run(InferState *s, const ServeTrace *t, ServeScheduler sched, ServeRun *out);
void serve_run_free(ServeRun *r);

// ---------------------------------------------------------------------------------------------
// metrics

typedef struct {
    int n;
    double mean, median, std, p50, p90, p95, p99;
} ServeStat;

typedef struct {
    int completed;
    int64_t total_input, total_output;
    double duration, request_throughput, output_throughput, total_token_throughput;
    ServeStat ttft, tpot, itl, e2el;   // seconds
} ServeMetrics;

// numpy.percentile(x, p) of n >= 1 values sorted ascending (linear interpolation); p in [0, 100]
double serve_percentile(const double *sorted, int n, double p);
void serve_stat(const double *x, int n, ServeStat *out);  // x in any order; n == 0 gives zeros
// The per-request samples behind the metrics: ttft, e2el and tpot for each record (tpot NAN where
// the output has one token: vLLM leaves those out), and every ITL gap (serve_itl_count of them) in
// record order. Any output pointer may be NULL.
int serve_itl_count(const ServeRecord *rec, int n);
void serve_samples(const ServeRecord *rec, int n, double *ttft, double *tpot, double *e2el, double *itl);
void serve_metrics(const ServeRecord *rec, int n, ServeMetrics *m);
