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
 * A pass may hold tokens of several sequences (a batch): every weight product is one product
 * over all the pass's rows, and only attention looks at sequences, each token attending to
 * its own sequence's cells. Each token's arithmetic is the same whatever else is in the pass,
 * so a sequence decoded with others gets the logits it gets alone, bit for bit.
 *
 * Threads: matrix products split their output rows across the pool; attention splits
 * (token, head) pairs; SwiGLU and RoPE split tokens. Workers write disjoint outputs. */
#include "model/model.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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
    const uint8_t *xq;
    size_t      xq_stride;
    int64_t     n_tok;
    const int32_t *multi;    /* (n_tok) rows_multi's flags; NULL: exact products only */
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
        if (r1 <= r0) continue;
        if (!j->multi || !j->k->gemm_fast[w->type]) {    /* every output the dot's bits */
            ll_matmul_rows(j->k, w->type, w->data, w->n_in, r0, r1, j->xq, j->xq_stride, j->n_tok,
                           j->y[i], w->n_out);
            continue;
        }
        /* runs of tokens alone in their sequence (exact) and of tokens with company (gemm_fast) */
        for (int64_t t0 = 0; t0 < j->n_tok;) {
            int64_t t1 = t0 + 1;
            while (t1 < j->n_tok && j->multi[t1] == j->multi[t0]) t1++;
            ll_matmul_rows_mode(j->k, w->type, w->data, w->n_in, r0, r1, j->xq + (size_t)t0 * j->xq_stride,
                                j->xq_stride, t1 - t0, j->y[i] + t0 * w->n_out, w->n_out,
                                j->multi[t0] ? LL_MM_FAST : LL_MM_EXACT);
            t0 = t1;
        }
    }
}

/* multi[r] for the n rows of a product, row r being token idx[r] of the ubatch (idx NULL: r):
 * 1 when that token's sequence has other rows in the product, 0 when it is alone. */
static void rows_multi(ll_ctx *c, int64_t n, const int32_t *idx, int32_t *multi) {
    for (int64_t r = 0; r < n; r++) c->seq_rows[c->ub_seq[idx ? idx[r] : r]] = 0;
    for (int64_t r = 0; r < n; r++) c->seq_rows[c->ub_seq[idx ? idx[r] : r]]++;
    for (int64_t r = 0; r < n; r++) multi[r] = c->seq_rows[c->ub_seq[idx ? idx[r] : r]] > 1;
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
        struct convert_job cj = { c->kern->quantize_act[w[i]->dot_type], x, w[i]->n_in, c->xq,
                                  (size_t)stride, n_tok };
        if (n_tok == 1) convert_worker(&cj, 0, 1);                /* not worth a wake-up */
        else ll_pool_run(c->pool, convert_worker, &cj);

        struct matmul_job mj = { c->kern, c->xq, (size_t)stride, n_tok, c->fast_products ? c->ub_multi : NULL, e - i,
                                 { 0 }, { 0 } };
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
 * cs: (n_rot) as (cos, sin) pairs. */
void ll_rope_row(float *cs, const ll_model *m, int32_t pos) {
    const ll_hparams *hp = &m->hp;
    const float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < hp->n_rot / 2; i++) {
        const float ff = m->rope_freqs ? m->rope_freqs[i] : 1.0f;
        const float a = theta / ff * hp->rope_freq_scale;
        cs[2 * i] = cosf(a);
        cs[2 * i + 1] = sinf(a);
        theta *= theta_scale;
    }
}

void ll_rope_rotate(float *v, const float *cs, int64_t n_rot) {
    for (int64_t i = 0; i < n_rot; i += 2) {
        const float x0 = v[i], x1 = v[i + 1], c = cs[i], s = cs[i + 1];
        v[i] = x0 * c - x1 * s;
        v[i + 1] = x0 * s + x1 * c;
    }
}

/* Rotate this pass's queries and keys and store keys and values in their cells. */
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
        float *k = c->k_new + t * k_dim;              /* (n_head_kv, hd) */
        for (int64_t h = 0; h < hp->n_head; h++) ll_rope_rotate(q + h * hd, cs, hp->n_rot);
        for (int64_t h = 0; h < hp->n_head_kv; h++) ll_rope_rotate(k + h * hd, cs, hp->n_rot);
        ll_kv_store(&c->kv, c->kern, j->layer, c->ub_seq[t], c->ub_cell[t], k, c->v_new + t * v_dim);
    }
}

