// lora: low-rank adapters with PEFT's semantics (see lora.h). The adapter's term of a linear layer
// is two small matmuls through the same Backend ops as the base:
//   xd = dropout(x)  (training only)     u = xd A^T  (N, r)     out += scale * u B^T
// u is kept per layer and target for the backward; the dropout mask is redrawn from its seed.
#include "lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char *const lora_target_names[LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};

typedef struct {
    float *u;        // (n_on, L, cap_N, r): u of every enabled target and layer, in target order
    int slot[LORA_N_TARGETS];  // target -> its index among the enabled ones
    float *xd, *dxd; // (cap_N, max_in) dropout(x) and its gradient (scratch)
    float *du;       // (cap_N, r) scratch
    size_t cap_N;
    float p;         // dropout probability of the last forward (0 in eval)
    uint64_t seed;   // m->dropout_seed of the last forward
} LoraInternal;

// ---------------------------------------------------------------------------------------------
// targets

unsigned lora_parse_targets(const char *list) {
    if (strcmp(list, "all") == 0) return (1u << LORA_N_TARGETS) - 1;
    unsigned mask = 0;
    const char *s = list;
    while (1) {
        size_t len = strcspn(s, ",");
        int found = -1;
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (strlen(lora_target_names[t]) == len && strncmp(s, lora_target_names[t], len) == 0) found = t;
        if (found < 0)
            lab_die("LoRA targets '%s': expected a comma list of q,k,v,o,gate,up,down (or 'all'), "
                    "found '%.*s'", list, (int)len, s);
        mask |= 1u << found;
        if (s[len] == '\0') break;
        s += len + 1;
    }
    return mask;
}

const char *lora_format_targets(unsigned targets) {
    static char buf[64];
    buf[0] = '\0';
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (targets & (1u << t)) {
            if (buf[0]) strcat(buf, ",");
            strcat(buf, lora_target_names[t]);
        }
    return buf;
}

void lora_target_shape(const ModelConfig *cfg, int target, int *in, int *out) {
    int C = cfg->dim, F = cfg->ffn_dim, KVC = cfg->n_kv_heads * (cfg->dim / cfg->n_heads);
    switch (target) {
    case LORA_Q: case LORA_O: *in = C; *out = C; break;
    case LORA_K: case LORA_V: *in = C; *out = KVC; break;
    case LORA_GATE: case LORA_UP: *in = C; *out = F; break;
    case LORA_DOWN: *in = F; *out = C; break;
    default: lab_die("internal: no LoRA target %d", target);
    }
}

// the base weight (out, in) that target t adapts at layer l
static float *base_weight(Model *m, int target, int layer) {
    int in, out;
    lora_target_shape(&m->cfg, target, &in, &out);
    float *const bases[LORA_N_TARGETS] = {m->params.wq, m->params.wk, m->params.wv, m->params.wo,
                                          m->params.w_gate, m->params.w_up, m->params.w_down};
    return bases[target] + (size_t)layer * out * in;
}

// ---------------------------------------------------------------------------------------------
// attach, merge, detach

void lora_attach(Model *m, const LoraConfig *lc, uint64_t seed) {
    if (m->lora) lab_die("lora_attach: the model already has an adapter attached");
    if (lc->rank < 1) lab_die("LoRA: rank must be >= 1, found %d", lc->rank);
    if (!(lc->alpha > 0)) lab_die("LoRA: alpha must be > 0, found %g", lc->alpha);
    if (!(lc->dropout >= 0 && lc->dropout < 1))
        lab_die("LoRA: dropout must be in [0, 1), found %g", lc->dropout);
    if (lc->targets == 0 || lc->targets >= (1u << LORA_N_TARGETS))
        lab_die("LoRA: targets must be a non-empty subset of q,k,v,o,gate,up,down, found mask 0x%x",
                lc->targets);
    const Backend *be = m->be;
    int L = m->cfg.n_layers, r = lc->rank;
    LoraState *s = lab_calloc(1, sizeof *s);
    LoraInternal *li = lab_calloc(1, sizeof *li);
    s->cfg = *lc;
    s->scale = lc->alpha / (float)lc->rank;
    s->internal = li;

    size_t offA[LORA_N_TARGETS], offB[LORA_N_TARGETS], n = 0;
    int n_on = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(lc->targets & (1u << t))) continue;
        int in, out;
        lora_target_shape(&m->cfg, t, &in, &out);
        offA[t] = n;
        n += (size_t)L * r * in;
        offB[t] = n;
        n += (size_t)L * out * r;
        li->slot[t] = n_on++;
    }
    s->num_params = n;
    s->params_memory = be->alloc(n * sizeof(float));
    s->grads_memory = be->alloc(n * sizeof(float));
    // A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform_(a=sqrt(5))), each target from its own
    // stream so enabling another target does not change this one's draw; B stays zero.
    float *host = lab_calloc(n, sizeof(float));
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(lc->targets & (1u << t))) continue;
        int in, out;
        lora_target_shape(&m->cfg, t, &in, &out);
        Rng rng;
        rng_seed(&rng, lab_hash64(seed ^ (0x10a0ULL + (uint64_t)t)));
        float bound = 1.0f / sqrtf((float)in);
        for (size_t j = 0; j < (size_t)L * r * in; j++)
            host[offA[t] + j] = (2.0f * rng_uniform(&rng) - 1.0f) * bound;
        s->A[t] = s->params_memory + offA[t];
        s->B[t] = s->params_memory + offB[t];
        s->dA[t] = s->grads_memory + offA[t];
        s->dB[t] = s->grads_memory + offB[t];
    }
    be->upload(s->params_memory, host, n * sizeof(float));
    free(host);
    m->lora = s;
}

