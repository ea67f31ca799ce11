// model: a LLaMA-style decoder (RMSNorm, RoPE, SwiGLU, tied embeddings, causal attention, GQA).
// All parameters live in one slab (params_memory) with a struct of named pointers into it; the
// same for gradients. Layer weights are stacked over layers: wq is (L, C, C) row-major, i.e.
// layer l's (OC, IC) matrix at wq + l*C*C, applied as out = inp @ W^T (the nn.Linear layout).
// The math runs through a Backend ops table (backend.h), so a CUDA backend can slot in beside the
// CPU one without touching this code.
// RoPE rotates the pairs (2i, 2i+1) of each head (the original LLaMA / llama2.c layout, not Hugging
// Face's half-split) by t * rope_theta^(-2i/head_dim) at position t of the sequence.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "backend.h"

typedef struct {
    int vocab_size;   // V
    int dim;          // C
    int n_layers;     // L
    int n_heads;      // NH; head_dim = C / NH
    int n_kv_heads;   // NKV; divides NH (GQA); == NH for plain multi-head attention
    int ffn_dim;      // F, SwiGLU hidden size
    int max_seq_len;  // T_max, RoPE table size
    float norm_eps;   // RMSNorm epsilon (1e-5)
    float rope_theta; // 10000
} ModelConfig;

#define N_PARAM_TENSORS 11
typedef struct {
    float *tok_emb;     // (V, C), tied: also the output head
    float *attn_norm;   // (L, C)
    float *wq;          // (L, C, C)
    float *wk;          // (L, NKV*HD, C)
    float *wv;          // (L, NKV*HD, C)
    float *wo;          // (L, C, C)
    float *ffn_norm;    // (L, C)
    float *w_gate;      // (L, F, C)
    float *w_up;        // (L, F, C)
    float *w_down;      // (L, C, F)
    float *final_norm;  // (C)
} ParamTensors;

// names as stored in checkpoints ("tok_emb", "attn_norm", "wq", ...), in ParamTensors order
extern const char *const param_tensor_names[N_PARAM_TENSORS];
// shape of tensor i: rank 1..3 into dims
void model_param_shape(const ModelConfig *cfg, int i, int *rank, uint64_t dims[3]);
size_t model_num_params(const ModelConfig *cfg);
// RoPE tables for positions 0..T-1, each (T, HD/2) on the host: angle(t, i) = t * theta^(-2i/HD),
// computed in double and rounded once (the training forward and the cached inference share them)
void model_rope_tables(const ModelConfig *cfg, int T, float *cos_tab, float *sin_tab);
// dies with a message naming the field when a config is inconsistent (e.g. C % NH != 0)
void model_config_check(const ModelConfig *cfg);

typedef struct LoraState LoraState;   // lora.h

typedef struct {
    ModelConfig cfg;
    const Backend *be;
    ParamTensors params;  float *params_memory; size_t num_params;
    ParamTensors grads;   float *grads_memory;  // allocated on first backward; NULL when frozen
    size_t param_sizes[N_PARAM_TENSORS];
    // activations, sized for (B, T) at the first forward and reused while B*T fits
    int B, T;             // shape of the last forward
    float *acts_memory; size_t acts_size;
    float *logits;        // (B, T, V) after forward
    float *losses;        // (B, T) per-position cross-entropy (nats) after forward with targets; 0 where ignored
    float mean_loss;      // mean over positions with target >= 0; -1 when forward had no targets
    int training;         // 1: LoRA dropout active; 0: eval
    uint64_t dropout_seed;// set per step by the trainer, so a resumed run draws the same masks
    LoraState *lora;      // NULL when no adapter is attached
    void *internal;       // backend/activation bookkeeping owned by model.c
} Model;

void model_init(Model *m, const ModelConfig *cfg, const Backend *be);  // allocates params (zeroed)
// GPT-2 style init: N(0, 0.02), residual output projections (wo, w_down) scaled by 1/sqrt(2L),
// norms to 1. Same seed, same weights.
void model_init_random(Model *m, uint64_t seed);
// inputs, targets: (B, T) token ids. targets may be NULL (logits only); a target < 0 is ignored.
// Returns mean_loss (or -1 without targets).
float model_forward(Model *m, const int32_t *inputs, const int32_t *targets, int B, int T);
void model_zero_grad(Model *m);
// Backward of the mean loss of the last forward. Accumulates (+=) into the trainable gradients:
// the full parameters when no adapter is attached, the adapter's otherwise (base frozen).
void model_backward(Model *m);
// The trainable parameters and their gradients as one slab each (for the optimizer and clipping).
void model_trainable(Model *m, float **params, float **grads, size_t *n);
void model_free(Model *m);
