// infer: the cached forward, the sampler, stop rules and the generation loop (see infer.h).
#include "infer.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// life cycle

void infer_init(InferState *s, const Model *m, int B, int T_max) {
    const ModelConfig *c = &m->cfg;
    if (m->lora) lab_die("infer_init: expected a model without an attached adapter (merge it first), found one");
    if (B < 1 || T_max < 1 || T_max > c->max_seq_len)
        lab_die("infer_init: expected B >= 1 and 1 <= T_max <= max_seq_len (%d), found B=%d T_max=%d",
                c->max_seq_len, B, T_max);
    memset(s, 0, sizeof *s);
    s->m = m;
    s->B = B;
    s->T_max = T_max;
    s->len = lab_calloc(B, sizeof(int));
    int HD = c->dim / c->n_heads, half = HD / 2, KVC = c->n_kv_heads * HD;
    size_t cache = (size_t)c->n_layers * B * T_max * KVC;
    s->k_cache = lab_calloc(cache, sizeof(float));
    s->v_cache = lab_calloc(cache, sizeof(float));
    s->rope_cos = lab_malloc((size_t)T_max * half * sizeof(float));
    s->rope_sin = lab_malloc((size_t)T_max * half * sizeof(float));
    model_rope_tables(c, T_max, s->rope_cos, s->rope_sin);
    s->scores = lab_malloc((size_t)omp_get_max_threads() * T_max * sizeof(float));
    s->row_logits = lab_calloc((size_t)B * c->vocab_size, sizeof(float));
}

void infer_reset(InferState *s) { memset(s->len, 0, (size_t)s->B * sizeof(int)); }

static void scratch_free(InferState *s) {
    float **bufs[] = {&s->x, &s->xn, &s->rstd, &s->q, &s->k, &s->v, &s->ao, &s->proj, &s->gate, &s->up, &s->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
}

void infer_free(InferState *s) {
    scratch_free(s);
    free(s->len);
    free(s->k_cache);
    free(s->v_cache);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->scores);
    free(s->row_logits);
    memset(s, 0, sizeof *s);
}

static void scratch_reserve(InferState *s, int N) {
    if (N <= s->cap) return;
    scratch_free(s);
    const ModelConfig *c = &s->m->cfg;
    size_t n = N, C = c->dim, KVC = (size_t)c->n_kv_heads * (c->dim / c->n_heads), F = c->ffn_dim;
    s->x = lab_malloc(n * C * sizeof(float));
    s->xn = lab_malloc(n * C * sizeof(float));
    s->rstd = lab_malloc(n * sizeof(float));
    s->q = lab_malloc(n * C * sizeof(float));
    s->k = lab_malloc(n * KVC * sizeof(float));
    s->v = lab_malloc(n * KVC * sizeof(float));
    s->ao = lab_malloc(n * C * sizeof(float));
    s->proj = lab_malloc(n * C * sizeof(float));
    s->gate = lab_malloc(n * F * sizeof(float));
    s->up = lab_malloc(n * F * sizeof(float));
    s->logits = lab_malloc(n * (size_t)c->vocab_size * sizeof(float));
    s->cap = N;
}

// ---------------------------------------------------------------------------------------------
// the layers, over N rows

