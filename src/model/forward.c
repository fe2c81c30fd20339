/* model/forward.c: the Llama transformer, one batch of tokens at a time.
 *
 * Read it top to bottom like llama2.c's forward(): embedding lookup, then per layer
 * RMSNorm -> Q/K/V -> RoPE -> causal GQA attention over the KV cache -> output projection ->
 * residual, RMSNorm -> SwiGLU feed-forward -> residual; then the final RMSNorm and the logits.
 * The computation is the one written out in ../shared/reference/llama3.2-tiny/README.md.
 *
 * Arithmetic follows llama.cpp's CPU backend where that decides the result
 * (gguf-and-quants.md C): before every weight product the activations are converted ONCE to
 * the weight's partner type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32), exactly as llama.cpp rounds
 * them, and the dot products run on that form. Everything between the products is float.
 *
 * Threads: matrix products split their output rows across the pool; attention splits
 * (token, head) pairs; SwiGLU and RoPE split tokens. Workers write disjoint outputs. */
#include "model/model.h"

#include <math.h>

/* ---- parallel jobs --------------------------------------------------------------------- */

/* [lo, hi) of n items for thread ith of nth: contiguous, balanced shares. */
static inline void share(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* Convert activation rows to a dot type: row t of x (n_in floats) -> row t of xq. */
struct convert_job {
    ll_quantize_act_fn fn;
    const float *x;          /* (n_tok, n_in) */
    int64_t      n_in;
    void        *xq;         /* (n_tok, xq_stride bytes) */
    size_t       xq_stride;
    int64_t      n_tok;
};

static void convert_worker(void *arg, int ith, int nth) {
    const struct convert_job *j = arg;
    int64_t t0, t1;
    share(j->n_tok, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        j->fn(j->x + t * j->n_in, (uint8_t *)j->xq + (size_t)t * j->xq_stride, j->n_in);
}

/* Up to three products sharing one converted input: y_i = W_i x, rows split across threads. */
struct matmul_job {
    const struct ll_kernels *k;
    const void *xq;
    size_t      xq_stride;
    int64_t     n_tok;
    int         n;
    const ll_weight *w[3];
    float      *y[3];        /* (n_tok, w[i]->n_out) */
};

static void matmul_worker(void *arg, int ith, int nth) {
    const struct matmul_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        const ll_weight *w = j->w[i];
        int64_t r0, r1;
        share(w->n_out, ith, nth, &r0, &r1);
        if (r1 > r0)
            ll_matmul_rows(j->k, w->type, w->data, w->n_in, r0, r1, j->xq, j->xq_stride, j->n_tok,
                           j->y[i], w->n_out);
    }
}

/* y_i = W_i x for n weights that read the same input x (n_tok, n_in). The input is converted
 * once per distinct partner type: for Q/K/V and gate/up that is once, as llama.cpp does. */
static void matmul(ll_ctx *c, const float *x, int64_t n_tok, int n, const ll_weight *const *w,
                   float *const *y) {
    for (int i = 0; i < n;) {
        int e = i + 1;
        while (e < n && e - i < 3 && w[e]->dot_type == w[i]->dot_type) e++;
        uint64_t stride = 0;
        ll_type_row_bytes(w[i]->dot_type, w[i]->n_in, &stride);   /* checked at load */
        struct convert_job cj = { c->k->quantize_act[w[i]->dot_type], x, w[i]->n_in, c->xq,
                                  (size_t)stride, n_tok };
        if (n_tok == 1) convert_worker(&cj, 0, 1);                /* not worth a wake-up */
        else ll_pool_run(c->pool, convert_worker, &cj);

        struct matmul_job mj = { c->k, c->xq, (size_t)stride, n_tok, e - i, { 0 }, { 0 } };
        for (int k = i; k < e; k++) { mj.w[k - i] = w[k]; mj.y[k - i] = y[k]; }
        ll_pool_run(c->pool, matmul_worker, &mj);
        i = e;
    }
}

/* ---- small pieces ---------------------------------------------------------------------- */

/* RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * w, per row of d.
 * The sum of squares is accumulated in double and the scale applied before the gain, as
 * ggml's rms_norm followed by mul does. */
static void rmsnorm(float *y, const float *x, const float *w, int64_t n_tok, int64_t d, float eps) {
    for (int64_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * d;
        float *yt = y + t * d;
        double ss = 0.0;
        for (int64_t i = 0; i < d; i++) ss += (double)(xt[i] * xt[i]);
        const float mean = (float)(ss / (double)d);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < d; i++) yt[i] = (xt[i] * scale) * w[i];
    }
}

