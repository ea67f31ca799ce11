// optim: AdamW with decoupled weight decay, warmup + cosine learning-rate schedule, global
// gradient-norm clipping.
//
// Weight decay is applied to 2-D weight matrices only (embedding, attention and FFN projections,
// LoRA A and B), never to RMSNorm gains or other 1-D vectors: decaying a norm gain pulls it
// towards 0, which shrinks the layer's output instead of regularising it (the GPT-2/llm.c and
// nanoGPT convention). The optimizer holds a list of slab ranges that decay; the trainer fills it.
//
// Everything here is deterministic: element-wise updates, and reductions summed in fixed chunks
// in a fixed order, so the same inputs give the same bits whatever the thread count.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float lr;            // peak learning rate, reached at the end of warmup
    float lr_min;        // floor of the cosine, reached at total_steps
    int64_t warmup;      // steps of linear warmup
    int64_t total_steps; // the cosine runs from warmup to total_steps
    float beta1, beta2, eps;
    float weight_decay;  // decoupled: p -= lr * wd * p, on the decaying ranges only
    float grad_clip;     // max global L2 norm; <= 0 turns clipping off
} OptimConfig;

// AdamW defaults: lr 3e-4 to 3e-5, betas (0.9, 0.95), eps 1e-8, wd 0.1, clip 1.0
OptimConfig optim_defaults(void);

// Learning rate for the update that makes step `step` (0-based: the first update uses step 0).
// Warmup: lr * (step + 1) / warmup for step < warmup. Then cosine from lr down to lr_min:
// lr_min + (lr - lr_min) * 0.5 * (1 + cos(pi * (step - warmup) / (total_steps - warmup))),
// and lr_min from total_steps on.
float optim_lr(const OptimConfig *c, int64_t step);

typedef struct { size_t offset, count; } OptimRange;

typedef struct {
    OptimConfig cfg;
    size_t n;             // trainable parameters
    float *m, *v;         // first and second moments (n each)
    int64_t step;         // updates done so far (the bias correction uses step + 1)
    OptimRange *decay;    // slab ranges that take weight decay
    int n_decay;
} AdamW;

void adamw_init(AdamW *o, const OptimConfig *cfg, size_t n);  // moments zeroed, step 0
// Marks params[offset, offset + count) as a decaying (2-D weight) range.
void adamw_decay_range(AdamW *o, size_t offset, size_t count);
void adamw_free(AdamW *o);

// Global L2 norm of x[0, n) in double, summed in fixed-size chunks in order (deterministic).
double optim_l2_norm(const float *x, size_t n);
// Multiplies grads by `scale` (1 / accumulation steps), then clips them to max_norm when
// max_norm > 0 and their norm exceeds it (as torch.nn.utils.clip_grad_norm_: factor
// max_norm / (norm + 1e-6)). Returns the norm before clipping (after scaling): NaN or inf when a
// gradient is not finite, which the caller must check.
double optim_scale_and_clip(float *grads, size_t n, float scale, float max_norm);

// One AdamW update with learning rate lr, then step++:
//   p -= lr * wd * p            (decaying ranges only)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),   t = step + 1
void adamw_update(AdamW *o, float *params, const float *grads, float lr);