// out (N,OC) = inp (N,IC) @ W^T, W (OC,IC). One row goes through sgemv: OpenBLAS's sgemm with
// N = 1 was measured 4x slower per decode step than sgemv on the default model (V 4096, C 256).
static void linear(float *out, const float *inp, const float *w, int N, int IC, int OC) {
    if (N == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, IC, 1.0f, w, IC, inp, 1, 0.0f, out, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
}

// rotates row n's NH heads (x: (N, NH*HD)) by its position pos[n]
static void rope(const InferState *s, float *x, const int *pos, int N, int NH, int HD) {
    int half = HD / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *cs = s->rope_cos + (size_t)pos[n] * half, *sn = s->rope_sin + (size_t)pos[n] * half;
        for (int h = 0; h < NH; h++) {
            float *v = x + ((size_t)n * NH + h) * HD;
            for (int i = 0; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * cs[i] - x1 * sn[i];
                v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

const float *infer_forward(InferState *s, int N, const int *rows, const int32_t *tokens) {
    const Model *m = s->m;
    const ModelConfig *c = &m->cfg;
    const ParamTensors *p = &m->params;
    const Backend *be = m->be;  // the row-wise ops are the model's own, so the math is the same
    int C = c->dim, L = c->n_layers, NH = c->n_heads, NKV = c->n_kv_heads, HD = C / NH;
    int KVC = NKV * HD, F = c->ffn_dim, V = c->vocab_size, group = NH / NKV, T_max = s->T_max;
    scratch_reserve(s, N);
    // positions: each entry takes its row's next one
    int *pos = lab_malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) {
        if (rows[i] < 0 || rows[i] >= s->B) lab_die("infer_forward: row %d outside 0..%d", rows[i], s->B - 1);
        if (tokens[i] < 0 || tokens[i] >= V)
            lab_die("infer_forward: token id %d outside the vocabulary (0..%d)", tokens[i], V - 1);
        if (s->len[rows[i]] >= T_max)
            lab_die("infer_forward: row %d is full: expected at most T_max = %d positions", rows[i], T_max);
        pos[i] = s->len[rows[i]]++;
    }
    for (int i = 0; i < N; i++) memcpy(s->x + (size_t)i * C, p->tok_emb + (size_t)tokens[i] * C, C * sizeof(float));
    float scale = 1.0f / sqrtf((float)HD);
    size_t layer_cache = (size_t)s->B * T_max * KVC;
    for (int l = 0; l < L; l++) {
        float *kc = s->k_cache + l * layer_cache, *vc = s->v_cache + l * layer_cache;
        be->rmsnorm_forward(s->xn, s->rstd, s->x, p->attn_norm + (size_t)l * C, N, C, c->norm_eps);
        linear(s->q, s->xn, p->wq + (size_t)l * C * C, N, C, C);
        linear(s->k, s->xn, p->wk + (size_t)l * KVC * C, N, C, KVC);
        linear(s->v, s->xn, p->wv + (size_t)l * KVC * C, N, C, KVC);
        rope(s, s->q, pos, N, NH, HD);
        rope(s, s->k, pos, N, NKV, HD);
        // every entry's key and value go into the cache before any entry attends, so a prefill's
        // entries see the earlier entries of their row
        for (int i = 0; i < N; i++) {
            size_t at = ((size_t)rows[i] * T_max + pos[i]) * KVC;
            memcpy(kc + at, s->k + (size_t)i * KVC, KVC * sizeof(float));
            memcpy(vc + at, s->v + (size_t)i * KVC, KVC * sizeof(float));
        }
#pragma omp parallel
        {
            float *sc = s->scores + (size_t)omp_get_thread_num() * T_max;
#pragma omp for schedule(static)
            for (int ih = 0; ih < N * NH; ih++) {
                int i = ih / NH, h = ih % NH, t = pos[i];
                const float *qh = s->q + (size_t)i * C + h * HD;
                const float *kh = kc + (size_t)rows[i] * T_max * KVC + (h / group) * HD;
                const float *vh = vc + (size_t)rows[i] * T_max * KVC + (h / group) * HD;
                float maxv = -INFINITY;
                for (int u = 0; u <= t; u++) {
                    const float *ku = kh + (size_t)u * KVC;
                    float d = 0.0f;
                    for (int e = 0; e < HD; e++) d += qh[e] * ku[e];
                    sc[u] = d * scale;
                    maxv = sc[u] > maxv ? sc[u] : maxv;
                }
                float sum = 0.0f;
                for (int u = 0; u <= t; u++) {
                    sc[u] = expf(sc[u] - maxv);
                    sum += sc[u];
                }
                float inv = 1.0f / sum, *oh = s->ao + (size_t)i * C + h * HD;
                for (int e = 0; e < HD; e++) oh[e] = 0.0f;
                for (int u = 0; u <= t; u++) {
                    const float *vu = vh + (size_t)u * KVC;
                    float w = sc[u] * inv;
                    for (int e = 0; e < HD; e++) oh[e] += w * vu[e];
                }
            }
        }
        linear(s->proj, s->ao, p->wo + (size_t)l * C * C, N, C, C);
        for (size_t j = 0; j < (size_t)N * C; j++) s->x[j] += s->proj[j];

        be->rmsnorm_forward(s->xn, s->rstd, s->x, p->ffn_norm + (size_t)l * C, N, C, c->norm_eps);
        linear(s->gate, s->xn, p->w_gate + (size_t)l * F * C, N, C, F);
        linear(s->up, s->xn, p->w_up + (size_t)l * F * C, N, C, F);
        be->swiglu_forward(s->gate, s->gate, s->up, (size_t)N * F);
        linear(s->proj, s->gate, p->w_down + (size_t)l * C * F, N, F, C);
        for (size_t j = 0; j < (size_t)N * C; j++) s->x[j] += s->proj[j];
    }
    be->rmsnorm_forward(s->xn, s->rstd, s->x, p->final_norm, N, C, c->norm_eps);
    linear(s->logits, s->xn, p->tok_emb, N, C, V);
    free(pos);
    return s->logits;
}

const float *infer_prefill(InferState *s, const int32_t *const *prompts, const int *lens) {
    int N = 0, V = s->m->cfg.vocab_size;
    for (int b = 0; b < s->B; b++) N += lens[b];
    int *rows = lab_malloc((size_t)(N ? N : 1) * sizeof(int));
    int32_t *toks = lab_malloc((size_t)(N ? N : 1) * sizeof(int32_t));
    int *last = lab_malloc((size_t)s->B * sizeof(int));
    int n = 0;
    for (int b = 0; b < s->B; b++) {
        for (int t = 0; t < lens[b]; t++) {
            rows[n] = b;
            toks[n++] = prompts[b][t];
        }
        last[b] = n - 1;
    }
    memset(s->row_logits, 0, (size_t)s->B * V * sizeof(float));
    if (N > 0) {
        const float *lg = infer_forward(s, N, rows, toks);
        for (int b = 0; b < s->B; b++)
            if (lens[b] > 0) memcpy(s->row_logits + (size_t)b * V, lg + (size_t)last[b] * V, V * sizeof(float));
    }
    free(rows);
    free(toks);
    free(last);
    return s->row_logits;
}

// ---------------------------------------------------------------------------------------------
// sampling

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static const float *sort_probs;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_probs[i] != sort_probs[j]) return sort_probs[i] > sort_probs[j] ? -1 : 1;
    return (i > j) - (i < j);
}

int sample_token(const float *logits, int V, const SamplerConfig *sc, Rng *rng, float *prob, int *idx) {
    if (sc->temperature <= 0.0f || sc->top_k == 1) return argmax(logits, V);
    float maxv = logits[argmax(logits, V)], inv_t = 1.0f / sc->temperature;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        prob[i] = expf((logits[i] - maxv) * inv_t);
        sum += prob[i];
    }
    for (int i = 0; i < V; i++) prob[i] = (float)(prob[i] / sum);
    int n = V;
    int truncate = (sc->top_k > 0 && sc->top_k < V) || sc->top_p < 1.0f;
    for (int i = 0; i < V; i++) idx[i] = i;
    if (truncate) {
        // qsort's comparator has no context argument; sampling is called from one thread
        sort_probs = prob;
        qsort(idx, V, sizeof *idx, by_prob_desc);
        if (sc->top_k > 0 && sc->top_k < n) n = sc->top_k;
        if (sc->top_p < 1.0f) {
            double mass = 0.0;
            int keep = 0;
            while (keep < n) {
                mass += prob[idx[keep++]];
                if (mass >= sc->top_p) break;
            }
            n = keep;
        }
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) total += prob[idx[i]];
    double u = rng_uniform(rng) * total, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += prob[idx[i]];
        if (u < acc) return idx[i];
    }
    return idx[n - 1];  // u within rounding of the total
}