void lora_merge(Model *m) {
    LoraState *s = m->lora;
    if (!s) lab_die("lora_merge: no adapter attached");
    int r = s->cfg.rank;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!s->A[t]) continue;
        int in, out;
        lora_target_shape(&m->cfg, t, &in, &out);
        // W (out,in) += scale * B (out,r) @ A (r,in): the input-gradient product of matmul_backward
        for (int l = 0; l < m->cfg.n_layers; l++)
            m->be->matmul_backward(base_weight(m, t, l), NULL, s->B[t] + (size_t)l * out * r, NULL,
                                   s->A[t] + (size_t)l * r * in, out, in, r, s->scale);
    }
    lora_detach(m);
}

// Frees the forward/backward scratch (sized for cap_N rows; there is none before the first forward).
static void free_scratch(const Backend *be, LoraInternal *li) {
    if (!li->u) return;
    be->free(li->u);
    be->free(li->xd);
    be->free(li->dxd);
    be->free(li->du);
    li->u = li->xd = li->dxd = li->du = NULL;
    li->cap_N = 0;
}

void lora_detach(Model *m) {
    LoraState *s = m->lora;
    if (!s) return;
    LoraInternal *li = s->internal;
    const Backend *be = m->be;
    free_scratch(be, li);
    be->free(s->params_memory);
    be->free(s->grads_memory);
    free(li);
    free(s);
    m->lora = NULL;
}

// ---------------------------------------------------------------------------------------------
// forward and backward of the adapter's term

static void reserve(Model *m, int N) {
    LoraState *s = m->lora;
    LoraInternal *li = s->internal;
    if ((size_t)N <= li->cap_N) return;
    const Backend *be = m->be;
    free_scratch(be, li);
    int n_on = 0, max_in = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!s->A[t]) continue;
        int in, out;
        lora_target_shape(&m->cfg, t, &in, &out);
        n_on++;
        if (in > max_in) max_in = in;
    }
    size_t r = s->cfg.rank;
    li->u = be->alloc((size_t)n_on * m->cfg.n_layers * N * r * sizeof(float));
    li->xd = be->alloc((size_t)N * max_in * sizeof(float));
    li->dxd = be->alloc((size_t)N * max_in * sizeof(float));
    li->du = be->alloc((size_t)N * r * sizeof(float));
    li->cap_N = N;
}

static float *u_of(LoraState *s, int L, int layer, int target) {
    LoraInternal *li = s->internal;
    return li->u + (((size_t)li->slot[target] * L + layer) * li->cap_N) * s->cfg.rank;
}

// one mask stream per (forward seed, layer, target); the op mixes in the element index
uint64_t lora_mask_seed(uint64_t seed, int layer, int target) {
    return lab_hash64(seed ^ lab_hash64((uint64_t)layer * LORA_N_TARGETS + (uint64_t)target));
}

void lora_forward(Model *m, int layer, int target, float *out, const float *inp, int N) {
    LoraState *s = m->lora;
    LoraInternal *li = s->internal;
    const Backend *be = m->be;
    reserve(m, N);
    int in, outd, r = s->cfg.rank;
    lora_target_shape(&m->cfg, target, &in, &outd);
    li->p = m->training ? s->cfg.dropout : 0.0f;
    li->seed = m->dropout_seed;
    const float *x = inp;
    if (li->p > 0) {
        be->dropout_forward(li->xd, inp, (size_t)N * in, li->p, lora_mask_seed(li->seed, layer, target));
        x = li->xd;
    }
    float *u = u_of(s, m->cfg.n_layers, layer, target);
    be->matmul_forward(u, x, s->A[target] + (size_t)layer * r * in, N, in, r, 1.0f, 0.0f);
    be->matmul_forward(out, u, s->B[target] + (size_t)layer * outd * r, N, r, outd, s->scale, 1.0f);
}

void lora_backward(Model *m, int layer, int target, float *dinp, const float *dout, const float *inp,
                   int N) {
    LoraState *s = m->lora;
    LoraInternal *li = s->internal;
    const Backend *be = m->be;
    int in, outd, r = s->cfg.rank;
    lora_target_shape(&m->cfg, target, &in, &outd);
    const float *A = s->A[target] + (size_t)layer * r * in, *Bm = s->B[target] + (size_t)layer * outd * r;
    float *dA = s->dA[target] + (size_t)layer * r * in, *dB = s->dB[target] + (size_t)layer * outd * r;
    // out += scale * u B^T:  du = scale * dout B,  dB += scale * dout^T u
    be->zero(li->du, (size_t)N * r * sizeof(float));
    be->matmul_backward(li->du, dB, dout, u_of(s, m->cfg.n_layers, layer, target), Bm, N, r, outd,
                        s->scale);
    // u = xd A^T:  dxd = du A,  dA += du^T xd;  xd = dropout(x)
    if (li->p > 0) {
        uint64_t seed = lora_mask_seed(li->seed, layer, target);
        be->dropout_forward(li->xd, inp, (size_t)N * in, li->p, seed);
        be->zero(li->dxd, (size_t)N * in * sizeof(float));
        be->matmul_backward(dinp ? li->dxd : NULL, dA, li->du, li->xd, A, N, in, r, 1.0f);
        be->dropout_backward(dinp, li->dxd, (size_t)N * in, li->p, seed);
    } else {
        be->matmul_backward(dinp, dA, li->du, inp, A, N, in, r, 1.0f);
    }
}