/* RoPE angles (Su et al. 2021), GGUF "normal" layout: pair (2i, 2i+1) of each head turns by
 * theta_i = p * base^(-2i/n_rot) / rope_freqs[i] * freq_scale. Computed in float the way ggml
 * does (theta multiplied by theta_scale once per pair) so the angles round alike.
 * cs: (n_tok, n_rot) as (cos, sin) pairs. */
static void rope_table(float *cs, const ll_model *m, int32_t pos0, int64_t n_tok) {
    const ll_hparams *hp = &m->hp;
    const float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    for (int64_t t = 0; t < n_tok; t++) {
        float theta = (float)(pos0 + t);
        float *row = cs + t * hp->n_rot;
        for (int64_t i = 0; i < hp->n_rot / 2; i++) {
            const float ff = m->rope_freqs ? m->rope_freqs[i] : 1.0f;
            const float a = theta / ff * hp->rope_freq_scale;
            row[2 * i] = cosf(a);
            row[2 * i + 1] = sinf(a);
            theta *= theta_scale;
        }
    }
}

static void rope_rotate(float *v, const float *cs, int64_t n_rot) {
    for (int64_t i = 0; i < n_rot; i += 2) {
        const float x0 = v[i], x1 = v[i + 1], c = cs[i], s = cs[i + 1];
        v[i] = x0 * c - x1 * s;
        v[i + 1] = x0 * s + x1 * c;
    }
}

/* Rotate this batch's queries and keys and append keys and values to the cache (by token). */
struct rope_job { ll_ctx *c; int64_t layer; int64_t n_tok; };

static void rope_store_worker(void *arg, int ith, int nth) {
    const struct rope_job *j = arg;
    ll_ctx *c = j->c;
    const ll_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim_k, q_dim = hp->n_head * hd;
    const int64_t k_dim = hp->n_head_kv * hd, v_dim = hp->n_head_kv * hp->head_dim_v;
    int64_t t0, t1;
    share(j->n_tok, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = c->rope_cs + t * hp->n_rot;
        float *q = c->q + t * q_dim;                  /* (n_head, hd) */
        float *k = c->kv_k + t * k_dim;               /* (n_head_kv, hd) */
        for (int64_t h = 0; h < hp->n_head; h++) rope_rotate(q + h * hd, cs, hp->n_rot);
        for (int64_t h = 0; h < hp->n_head_kv; h++) rope_rotate(k + h * hd, cs, hp->n_rot);
        const size_t p = (size_t)j->layer * (size_t)c->n_ctx + (size_t)(c->pos + t);
        /* V is stored transposed, (v_dim, n_ctx) per layer, so that each output element of
         * attention is one contiguous dot product over positions, as in llama.cpp. */
        const size_t v_off = (size_t)j->layer * (size_t)v_dim * (size_t)c->n_ctx + (size_t)(c->pos + t);
        const float *v = c->kv_v + t * v_dim;
        if (c->kv_f16) {        /* rounded to nearest even, as ggml's copy into an F16 cache */
            c->k->quantize_act[LL_TYPE_F16](k, (uint16_t *)c->k_cache + p * (size_t)k_dim, k_dim);
            uint16_t *vt = (uint16_t *)c->v_cache + v_off;
            for (int64_t e = 0; e < v_dim; e++) vt[(size_t)e * (size_t)c->n_ctx] = ll_fp32_to_fp16(v[e]);
        } else {
            memcpy((float *)c->k_cache + p * (size_t)k_dim, k, (size_t)k_dim * sizeof(float));
            float *vt = (float *)c->v_cache + v_off;
            for (int64_t e = 0; e < v_dim; e++) vt[(size_t)e * (size_t)c->n_ctx] = v[e];
        }
    }
}