/* Causal attention with grouped KV heads, for each (token, query head) pair, over the cells
 * of the token's sequence whose position is at most the token's (p):
 *   score_s = (q . k_s) / sqrt(hd);  a = softmax(score);  out_e = sum_s a_s v_s,e.
 * Query head h reads KV head h / (n_head / n_head_kv). The softmax subtracts the maximum and
 * sums the exponentials in double (ggml's soft_max). The products follow llama.cpp:
 * - scores: q . k_s per cell, as a dot in K's type: F32; F16 with q rounded to F16 once per
 *   token and head (ggml's mul_mat with an F16 first operand); Q8_0 with q quantized to Q8_0
 *   (the flash path's vec_dot_type);
 * - transposed V (F32, F16): per output element the dot of the weights with a row of V^T, the
 *   weights zero-padded to a multiple of 32 so every real term goes through the same SIMD
 *   lanes as there (F16: the weights rounded to F16 first);
 * - Q8_0 V (by position): out += a_s * v_s, one dequantized row at a time (the flash path). */
struct attn_job { ll_ctx *c; int64_t layer; int64_t n_blk; };

static uint32_t kv_dot_type(ll_kv_type t) {
    return t == LL_KV_F32 ? LL_TYPE_F32 : t == LL_KV_F16 ? LL_TYPE_F16 : LL_TYPE_Q8_0;
}

/* The query columns of one block are done together: the query heads that share one KV head,
 * for up to att_tb consecutive tokens of one sequence (a prompt's tokens). Each key row and
 * each row of V^T is read once per block through the type's dot_multi, bit-identical to its
 * dot, so every (token, head) gets exactly the values it would get alone. A block's tokens
 * also share the padded length of their V^T dots, so a weight past a token's own last
 * visible cell is an exact zero in the same lanes. */
/* The visible cells [0, hi) of the token at position p, and the V^T dot length: hi padded
 * to a multiple of 32 (zero weights) unless that passes the cache's end. */
static int64_t attn_hi(const ll_kv_seq *sq, int32_t p) {
    int64_t hi = 0;
    for (int64_t s = sq->n_cells - 1; s >= 0; s--)
        if (sq->pos[s] <= p) { hi = s + 1; break; }
    return hi;
}
static int64_t attn_n_kv(int64_t hi, int64_t n_ctx) {
    int64_t n_kv = (hi + 31) / 32 * 32;
    return n_kv > n_ctx ? hi : n_kv;
}

/* Cut the pass's tokens into blocks (c->att_blk) for the attention workers: runs of at most
 * att_tb consecutive tokens that share a sequence and a V^T dot length. */
static int64_t attn_plan(ll_ctx *c, int64_t n_tok) {
    const ll_kv *kv = &c->kv;
    int64_t n = 0;
    for (int64_t t = 0; t < n_tok;) {
        const ll_kv_seq *sq = &kv->seq[c->ub_seq[t]];
        ll_attn_block *blk = &c->att_blk[n++];
        blk->t0 = t;
        blk->hi_max = attn_hi(sq, c->ub_pos[t]);
        blk->n_kv = attn_n_kv(blk->hi_max, kv->n_ctx);
        blk->nt = 1;
        for (int64_t u = t + 1; u < n_tok && u - t < c->att_tb && c->ub_seq[u] == c->ub_seq[t]; u++) {
            const int64_t hi = attn_hi(sq, c->ub_pos[u]);
            if (attn_n_kv(hi, kv->n_ctx) != blk->n_kv) break;
            if (hi > blk->hi_max) blk->hi_max = hi;
            blk->nt++;
        }
        t += blk->nt;
    }
    return n;
}