// ---------------------------------------------------------------------------------------------
// stop rules

const char *const humaneval_stops[5] = {"\ndef", "\nclass", "\nif", "\nprint", "\n#"};

const char *stop_reason_name(StopReason r) {
    static const char *const names[] = {"none", "eot", "stop", "dedent", "max_tokens", "context"};
    return r >= STOP_NONE && r <= STOP_CONTEXT ? names[r] : "unknown";
}

StopReason stop_check(const char *text, size_t len, int at_line_start, const char *const *stops,
                      int n_stops, int dedent, size_t *keep) {
    size_t best = len + 1;
    for (int j = 0; j < n_stops; j++) {
        size_t sl = strlen(stops[j]);
        for (size_t i = 0; sl > 0 && i + sl <= len && i < best; i++)
            if (memcmp(text + i, stops[j], sl) == 0) {
                best = i;
                break;
            }
    }
    if (best <= len) {
        *keep = best;
        return STOP_STRING;
    }
    if (!dedent) return STOP_NONE;
    // walk the lines that begin at a line start; body_indent: the first non-blank one's indentation
    long body_indent = -1;
    size_t start = 0;
    int line_ok = at_line_start;
    while (start <= len) {
        size_t end = start;
        while (end < len && text[end] != '\n') end++;
        if (line_ok) {
            size_t ind = start;
            while (ind < end && (text[ind] == ' ' || text[ind] == '\t')) ind++;
            if (ind < end) {  // a non-whitespace byte: the line's indentation is known
                long indent = (long)(ind - start);
                if (body_indent < 0)
                    body_indent = indent;
                else if (indent < body_indent) {
                    *keep = start - 1;  // before the '\n' that opens this line
                    return STOP_DEDENT;
                }
            }
        }
        if (end == len) break;
        start = end + 1;
        line_ok = 1;
    }
    return STOP_NONE;
}

// ---------------------------------------------------------------------------------------------
// generation

void completion_free(Completion *c) {
    free(c->text);
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

typedef struct {
    Rng rng;
    char *text; size_t len, cap;
    int done;
} RowState;

static void row_append(RowState *r, const uint8_t *bytes, size_t n) {
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->text = lab_realloc(r->text, r->cap);
    }
    memcpy(r->text + r->len, bytes, n);
    r->len += n;
    r->text[r->len] = '\0';
}