/* Causal attention with grouped KV heads, for each (token, query head) pair:
 *   score_s = (q . k_s) / sqrt(hd) for s <= p;  a = softmax(score);  out_e = sum_s a_s v_s,e.
 * Query head h reads KV head h / (n_head / n_head_kv). The softmax subtracts the maximum and
 * sums the exponentials in double (ggml's soft_max). Both products are dots in the order of
 * llama.cpp's non-flash path: q . k_s per position, then per output element the dot of the
 * weights with a row of transposed V; the weights are zero-padded to a multiple of 32 so every
 * real term goes through the same SIMD lanes as there. With an F32 cache both are F32 dots;
 * with an F16 cache, as in ggml's mul_mat with an F16 first operand, q and the weights are
 * first rounded to F16 (once per token and head) and both are F16 dots. */
struct attn_job { ll_ctx *c; int64_t layer; int64_t n_tok; };

static void attention_worker(void *arg, int ith, int nth) {
    const struct attn_job *j = arg;
    ll_ctx *c = j->c;
    const ll_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim_k, hdv = hp->head_dim_v, n_ctx = c->n_ctx;
    const int64_t q_dim = hp->n_head * hd, o_dim = hp->n_head * hdv;
    const int64_t k_dim = hp->n_head_kv * hd, v_dim = hp->n_head_kv * hdv;
    const int64_t group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const bool f16 = c->kv_f16;
    const ll_dot_fn dot = c->k->dot[f16 ? LL_TYPE_F16 : LL_TYPE_F32];   /* SIMD when the CPU has it */
    const ll_quantize_act_fn to_f16 = c->k->quantize_act[LL_TYPE_F16];
    const size_t es = c->kv_elem;
    const uint8_t *k_layer = (const uint8_t *)c->k_cache +
                             (size_t)j->layer * (size_t)n_ctx * (size_t)k_dim * es;  /* (n_ctx, k_dim) */
    const uint8_t *v_layer = (const uint8_t *)c->v_cache +
                             (size_t)j->layer * (size_t)v_dim * (size_t)n_ctx * es;  /* (v_dim, n_ctx) */
    float *score = c->att + (size_t)ith * (size_t)n_ctx;          /* (n_ctx) this thread's row */
    uint16_t *q_h = f16 ? c->att_h + (size_t)ith * c->att_h_stride : NULL;   /* (hd) F16 query */
    uint16_t *w_h = f16 ? q_h + hd : NULL;                        /* (n_ctx) F16 weights */

    int64_t i0, i1;
    share(j->n_tok * hp->n_head, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int64_t t = i / hp->n_head, h = i % hp->n_head, g = h / group;
        const int64_t p = c->pos + t;                              /* attends to 0..p */
        const void *q = c->q + t * q_dim + h * hd;                 /* (hd) */
        if (f16) { to_f16(q, q_h, hd); q = q_h; }
        float max = -INFINITY;
        for (int64_t s = 0; s <= p; s++) {
            const void *k = k_layer + ((size_t)s * (size_t)k_dim + (size_t)(g * hd)) * es;  /* (hd) */
            score[s] = dot(hd, k, q) * scale;
            if (score[s] > max) max = score[s];
        }
        double sum = 0.0;
        for (int64_t s = 0; s <= p; s++) {
            score[s] = expf(score[s] - max);
            sum += (double)score[s];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t s = 0; s <= p; s++) score[s] *= inv;
        int64_t n_kv = (p + 1 + 31) / 32 * 32;                     /* padded; zero weights */
        if (n_kv > n_ctx) n_kv = p + 1;
        for (int64_t s = p + 1; s < n_kv; s++) score[s] = 0.0f;
        const void *wts = score;
        if (f16) { to_f16(score, w_h, n_kv); wts = w_h; }
        float *out = c->att_out + t * o_dim + h * hdv;             /* (hdv) */
        for (int64_t e = 0; e < hdv; e++)                          /* row e of V^T: (n_ctx) */
            out[e] = dot(n_kv, v_layer + (size_t)(g * hdv + e) * (size_t)n_ctx * es, wts);
    }
}

/* SwiGLU (Shazeer 2020): gate = silu(gate) * up, silu(z) = z / (1 + e^-z). */
struct swiglu_job { float *gate; const float *up; int64_t n; };