static void attention_worker(void *arg, int ith, int nth) {
    const struct attn_job *j = arg;
    ll_ctx *c = j->c;
    const ll_kv *kv = &c->kv;
    const ll_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim_k, hdv = hp->head_dim_v, n_ctx = kv->n_ctx;
    const int64_t q_dim = hp->n_head * hd, o_dim = hp->n_head * hdv;
    const int64_t group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const uint32_t kt = kv_dot_type(kv->type_k), vt = kv_dot_type(kv->type_v);
    const ll_dot_fn dot_k = c->kern->dot[kt];                     /* SIMD when the CPU has it */
    const ll_dot_multi_fn multi_k = c->kern->dot_multi[kt];       /* NULL: one dot per head */
    const ll_quantize_act_fn q_conv = kt == LL_TYPE_F32 ? NULL : c->kern->quantize_act[kt];
    const ll_dot_fn dot_v = kv->v_trans ? c->kern->dot[vt] : NULL;
    const ll_dot_multi_fn multi_v = kv->v_trans ? c->kern->dot_multi[vt] : NULL;
    /* F16 K and V: queries and weights rounded to F16 once, widened to f32, and met by the
     * f32-column kernel (bit-identical to the F16 dot, no conversion per key) */
    const ll_dot_multi_fn xk = kt == LL_TYPE_F16 ? c->kern->dot_multi_xf32[kt] : NULL;
    const ll_dot_rows_fn rows_k = xk ? c->kern->dot_rows_xf32[kt] : NULL;   /* all keys, one call */
    const ll_dot_multi_fn xv = kv->v_trans && vt == LL_TYPE_F16 ? c->kern->dot_multi_xf32[vt] : NULL;
    const ll_dot_rows_fn rows_v = xv ? c->kern->dot_rows_xf32[vt] : NULL;   /* all of V^T, one call */
    const size_t k_head_bytes = kv->k_row_bytes / (size_t)hp->n_head_kv;
    const size_t v_head_bytes = kv->v_row_bytes / (size_t)hp->n_head_kv;   /* by position */
    float *scores = c->att + (size_t)ith * c->att_stride;         /* (cols, n_ctx) */
    float *v_row = scores + (size_t)(c->att_tb * group) * (size_t)n_ctx;  /* (8, hdv) V slices */
    uint8_t *q_buf = c->att_b + (size_t)ith * c->att_b_stride;    /* (cols) queries, K's type or f32 */
    uint16_t *w_h = (uint16_t *)(q_buf + c->att_b_wofs);          /* (cols, n_ctx) F16 weights */
    const size_t q_stride = c->att_b_qstride;
    float part[LL_DOT_MULTI_MAX];
    int32_t p_c[LL_ATT_COLS_MAX];                                 /* position */

    int64_t i0, i1;
    share(j->n_blk * hp->n_head_kv, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const ll_attn_block blk = c->att_blk[i / hp->n_head_kv];
        const int64_t g = i % hp->n_head_kv, h0 = g * group, cols = blk.nt * group;
        const int32_t seq = c->ub_seq[blk.t0];
        const ll_kv_seq *sq = &kv->seq[seq];
        int32_t p_max = INT32_MIN;                                 /* the block's last position */
        /* column x = (token blk.t0 + x / group, head h0 + x % group) */
        for (int64_t x = 0; x < cols; x++) {
            const int64_t t = blk.t0 + x / group;
            const float *qf = c->q + t * q_dim + (h0 + x % group) * hd;
            uint8_t *qx = q_buf + (size_t)x * q_stride;
            if (xk) {
                uint8_t *q16 = q_buf + c->att_b_tofs;
                q_conv(qf, q16, hd);
                ll_dequantize_row(LL_TYPE_F16, q16, (float *)qx, hd);
            } else if (q_conv) {
                q_conv(qf, qx, hd);
            } else {
                memcpy(qx, qf, (size_t)hd * sizeof(float));
            }
            p_c[x] = c->ub_pos[t];
            if (p_c[x] > p_max) p_max = p_c[x];
        }
        if (rows_k) {
            /* every key up to the block's last visible one in one call */
            rows_k(hd, ll_kv_k_row(kv, j->layer, seq, 0) + (size_t)g * k_head_bytes, kv->k_row_bytes,
                   blk.hi_max, q_buf, q_stride, (int)cols, scores, (size_t)n_ctx);
        } else {
            for (int64_t s = 0; s < blk.hi_max; s++) {
                if (sq->pos[s] > p_max) {                              /* hidden from every column */
                    for (int64_t x = 0; x < cols; x++) scores[(size_t)x * (size_t)n_ctx + (size_t)s] = 0.0f;
                    continue;
                }
                const uint8_t *k = ll_kv_k_row(kv, j->layer, seq, (int32_t)s) + (size_t)g * k_head_bytes;
                for (int64_t x0 = 0; x0 < cols; x0 += LL_DOT_MULTI_MAX) {
                    int nc = cols - x0 < LL_DOT_MULTI_MAX ? (int)(cols - x0) : LL_DOT_MULTI_MAX;
                    const uint8_t *qx = q_buf + (size_t)x0 * q_stride;
                    if (xk) xk(hd, k, qx, q_stride, nc, part);
                    else if (multi_k) multi_k(hd, k, qx, q_stride, nc, part);
                    else for (int e = 0; e < nc; e++) part[e] = dot_k(hd, k, qx + (size_t)e * q_stride);
                    for (int e = 0; e < nc; e++) scores[(size_t)(x0 + e) * (size_t)n_ctx + (size_t)s] = part[e];
                }
            }
        }
        /* Per column: scale, hide the keys it does not see (weight 0), its maximum and last
         * visible key; the exponentials and their sum; then the weights: normalized, zero from
         * its last visible key to the V^T dot length, rounded through F16 for an F16 V. */
        const bool v16 = kv->v_trans && vt == LL_TYPE_F16;
        const int64_t n_w = kv->v_trans ? blk.n_kv : 0;
        for (int64_t x = 0; x < cols; x++) {
            float *score = scores + (size_t)x * (size_t)n_ctx;
            int64_t hi;
            const float mx = c->kern->att_scale_mask(score, sq->pos, blk.hi_max, p_c[x], scale, &hi);
            double sum = c->kern->exp_sum(score, hi, mx);
            const float inv = (float)(1.0 / sum);
            c->kern->att_weights(score, hi, n_w > hi ? n_w : hi, inv, v16,
                                 v16 && !xv ? w_h + (size_t)x * (size_t)n_ctx : NULL);
        }
        const uint8_t *vb = ll_kv_v_block(kv, j->layer, seq);
        if (kv->v_trans) {
            const int64_t n_kv = blk.n_kv;
            const uint8_t *wts = (const uint8_t *)scores;
            size_t w_stride = (size_t)n_ctx * sizeof(float);
            if (v16 && !xv) { wts = (const uint8_t *)w_h; w_stride = (size_t)n_ctx * 2; }
            const size_t es = kv->v_elem_bytes;
            if (rows_v) {
                /* every row of V^T against up to 8 columns in one call (slices of cells
                 * kept in L1), results (column, row) in v_row, then to their heads */
                for (int64_t x0 = 0; x0 < cols; x0 += LL_DOT_MULTI_MAX) {
                    int nc = cols - x0 < LL_DOT_MULTI_MAX ? (int)(cols - x0) : LL_DOT_MULTI_MAX;
                    rows_v(n_kv, vb + (size_t)(g * hdv) * (size_t)n_ctx * es, (size_t)n_ctx * es, hdv,
                           wts + (size_t)x0 * w_stride, w_stride, nc, v_row, (size_t)hdv);
                    for (int x = 0; x < nc; x++) {
                        const int64_t col = x0 + x, t = blk.t0 + col / group;
                        memcpy(c->att_out + t * o_dim + (h0 + col % group) * hdv, v_row + (size_t)x * (size_t)hdv,
                               (size_t)hdv * sizeof(float));
                    }
                }
            } else
            for (int64_t e = 0; e < hdv; e++) {                    /* row e of V^T: (n_ctx) */
                const uint8_t *vr = vb + (size_t)(g * hdv + e) * (size_t)n_ctx * es;
                for (int64_t x0 = 0; x0 < cols; x0 += LL_DOT_MULTI_MAX) {
                    int nc = cols - x0 < LL_DOT_MULTI_MAX ? (int)(cols - x0) : LL_DOT_MULTI_MAX;
                    if (xv) xv(n_kv, vr, wts + (size_t)x0 * w_stride, w_stride, nc, part);
                    else if (multi_v) multi_v(n_kv, vr, wts + (size_t)x0 * w_stride, w_stride, nc, part);
                    else for (int x = 0; x < nc; x++) part[x] = dot_v(n_kv, vr, wts + (size_t)(x0 + x) * w_stride);
                    for (int x = 0; x < nc; x++) {
                        const int64_t col = x0 + x, t = blk.t0 + col / group;
                        c->att_out[t * o_dim + (h0 + col % group) * hdv + e] = part[x];
                    }
                }
            }
        } else {
            for (int64_t x = 0; x < cols; x++) {
                float *o = c->att_out + (blk.t0 + x / group) * o_dim + (h0 + x % group) * hdv;
                for (int64_t e = 0; e < hdv; e++) o[e] = 0.0f;
            }
            for (int64_t s = 0; s < blk.hi_max; s++) {
                const int32_t ps = sq->pos[s];
                if (ps > p_max) continue;
                ll_dequantize_row(LL_TYPE_Q8_0, vb + (size_t)s * kv->v_row_bytes + (size_t)g * v_head_bytes,
                                  v_row, hdv);
                for (int64_t x = 0; x < cols; x++) {
                    if (ps > p_c[x]) continue;
                    const float a = scores[(size_t)x * (size_t)n_ctx + (size_t)s];
                    float *o = c->att_out + (blk.t0 + x / group) * o_dim + (h0 + x % group) * hdv;
                    for (int64_t e = 0; e < hdv; e++) o[e] += a * v_row[e];
                }
            }
        }
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

static bool step_aborted(const ll_ctx *c, const volatile bool *cancel) {
    return (cancel && *cancel) || (c->abort_cb && c->abort_cb(c->abort_data));
}

ll_status ll_forward(ll_ctx *c, int32_t n_tok, int32_t n_out, float *logits, float *hidden,
                     const volatile bool *cancel, ll_error *err) {
    const ll_model *m = c->m;
    const ll_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd;

    /* Token embeddings: x[t] = token_embd[ids[t]], one dequantized row each. */
    uint64_t emb_row_bytes = 0;
    ll_type_row_bytes(m->tok_embd.type, d, &emb_row_bytes);
    for (int32_t t = 0; t < n_tok; t++)
        ll_dequantize_row(m->tok_embd.type,
                          (const uint8_t *)m->tok_embd.data + (uint64_t)c->ub_tok[t] * emb_row_bytes,
                          c->x + t * d, d);                        /* x: (n_tok, d) */

    for (int32_t t = 0; t < n_tok; t++)                            /* (n_tok, n_rot) */
        ll_rope_row(c->rope_cs + t * hp->n_rot, m, c->ub_pos[t]);

    rows_multi(c, n_tok, NULL, c->ub_multi);     /* the layers' products: one row per token */
    const int64_t n_blk = attn_plan(c, n_tok);   /* cells and positions are set: one plan for every layer */
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const ll_layer *ly = &m->layers[l];
        if (step_aborted(c, cancel)) return ll_fail(err, LL_ERR_CANCELLED, "cancelled at layer %lld", (long long)l);

        /* Attention block. */
        rmsnorm(c->xn, c->x, ly->attn_norm, n_tok, d, hp->rms_eps);          /* xn: (n_tok, d) */
        {
            const ll_weight *w[3] = { &ly->wq, &ly->wk, &ly->wv };
            float *y[3] = { c->q, c->k_new, c->v_new };  /* (n_tok, n_head*hd), (n_tok, n_head_kv*hd) x2 */
            matmul(c, c->xn, n_tok, 3, w, y);
        }
        struct rope_job rj = { c, l, n_tok };
        ll_pool_run(c->pool, rope_store_worker, &rj);                        /* cells of layer l */
        struct attn_job aj = { c, l, n_blk };
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

    /* Final norm and the output, only for the tokens that want it. A non-finite hidden state
     * is fault R17: quantized activations would hide it (a NaN block scales to 0) and the
     * logits would look normal, so it is caught here, before the vocabulary product. */
    if (n_out <= 0 || (!logits && !hidden)) return LL_OK;
    for (int32_t o = 0; o < n_out; o++) {
        const int32_t t = c->ub_out[o];
        const float *xt = c->x + (int64_t)t * d;
        for (int64_t i = 0; i < d; i++)
            if (!isfinite(xt[i]))
                return ll_fail(err, LL_ERR_FORMAT, "numerical error: NaN logits (non-finite hidden "
                               "state, sequence %d) at position %d", c->ub_seq[t], c->ub_pos[t]);
        rmsnorm(c->xn + (int64_t)o * d, xt, m->output_norm, 1, d, hp->rms_eps);   /* xn: (n_out, d) */
    }
    if (hidden) {
        memcpy(hidden, c->xn, (size_t)n_out * (size_t)d * sizeof(float));
        return LL_OK;
    }
    const ll_weight *w[1] = { &m->output };
    float *y[1] = { logits };                                                /* (n_out, n_vocab) */
    rows_multi(c, n_out, c->ub_out, c->ub_multi);                            /* one row per output */
    matmul(c, c->xn, n_out, 1, w, y);
    return LL_OK;
}