// Appends token `tok` to request q's completion and decides whether it stops there.
static void accept_token(const InferState *s, const Bpe *bpe, const GenConfig *gc, const GenRequest *q,
                         RowState *r, Completion *out, int tok) {
    out->tokens[out->n_tokens++] = tok;
    if (tok == gc->eot) {
        out->stop = STOP_EOT;
        r->done = 1;
        return;
    }
    size_t nb;
    const uint8_t *bytes = bpe_token_bytes(bpe, (uint32_t)tok, &nb);
    row_append(r, bytes, nb);
    size_t keep;
    StopReason why = stop_check(r->text, r->len, q->at_line_start, gc->stops, gc->n_stops, gc->stop_on_dedent, &keep);
    if (why != STOP_NONE) {
        r->len = keep;
        r->text[keep] = '\0';
        out->stop = why;
        r->done = 1;
    } else if (out->n_tokens >= gc->max_new_tokens) {
        out->stop = STOP_MAX_TOKENS;
        r->done = 1;
    } else if (q->prompt_len + out->n_tokens >= s->T_max) {
        // the token just sampled still needs a position to be fed back
        out->stop = STOP_CONTEXT;
        r->done = 1;
    }
}

void infer_generate(InferState *s, const Bpe *bpe, const GenConfig *gc, const GenRequest *reqs, int n,
                    Completion *out) {
    int V = s->m->cfg.vocab_size, B = s->B, T_max = s->T_max;
    if (bpe->vocab_size != V)
        lab_die("infer_generate: expected a tokenizer of the model's vocab_size %d, found %d", V, bpe->vocab_size);
    if (gc->max_new_tokens < 1) lab_die("infer_generate: expected max_new_tokens >= 1, found %d", gc->max_new_tokens);
    for (int i = 0; i < n; i++)
        if (reqs[i].prompt_len < 1 || reqs[i].prompt_len >= T_max)
            lab_die("infer_generate: prompt %d has %d tokens: expected 1 to %d (the context less one)", i,
                    reqs[i].prompt_len, T_max - 1);
    float *prob = lab_malloc((size_t)V * sizeof(float));
    int *idx = lab_malloc((size_t)V * sizeof(int));
    RowState *rs = lab_calloc(B, sizeof(RowState));
    int *slot = lab_malloc((size_t)B * sizeof(int));     // the request in each row, -1: idle
    int *last = lab_malloc((size_t)B * sizeof(int));     // each row's entry whose logits it samples from
    size_t cap = (size_t)B * (T_max + 1);
    int *rows = lab_malloc(cap * sizeof(int));
    int32_t *toks = lab_malloc(cap * sizeof(int32_t));
    for (int b = 0; b < B; b++) slot[b] = -1;
    infer_reset(s);
    // Continuous batching: a row whose completion stopped takes the next request at once, its
    // prompt fed in the same forward as the other rows' next tokens.
    int next_req = 0, N = 0;
    for (;;) {
        for (int b = 0; b < B && next_req < n; b++) {
            if (slot[b] >= 0) continue;
            const GenRequest *q = &reqs[next_req];
            slot[b] = next_req++;
            s->len[b] = 0;
            rng_seed(&rs[b].rng, q->seed);
            rs[b].len = 0;
            rs[b].done = 0;
            row_append(&rs[b], (const uint8_t *)"", 0);
            Completion *c = &out[slot[b]];
            memset(c, 0, sizeof *c);
            c->tokens = lab_malloc((size_t)gc->max_new_tokens * sizeof(int32_t));
            for (int t = 0; t < q->prompt_len; t++) {
                rows[N] = b;
                toks[N++] = q->prompt[t];
            }
            last[b] = N - 1;
        }
        if (N == 0) break;
        const float *lg = infer_forward(s, N, rows, toks);
        N = 0;
        for (int b = 0; b < B; b++) {
            if (slot[b] < 0) continue;
            Completion *c = &out[slot[b]];
            int tok = sample_token(lg + (size_t)last[b] * V, V, &gc->sampler, &rs[b].rng, prob, idx);
            accept_token(s, bpe, gc, &reqs[slot[b]], &rs[b], c, tok);
            if (rs[b].done) {
                c->text = rs[b].text;
                c->len = rs[b].len;
                rs[b].text = NULL;
                rs[b].cap = 0;
                slot[b] = -1;
            } else {
                rows[N] = b;
                toks[N] = tok;
                last[b] = N++;
            }
        }
    }
    free(prob);
    free(idx);
    free(rs);
    free(slot);
    free(last);
    free(rows);
    free(toks);
}
