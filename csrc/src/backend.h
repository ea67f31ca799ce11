// backend: the ops table the model runs on. model.c and lora.c call the math only through it, so a
// CUDA backend can slot in beside the CPU one. Every pointer an op takes is backend memory (on the
// CPU backend, plain host memory); host data moves in and out with upload/download.
//
// Conventions (the llm.c ones): row-major raw arrays, shapes in the comment of each op, N = B*T
// rows. A forward op writes its output. A backward op ACCUMULATES (+=) into every gradient it is
// given, and skips a gradient passed as NULL (a frozen weight, or an input nobody needs).
#pragma once
#include <stddef.h>
#include <stdint.h>

// Counters a backend keeps for benchmarks: time and floating-point operations spent in the linear
// layers' matmuls and in attention's batched products (lab-bench prints them).
typedef struct {
    double matmul_s, matmul_flop;        // matmul_forward / matmul_backward
    double attention_s, attention_flop;  // the QK^T / PV products inside attention
} BackendStats;

typedef struct Backend {
    const char *name;  // "cpu"

    // memory
    void *(*alloc)(size_t bytes);  // zero-filled; dies on failure
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*upload)(void *dst, const void *src_host, size_t bytes);
    void (*download)(void *dst_host, const void *src, size_t bytes);

    // inp (N) token ids, emb (V,C) -> out (N,C)
    void (*embedding_forward)(float *out, const int32_t *inp, const float *emb, int N, int C);
    void (*embedding_backward)(float *demb, const float *dout, const int32_t *inp, int N, int C);

    // out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps): inp (N,C), weight (C) -> out (N,C), rstd (N)
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *weight,
                            int N, int C, float eps);
    void (*rmsnorm_backward)(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C);

    // out = beta*out + alpha * inp @ weight^T: inp (N,IC), weight (OC,IC) -> out (N,OC)
    void (*matmul_forward)(float *out, const float *inp, const float *weight, int N, int IC, int OC,
                           float alpha, float beta);
    // dinp (N,IC) += alpha * dout @ weight;  dweight (OC,IC) += alpha * dout^T @ inp
    void (*matmul_backward)(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, int N, int IC, int OC, float alpha);

    // Rotary embedding on pairs (2i, 2i+1) of each head (the original LLaMA / llama2.c layout):
    // x (B,T,NH,HD) at position t rotated by t * theta^(-2i/HD); cos/sin tables (T_max, HD/2).
    // out may equal inp in the forward. The backward rotates by the opposite angle.
    void (*rope_forward)(float *out, const float *inp, const float *cos_tab, const float *sin_tab,
                         int B, int T, int NH, int HD);
    void (*rope_backward)(float *dinp, const float *dout, const float *cos_tab, const float *sin_tab,
                          int B, int T, int NH, int HD);

    // Causal attention with GQA: q (B,T,NH,HD), k and v (B,T,NKV,HD); query head h reads kv head
    // h / (NH/NKV). att (B,NH,T,T) keeps the softmax probabilities (upper triangle 0) for the
    // backward; out (B,T,NH,HD). datt is scratch of att's size (overwritten, not accumulated).
    void (*attention_forward)(float *out, float *att, const float *q, const float *k, const float *v,
                              int B, int T, int NH, int NKV, int HD);
    void (*attention_backward)(float *dq, float *dk, float *dv, float *datt, const float *dout,
                               const float *att, const float *q, const float *k, const float *v,
                               int B, int T, int NH, int NKV, int HD);

    // out = silu(gate) * up, all (N,F) flattened to n elements
    void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, size_t n);

    // out = a + b, all of n elements
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);
    void (*residual_backward)(float *da, float *db, const float *dout, size_t n);

    // losses (N) = logsumexp(logits) - logits[target]; 0 where target < 0. logits (N,V), targets (N)
    void (*crossentropy_forward)(float *losses, const float *logits, const int32_t *targets, int N, int V);
    // dlogits (N,V) += dloss * (softmax(logits) - onehot(target)) on rows with target >= 0
    void (*crossentropy_backward)(float *dlogits, const float *logits, const int32_t *targets,
                                  float dloss, int N, int V);

    // Inverted dropout on n elements: out = inp * keep / (1-p), keep drawn per element index from
    // seed alone (counter-based), so the backward redraws the same mask instead of storing it.
    void (*dropout_forward)(float *out, const float *inp, size_t n, float p, uint64_t seed);
    void (*dropout_backward)(float *dinp, const float *dout, size_t n, float p, uint64_t seed);

    // benchmark counters since the last reset
    void (*stats)(BackendStats *out, int reset);
} Backend;

extern const Backend backend_cpu;