static void swiglu_worker(void *arg, int ith, int nth) {
    const struct swiglu_job *j = arg;
    int64_t i0, i1;
    share(j->n, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const float z = j->gate[i];
        j->gate[i] = z / (1.0f + expf(-z)) * j->up[i];
    }
}

/* ---- the forward pass ------------------------------------------------------------------ */

ll_status ll_forward(ll_ctx *c, const int32_t *ids, int32_t n_tok, float *logits, int32_t n_out,
                     const volatile bool *cancel, ll_error *err) {
    const ll_model *m = c->m;
    const ll_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd;

    /* Token embeddings: x[t] = token_embd[ids[t]], one dequantized row each. */
    uint64_t emb_row_bytes = 0;
    ll_type_row_bytes(m->tok_embd.type, d, &emb_row_bytes);
    for (int32_t t = 0; t < n_tok; t++)
        ll_dequantize_row(m->tok_embd.type,
                          (const uint8_t *)m->tok_embd.data + (uint64_t)ids[t] * emb_row_bytes,
                          c->x + t * d, d);                        /* x: (n_tok, d) */

    rope_table(c->rope_cs, m, c->pos, n_tok);                      /* (n_tok, n_rot) */

    for (int64_t l = 0; l < hp->n_layer; l++) {
        const ll_layer *ly = &m->layers[l];
        if (cancel && *cancel) return ll_fail(err, LL_ERR_CANCELLED, "cancelled at layer %lld", (long long)l);

        /* Attention block. */
        rmsnorm(c->xn, c->x, ly->attn_norm, n_tok, d, hp->rms_eps);          /* xn: (n_tok, d) */
        {
            const ll_weight *w[3] = { &ly->wq, &ly->wk, &ly->wv };
            float *y[3] = { c->q, c->kv_k, c->kv_v };   /* (n_tok, n_head*hd), (n_tok, n_head_kv*hd) x2 */
            matmul(c, c->xn, n_tok, 3, w, y);
        }
        struct rope_job rj = { c, l, n_tok };
        ll_pool_run(c->pool, rope_store_worker, &rj);                        /* cache[l][pos..] */
        struct attn_job aj = { c, l, n_tok };
        ll_pool_run(c->pool, attention_worker, &aj);                         /* att_out: (n_tok, n_head*hd_v) */
        {
            const ll_weight *w[1] = { &ly->wo };
            float *y[1] = { c->y };                                          /* y: (n_tok, d) */
            matmul(c, c->att_out, n_tok, 1, w, y);
        }
        for (int64_t i = 0; i < n_tok * d; i++) c->x[i] += c->y[i];          /* residual */

        /* Feed-forward block. */
        rmsnorm(c->xn, c->x, ly->ffn_norm, n_tok, d, hp->rms_eps);
        {
            const ll_weight *w[2] = { &ly->w_gate, &ly->w_up };
            float *y[2] = { c->gate, c->up };                                /* (n_tok, n_ff) each */
            matmul(c, c->xn, n_tok, 2, w, y);
        }
        struct swiglu_job sj = { c->gate, c->up, n_tok * hp->n_ff };
        ll_pool_run(c->pool, swiglu_worker, &sj);                            /* gate: (n_tok, n_ff) */
        {
            const ll_weight *w[1] = { &ly->w_down };
            float *y[1] = { c->y };                                          /* y: (n_tok, d) */
            matmul(c, c->gate, n_tok, 1, w, y);
        }
        for (int64_t i = 0; i < n_tok * d; i++) c->x[i] += c->y[i];          /* residual */
    }

    /* Final norm and logits, only for the last n_out positions. */
    if (logits && n_out > 0) {
        const float *x_last = c->x + (int64_t)(n_tok - n_out) * d;
        rmsnorm(c->xn, x_last, m->output_norm, n_out, d, hp->rms_eps);      /* xn: (n_out, d) */
        const ll_weight *w[1] = { &m->output };
        float *y[1] = { logits };                                            /* (n_out, n_vocab) */
        matmul(c, c->xn, n_out, 1, w, y);
    }
    return LL_OK;
}
