// model: the LLaMA-style decoder's forward and backward, written once over the Backend ops table.
//
//   x = tok_emb[inputs]
//   per layer:  x = x + wo(attention(rope(wq an), rope(wk an), wv an)),  an = rmsnorm(x) * attn_norm
//               x = x + w_down(silu(w_gate fn) * w_up fn),             fn = rmsnorm(x) * ffn_norm
//   logits = (rmsnorm(x) * final_norm) @ tok_emb^T   (tied embeddings)
//   loss = mean over positions with target >= 0 of cross-entropy(logits, target)
//
// Every linear layer goes through linear_forward/linear_backward, where an attached LoRA adapter
// adds its low-rank term (lora.c). With an adapter the base is frozen: its weight gradients are
// neither allocated nor computed, but the input gradients still flow through the frozen weights.
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lora.h"

const char *const param_tensor_names[N_PARAM_TENSORS] = {
    "tok_emb", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down", "final_norm"};

// ---------------------------------------------------------------------------------------------
// configuration and parameter shapes

void model_config_check(const ModelConfig *c) {
    if (c->vocab_size < 1) lab_die("model config: vocab_size must be >= 1, found %d", c->vocab_size);
    if (c->dim < 1) lab_die("model config: dim must be >= 1, found %d", c->dim);
    if (c->n_layers < 1) lab_die("model config: n_layers must be >= 1, found %d", c->n_layers);
    if (c->n_heads < 1 || c->dim % c->n_heads != 0)
        lab_die("model config: n_heads must divide dim (%d), found %d", c->dim, c->n_heads);
    if ((c->dim / c->n_heads) % 2 != 0)
        lab_die("model config: head_dim = dim/n_heads must be even for RoPE, found %d", c->dim / c->n_heads);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
        lab_die("model config: n_kv_heads must divide n_heads (%d), found %d", c->n_heads, c->n_kv_heads);
    if (c->ffn_dim < 1) lab_die("model config: ffn_dim must be >= 1, found %d", c->ffn_dim);
    if (c->max_seq_len < 1) lab_die("model config: max_seq_len must be >= 1, found %d", c->max_seq_len);
    if (!(c->norm_eps > 0)) lab_die("model config: norm_eps must be > 0, found %g", c->norm_eps);
    if (!(c->rope_theta > 0)) lab_die("model config: rope_theta must be > 0, found %g", c->rope_theta);
}

void model_param_shape(const ModelConfig *cfg, int i, int *rank, uint64_t dims[3]) {
    uint64_t V = cfg->vocab_size, C = cfg->dim, L = cfg->n_layers, F = cfg->ffn_dim;
    uint64_t KVC = (uint64_t)cfg->n_kv_heads * (cfg->dim / cfg->n_heads);
    switch (i) {
    case 0: *rank = 2; dims[0] = V; dims[1] = C; break;                      // tok_emb
    case 1: case 6: *rank = 2; dims[0] = L; dims[1] = C; break;              // attn_norm, ffn_norm
    case 2: case 5: *rank = 3; dims[0] = L; dims[1] = C; dims[2] = C; break; // wq, wo
    case 3: case 4: *rank = 3; dims[0] = L; dims[1] = KVC; dims[2] = C; break; // wk, wv
    case 7: case 8: *rank = 3; dims[0] = L; dims[1] = F; dims[2] = C; break; // w_gate, w_up
    case 9: *rank = 3; dims[0] = L; dims[1] = C; dims[2] = F; break;         // w_down
    case 10: *rank = 1; dims[0] = C; break;                                  // final_norm
    default: lab_die("internal: no parameter tensor %d", i);
    }
}

static size_t param_tensor_size(const ModelConfig *cfg, int i) {
    int rank;
    uint64_t dims[3];
    model_param_shape(cfg, i, &rank, dims);
    size_t n = 1;
    for (int d = 0; d < rank; d++) n *= dims[d];
    return n;
}

size_t model_num_params(const ModelConfig *cfg) {
    size_t n = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) n += param_tensor_size(cfg, i);
    return n;
}

static void point_tensors(ParamTensors *t, float *mem, const size_t sizes[N_PARAM_TENSORS]) {
    float **ptrs[N_PARAM_TENSORS] = {&t->tok_emb, &t->attn_norm, &t->wq, &t->wk, &t->wv, &t->wo,
                                     &t->ffn_norm, &t->w_gate, &t->w_up, &t->w_down, &t->final_norm};
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        *ptrs[i] = mem;
        mem += sizes[i];
    }
}

