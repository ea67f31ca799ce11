// lora: low-rank adapters on any of q,k,v,o,gate,up,down, with PEFT's semantics:
//   y = x W^T + scale * dropout(x) A^T B^T,   A (r, in) Kaiming-uniform (bound 1/sqrt(in)),
//   B (out, r) zero, scale = alpha / r. Only A and B train; the base stays frozen.
// The adapter parameters live in one slab of their own (saved alone in HDF5 by the trainer), laid
// out target by target in LORA_TARGET order, each stacked over layers: A (L, r, in), B (L, out, r).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "model.h"

enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };
extern const char *const lora_target_names[LORA_N_TARGETS];   // "q","k","v","o","gate","up","down"

typedef struct {
    int rank;          // r
    float alpha;       // scale = alpha / r
    float dropout;     // probability, on the adapter's input only (as PEFT)
    unsigned targets;  // bit (1u << LORA_Q) etc.
} LoraConfig;

// "q,k,v,o,gate,up,down" or "all" -> bitmask; dies naming the bad entry
unsigned lora_parse_targets(const char *list);
// back to the comma list, in LORA_TARGET order (static buffer)
const char *lora_format_targets(unsigned targets);

struct LoraState {
    LoraConfig cfg;
    float scale;
    float *params_memory; float *grads_memory; size_t num_params;
    float *A[LORA_N_TARGETS];   // (L, r, in) or NULL when the target is off; points into params_memory
    float *B[LORA_N_TARGETS];   // (L, out, r)
    float *dA[LORA_N_TARGETS];  // gradients, same layout in grads_memory
    float *dB[LORA_N_TARGETS];
    void *internal;             // activation buffers owned by lora.c / model.c
};

// in and out sizes of target t's matrices for this model
void lora_target_shape(const ModelConfig *cfg, int target, int *in, int *out);
// Attaches a fresh adapter: A Kaiming-uniform from seed, B zero. Afterwards model_trainable()
// returns the adapter slab.
void lora_attach(Model *m, const LoraConfig *lc, uint64_t seed);
// Folds scale * B A into the base weights and detaches the adapter.
void lora_merge(Model *m);
void lora_detach(Model *m);

// The adapter's term inside one linear layer, called by model.c where target t of layer l runs:
// out (N,out) += scale * dropout(inp) A^T B^T, inp (N,in). Dropout is active only while
// m->training, its mask drawn from m->dropout_seed mixed with layer, target and element index.
void lora_forward(Model *m, int layer, int target, float *out, const float *inp, int N);
// Its backward, with the mask of the last forward: dA, dB += their gradients; dinp (N,in) += the
// input gradient of the adapter's term (the base weight's part is model.c's).
void lora_backward(Model *m, int layer, int target, float *dinp, const float *dout, const float *inp,
                   int N);
// The seed of the dropout mask of target t at layer l for a forward with m->dropout_seed = seed:
// element i of that layer's (N, in) adapter input is kept as backend dropout_forward(..., p, this)
// keeps it (exposed so tests can rebuild the mask).
uint64_t lora_mask_seed(uint64_t seed, int layer, int target);