// ---------------------------------------------------------------------------------------------
// activations: what the forward keeps for the backward, stacked over layers, N = B*T rows

typedef struct {
    float *res;              // (L+1, N, C) residual stream: res[l] enters layer l, res[L] leaves the last
    float *an, *an_rstd;     // (L, N, C), (L, N) attention rmsnorm
    float *q, *k, *v;        // (L, N, C), (L, N, KVC), (L, N, KVC); q and k after RoPE
    float *att;              // (L, B, NH, T, T) softmax probabilities
    float *ao;               // (L, N, C) attention output, wo's input
    float *res_mid;          // (L, N, C) after the attention residual
    float *fn, *fn_rstd;     // (L, N, C), (L, N) ffn rmsnorm
    float *gate, *up, *hid;  // (L, N, F); hid = silu(gate) * up, w_down's input
    float *proj;             // (N, C) a branch's output before its residual add (scratch)
    float *xf, *xf_rstd;     // (N, C), (N) final rmsnorm
    float *logits;           // (N, V)
    float *losses;           // (N)
} Acts;

// gradients of the activations: one layer's worth, reused from the last layer down
typedef struct {
    float *dres;                 // (N, C) gradient of the residual stream at the current point
    float *dres_mid, *dproj;     // (N, C)   (dres_mid .. dk_pre: one block, zeroed per layer)
    float *dfn, *dan, *dao;      // (N, C)
    float *dq, *dq_pre;          // (N, C)   after / before RoPE
    float *dk, *dk_pre, *dv;     // (N, KVC)
    float *dgate, *dup, *dhid;   // (N, F)
    float *datt;                 // (B, NH, T, T) scratch
    float *dxf;                  // (N, C)
    float *dlogits;              // (N, V)
    float *memory; size_t layer_block;  // the slab; floats from dres_mid to the end of dhid
} GradActs;

typedef struct {
    Acts a;
    GradActs g;
    size_t cap_N, cap_att;       // rows and attention entries the activations were sized for
    size_t gcap_N, gcap_att;     // the same for the gradient activations
    int32_t *inputs, *targets;   // (cap_N) backend copies of the last forward's ids
    int has_targets;
    int n_counted;               // positions with target >= 0 in the last forward
    float *rope_cos, *rope_sin;  // (T_max, HD/2)
    float *host_losses;          // (cap_N) host copy for the mean
} ModelInternal;

#define KVDIM(c) ((c)->n_kv_heads * ((c)->dim / (c)->n_heads))

// Lays out `count` consecutive arrays of the given sizes in slab (or only sums them when slab is
// NULL); returns the floats used.
static size_t carve(float *slab, float **ptrs[], const size_t sizes[], int count) {
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        if (slab) *ptrs[i] = slab + off;
        off += (sizes[i] + 15) / 16 * 16;  // 64-byte aligned arrays
    }
    return off;
}

static void acts_reserve(Model *m, int B, int T) {
    ModelInternal *mi = m->internal;
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)B * T, L = c->n_layers, C = c->dim, KVC = KVDIM(c), F = c->ffn_dim;
    size_t att = (size_t)B * c->n_heads * T * T;
    if (N <= mi->cap_N && att <= mi->cap_att) return;
    if (N < mi->cap_N) N = mi->cap_N;
    if (att < mi->cap_att) att = mi->cap_att;
    const Backend *be = m->be;
    if (m->acts_memory) {
        be->free(m->acts_memory);
        be->free(mi->inputs);
        be->free(mi->targets);
        free(mi->host_losses);
    }
    Acts *a = &mi->a;
    float **ptrs[] = {&a->res, &a->an, &a->an_rstd, &a->q, &a->k, &a->v, &a->att, &a->ao, &a->res_mid,
                      &a->fn, &a->fn_rstd, &a->gate, &a->up, &a->hid, &a->proj, &a->xf, &a->xf_rstd,
                      &a->logits, &a->losses};
    size_t sizes[] = {(L + 1) * N * C, L * N * C, L * N, L * N * C, L * N * KVC, L * N * KVC, L * att,
                      L * N * C, L * N * C, L * N * C, L * N, L * N * F, L * N * F, L * N * F, N * C,
                      N * C, N, N * (size_t)c->vocab_size, N};
    int count = (int)(sizeof sizes / sizeof *sizes);
    m->acts_size = carve(NULL, ptrs, sizes, count);
    m->acts_memory = be->alloc(m->acts_size * sizeof(float));
    carve(m->acts_memory, ptrs, sizes, count);
    mi->inputs = be->alloc(N * sizeof(int32_t));
    mi->targets = be->alloc(N * sizeof(int32_t));
    mi->host_losses = lab_calloc(N, sizeof(float));
    mi->cap_N = N;
    mi->cap_att = att;
}

static void grad_acts_reserve(Model *m) {
    ModelInternal *mi = m->internal;
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)m->B * m->T, C = c->dim, KVC = KVDIM(c), F = c->ffn_dim;
    size_t att = (size_t)m->B * c->n_heads * m->T * m->T;
    if (mi->g.memory && N <= mi->gcap_N && att <= mi->gcap_att) return;
    if (N < mi->gcap_N) N = mi->gcap_N;
    if (att < mi->gcap_att) att = mi->gcap_att;
    GradActs *g = &mi->g;
    if (g->memory) m->be->free(g->memory);
    // dres_mid .. dhid first: the block zeroed at every layer
    float **ptrs[] = {&g->dres_mid, &g->dproj, &g->dfn, &g->dan, &g->dao, &g->dq, &g->dq_pre, &g->dk,
                      &g->dk_pre, &g->dv, &g->dgate, &g->dup, &g->dhid,
                      &g->dres, &g->datt, &g->dxf, &g->dlogits};
    size_t sizes[] = {N * C, N * C, N * C, N * C, N * C, N * C, N * C, N * KVC, N * KVC, N * KVC,
                      N * F, N * F, N * F, N * C, att, N * C, N * (size_t)c->vocab_size};
    int count = (int)(sizeof sizes / sizeof *sizes);
    g->layer_block = carve(NULL, ptrs, sizes, 13);
    size_t total = carve(NULL, ptrs, sizes, count);
    g->memory = m->be->alloc(total * sizeof(float));
    carve(g->memory, ptrs, sizes, count);
    mi->gcap_N = N;
    mi->gcap_att = att;
}

// ---------------------------------------------------------------------------------------------
// life cycle

void model_rope_tables(const ModelConfig *cfg, int T, float *cos_tab, float *sin_tab) {
    int HD = cfg->dim / cfg->n_heads, half = HD / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double angle = t * pow((double)cfg->rope_theta, -2.0 * i / HD);
            cos_tab[(size_t)t * half + i] = (float)cos(angle);
            sin_tab[(size_t)t * half + i] = (float)sin(angle);
        }
}

void model_init(Model *m, const ModelConfig *cfg, const Backend *be) {
    model_config_check(cfg);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    for (int i = 0; i < N_PARAM_TENSORS; i++) m->param_sizes[i] = param_tensor_size(cfg, i);
    m->num_params = model_num_params(cfg);
    m->params_memory = be->alloc(m->num_params * sizeof(float));
    point_tensors(&m->params, m->params_memory, m->param_sizes);
    m->mean_loss = -1.0f;

    ModelInternal *mi = lab_calloc(1, sizeof *mi);
    m->internal = mi;
    size_t n = (size_t)cfg->max_seq_len * (cfg->dim / cfg->n_heads / 2);
    float *cs = lab_malloc(n * sizeof(float)), *sn = lab_malloc(n * sizeof(float));
    model_rope_tables(cfg, cfg->max_seq_len, cs, sn);
    mi->rope_cos = be->alloc(n * sizeof(float));
    mi->rope_sin = be->alloc(n * sizeof(float));
    be->upload(mi->rope_cos, cs, n * sizeof(float));
    be->upload(mi->rope_sin, sn, n * sizeof(float));
    free(cs);
    free(sn);
}

void model_init_random(Model *m, uint64_t seed) {
    const ModelConfig *c = &m->cfg;
    float *host = lab_malloc(m->num_params * sizeof(float));
    Rng rng;
    rng_seed(&rng, seed);
    float residual_std = 0.02f / sqrtf(2.0f * c->n_layers);
    size_t off = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        int is_norm = i == 1 || i == 6 || i == 10, is_residual_out = i == 5 || i == 9;
        float std = is_residual_out ? residual_std : 0.02f;
        for (size_t j = 0; j < m->param_sizes[i]; j++)
            host[off + j] = is_norm ? 1.0f : std * rng_normal(&rng);
        off += m->param_sizes[i];
    }
    m->be->upload(m->params_memory, host, m->num_params * sizeof(float));
    free(host);
}

void model_free(Model *m) {
    if (m->lora) lora_detach(m);
    ModelInternal *mi = m->internal;
    const Backend *be = m->be;
    be->free(m->params_memory);
    if (m->grads_memory) be->free(m->grads_memory);
    if (m->acts_memory) {
        be->free(m->acts_memory);
        be->free(mi->inputs);
        be->free(mi->targets);
        free(mi->host_losses);
    }
    if (mi->g.memory) be->free(mi->g.memory);
    be->free(mi->rope_cos);
    be->free(mi->rope_sin);
    free(mi);
    memset(m, 0, sizeof *m);
}

static void grads_ensure(Model *m) {
    if (m->grads_memory) return;
    m->grads_memory = m->be->alloc(m->num_params * sizeof(float));
    point_tensors(&m->grads, m->grads_memory, m->param_sizes);
}

void model_trainable(Model *m, float **params, float **grads, size_t *n) {
    if (m->lora) {
        *params = m->lora->params_memory;
        *grads = m->lora->grads_memory;
        *n = m->lora->num_params;
        return;
    }
    grads_ensure(m);
    *params = m->params_memory;
    *grads = m->grads_memory;
    *n = m->num_params;
}

void model_zero_grad(Model *m) {
    float *p, *g;
    size_t n;
    model_trainable(m, &p, &g, &n);
    m->be->zero(g, n * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// linear layers, with the adapter's term where one is attached

static void linear_forward(Model *m, int layer, int target, float *out, const float *inp,
                           const float *weight, int N, int IC, int OC) {
    m->be->matmul_forward(out, inp, weight, N, IC, OC, 1.0f, 0.0f);
    if (m->lora && m->lora->A[target]) lora_forward(m, layer, target, out, inp, N);
}

// dweight is NULL when the base is frozen
static void linear_backward(Model *m, int layer, int target, float *dinp, float *dweight,
                            const float *dout, const float *inp, const float *weight, int N, int IC,
                            int OC) {
    m->be->matmul_backward(dinp, dweight, dout, inp, weight, N, IC, OC, 1.0f);
    if (m->lora && m->lora->A[target]) lora_backward(m, layer, target, dinp, dout, inp, N);
}

// ---------------------------------------------------------------------------------------------
// forward

float model_forward(Model *m, const int32_t *inputs, const int32_t *targets, int B, int T) {
    const ModelConfig *c = &m->cfg;
    if (B < 1 || T < 1 || T > c->max_seq_len)
        lab_die("model_forward: expected 1 <= T <= max_seq_len (%d) and B >= 1, found B=%d T=%d",
                c->max_seq_len, B, T);
    int N = B * T, C = c->dim, L = c->n_layers, NH = c->n_heads, NKV = c->n_kv_heads;
    int HD = C / NH, KVC = KVDIM(c), F = c->ffn_dim, V = c->vocab_size;
    for (int n = 0; n < N; n++) {
        if (inputs[n] < 0 || inputs[n] >= V)
            lab_die("model_forward: token id %d at position %d is outside the vocabulary (0..%d)",
                    inputs[n], n, V - 1);
        if (targets && targets[n] >= V)
            lab_die("model_forward: target id %d at position %d is outside the vocabulary (0..%d)",
                    targets[n], n, V - 1);
    }
    acts_reserve(m, B, T);
    ModelInternal *mi = m->internal;
    const Backend *be = m->be;
    Acts *a = &mi->a;
    ParamTensors *p = &m->params;
    m->B = B;
    m->T = T;
    m->logits = a->logits;
    m->losses = a->losses;
    be->upload(mi->inputs, inputs, (size_t)N * sizeof(int32_t));
    mi->has_targets = targets != NULL;
    if (targets) be->upload(mi->targets, targets, (size_t)N * sizeof(int32_t));

    size_t NC = (size_t)N * C, NKVC = (size_t)N * KVC, NF = (size_t)N * F;
    size_t att_size = (size_t)B * NH * T * T;
    be->embedding_forward(a->res, mi->inputs, p->tok_emb, N, C);
    for (int l = 0; l < L; l++) {
        float *res = a->res + l * NC, *res_out = a->res + (l + 1) * NC;
        float *an = a->an + l * NC, *an_rstd = a->an_rstd + (size_t)l * N;
        float *q = a->q + l * NC, *k = a->k + l * NKVC, *v = a->v + l * NKVC;
        float *att = a->att + l * att_size, *ao = a->ao + l * NC, *res_mid = a->res_mid + l * NC;
        float *fn = a->fn + l * NC, *fn_rstd = a->fn_rstd + (size_t)l * N;
        float *gate = a->gate + l * NF, *up = a->up + l * NF, *hid = a->hid + l * NF;

        be->rmsnorm_forward(an, an_rstd, res, p->attn_norm + (size_t)l * C, N, C, c->norm_eps);
        linear_forward(m, l, LORA_Q, q, an, p->wq + (size_t)l * C * C, N, C, C);
        linear_forward(m, l, LORA_K, k, an, p->wk + (size_t)l * KVC * C, N, C, KVC);
        linear_forward(m, l, LORA_V, v, an, p->wv + (size_t)l * KVC * C, N, C, KVC);
        be->rope_forward(q, q, mi->rope_cos, mi->rope_sin, B, T, NH, HD);
        be->rope_forward(k, k, mi->rope_cos, mi->rope_sin, B, T, NKV, HD);
        be->attention_forward(ao, att, q, k, v, B, T, NH, NKV, HD);
        linear_forward(m, l, LORA_O, a->proj, ao, p->wo + (size_t)l * C * C, N, C, C);
        be->residual_forward(res_mid, res, a->proj, NC);

        be->rmsnorm_forward(fn, fn_rstd, res_mid, p->ffn_norm + (size_t)l * C, N, C, c->norm_eps);
        linear_forward(m, l, LORA_GATE, gate, fn, p->w_gate + (size_t)l * F * C, N, C, F);
        linear_forward(m, l, LORA_UP, up, fn, p->w_up + (size_t)l * F * C, N, C, F);
        be->swiglu_forward(hid, gate, up, NF);
        linear_forward(m, l, LORA_DOWN, a->proj, hid, p->w_down + (size_t)l * C * F, N, F, C);
        be->residual_forward(res_out, res_mid, a->proj, NC);
    }
    be->rmsnorm_forward(a->xf, a->xf_rstd, a->res + L * NC, p->final_norm, N, C, c->norm_eps);
    be->matmul_forward(a->logits, a->xf, p->tok_emb, N, C, V, 1.0f, 0.0f);

    if (!targets) {
        be->zero(a->losses, (size_t)N * sizeof(float));
        m->mean_loss = -1.0f;
        return m->mean_loss;
    }
    be->crossentropy_forward(a->losses, a->logits, mi->targets, N, V);
    be->download(mi->host_losses, a->losses, (size_t)N * sizeof(float));
    double sum = 0.0;
    mi->n_counted = 0;
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) {
            sum += mi->host_losses[n];
            mi->n_counted++;
        }
    m->mean_loss = mi->n_counted ? (float)(sum / mi->n_counted) : 0.0f;
    return m->mean_loss;
}

// ---------------------------------------------------------------------------------------------
// backward

void model_backward(Model *m) {
    ModelInternal *mi = m->internal;
    if (!mi->has_targets) lab_die("model_backward: the last forward had no targets");
    const ModelConfig *c = &m->cfg;
    const Backend *be = m->be;
    int B = m->B, T = m->T, N = B * T, C = c->dim, L = c->n_layers, NH = c->n_heads;
    int NKV = c->n_kv_heads, HD = C / NH, KVC = KVDIM(c), F = c->ffn_dim, V = c->vocab_size;
    int frozen = m->lora != NULL;
    if (!frozen) grads_ensure(m);
    grad_acts_reserve(m);
    Acts *a = &mi->a;
    GradActs *g = &mi->g;
    ParamTensors *p = &m->params;
    // d(weight) of tensor `field` at layer l, or NULL when the base is frozen
#define DW(field, l, per) (frozen ? NULL : m->grads.field + (size_t)(l) * (per))
    size_t NC = (size_t)N * C, NKVC = (size_t)N * KVC, NF = (size_t)N * F;
    size_t att_size = (size_t)B * NH * T * T;
    float dloss = mi->n_counted ? 1.0f / (float)mi->n_counted : 0.0f;

    be->zero(g->dlogits, (size_t)N * V * sizeof(float));
    be->crossentropy_backward(g->dlogits, a->logits, mi->targets, dloss, N, V);
    be->zero(g->dxf, NC * sizeof(float));
    be->matmul_backward(g->dxf, DW(tok_emb, 0, 0), g->dlogits, a->xf, p->tok_emb, N, C, V, 1.0f);
    be->zero(g->dres, NC * sizeof(float));
    be->rmsnorm_backward(g->dres, DW(final_norm, 0, 0), g->dxf, a->res + L * NC, p->final_norm,
                         a->xf_rstd, N, C);

    for (int l = L - 1; l >= 0; l--) {
        float *res = a->res + l * NC;
        float *an = a->an + l * NC, *an_rstd = a->an_rstd + (size_t)l * N;
        float *q = a->q + l * NC, *k = a->k + l * NKVC, *v = a->v + l * NKVC;
        float *att = a->att + l * att_size, *ao = a->ao + l * NC, *res_mid = a->res_mid + l * NC;
        float *fn = a->fn + l * NC, *fn_rstd = a->fn_rstd + (size_t)l * N;
        float *gate = a->gate + l * NF, *up = a->up + l * NF, *hid = a->hid + l * NF;
        be->zero(g->dres_mid, g->layer_block * sizeof(float));

        // feed-forward half: res_out = res_mid + w_down(silu(w_gate fn) * w_up fn)
        be->residual_backward(g->dres_mid, g->dproj, g->dres, NC);
        linear_backward(m, l, LORA_DOWN, g->dhid, DW(w_down, l, (size_t)C * F), g->dproj, hid,
                        p->w_down + (size_t)l * C * F, N, F, C);
        be->swiglu_backward(g->dgate, g->dup, g->dhid, gate, up, NF);
        linear_backward(m, l, LORA_GATE, g->dfn, DW(w_gate, l, (size_t)F * C), g->dgate, fn,
                        p->w_gate + (size_t)l * F * C, N, C, F);
        linear_backward(m, l, LORA_UP, g->dfn, DW(w_up, l, (size_t)F * C), g->dup, fn,
                        p->w_up + (size_t)l * F * C, N, C, F);
        be->rmsnorm_backward(g->dres_mid, DW(ffn_norm, l, C), g->dfn, res_mid,
                             p->ffn_norm + (size_t)l * C, fn_rstd, N, C);

        // attention half: res_mid = res + wo(attention(...))
        be->zero(g->dres, NC * sizeof(float));
        be->zero(g->dproj, NC * sizeof(float));
        be->residual_backward(g->dres, g->dproj, g->dres_mid, NC);
        linear_backward(m, l, LORA_O, g->dao, DW(wo, l, (size_t)C * C), g->dproj, ao,
                        p->wo + (size_t)l * C * C, N, C, C);
        be->attention_backward(g->dq, g->dk, g->dv, g->datt, g->dao, att, q, k, v, B, T, NH, NKV, HD);
        be->rope_backward(g->dq_pre, g->dq, mi->rope_cos, mi->rope_sin, B, T, NH, HD);
        be->rope_backward(g->dk_pre, g->dk, mi->rope_cos, mi->rope_sin, B, T, NKV, HD);
        linear_backward(m, l, LORA_Q, g->dan, DW(wq, l, (size_t)C * C), g->dq_pre, an,
                        p->wq + (size_t)l * C * C, N, C, C);
        linear_backward(m, l, LORA_K, g->dan, DW(wk, l, (size_t)KVC * C), g->dk_pre, an,
                        p->wk + (size_t)l * KVC * C, N, C, KVC);
        linear_backward(m, l, LORA_V, g->dan, DW(wv, l, (size_t)KVC * C), g->dv, an,
                        p->wv + (size_t)l * KVC * C, N, C, KVC);
        be->rmsnorm_backward(g->dres, DW(attn_norm, l, C), g->dan, res, p->attn_norm + (size_t)l * C,
                             an_rstd, N, C);
    }
    be->embedding_backward(DW(tok_emb, 0, 0), g->dres, mi->inputs, N, C);
#undef DW
}
