/* model: the Llama architecture (internal). load.c binds a GGUF file's hyperparameters and
 * tensors into struct ll_model (checks: fault rows G35, G45-G56, G70); kv.c owns struct ll_ctx
 * (KV cache, scratch buffers, the decode loop); forward.c is the transformer itself.
 *
 * Shapes are written as in GGUF, (ne0, ne1): a matrix (n_in, n_out) is n_out rows of n_in
 * values, and `W x` dots each row with x. d = n_embd, hd = head_dim_k, L = n_layer. */
#ifndef LL_MODEL_H
#define LL_MODEL_H

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "threadpool/pool.h"

#include <stdatomic.h>

#define LL_MODEL_MAX_LAYERS 4096     /* G48 */

typedef struct {
    int64_t n_vocab;        /* tokens in the vocab = rows of token_embd */
    int64_t n_ctx_train;    /* llama.context_length */
    int64_t n_embd;         /* d */
    int64_t n_layer;        /* L */
    int64_t n_head;         /* query heads */
    int64_t n_head_kv;      /* key/value heads (GQA); divides n_head */
    int64_t head_dim_k;     /* hd: llama.attention.key_length, default d / n_head */
    int64_t head_dim_v;     /* llama.attention.value_length, default d / n_head */
    int64_t n_rot;          /* rotated dims per head (== head_dim_k for llama) */
    int64_t n_ff;           /* SwiGLU hidden width */
    float   rms_eps;        /* RMSNorm epsilon */
    float   rope_base;      /* theta base (10000; 500000 for Llama 3) */
    float   rope_freq_scale;/* 1 / linear rope scaling factor (1: none) */
} ll_hparams;

/* One weight matrix: a view into the mapping. */
typedef struct {
    const ll_gguf_tensor *t;
    uint32_t    type;       /* ggml type of the weight */
    uint32_t    dot_type;   /* activation partner type (gguf-and-quants.md C.1) */
    int64_t     n_in;       /* ne0 */
    int64_t     n_out;      /* ne1 */
    const void *data;
} ll_weight;

typedef struct {
    const float *attn_norm;             /* (d) gain, F32 copy owned by the model */
    ll_weight    wq;                    /* (d, n_head * hd) */
    ll_weight    wk;                    /* (d, n_head_kv * hd) */
    ll_weight    wv;                    /* (d, n_head_kv * hd_v) */
    ll_weight    wo;                    /* (n_head * hd_v, d) */
    const float *ffn_norm;              /* (d) */
    ll_weight    w_gate;                /* (d, n_ff) */
    ll_weight    w_up;                  /* (d, n_ff) */
    ll_weight    w_down;                /* (n_ff, d) */
} ll_layer;

struct ll_model {
    ll_gguf   *gguf;                    /* owned; every weight is a view into its mapping */
    ll_vocab  *vocab;                   /* owned */
    ll_hparams hp;
    ll_layer  *layers;                  /* (L) */
    ll_weight  tok_embd;                /* (d, n_vocab): row t is token t's embedding */
    const float *output_norm;           /* (d) */
    ll_weight  output;                  /* (d, n_vocab); token_embd's view when tied */
    bool       tied_output;             /* output.weight absent (G54) */
    const float *rope_freqs;            /* (n_rot / 2) divisors or NULL; F32 copy in norms */
    float     *norms;                   /* (2 L + 1, d) all norm gains as F32, then rope_freqs; owned */
    uint32_t   file_type;               /* general.file_type, or guessed (UINT32_MAX: unknown) */
    uint64_t   n_params;                /* elements of all tensors */
    uint64_t   size_bytes;              /* bytes of all tensors */
};

/* Take ownership of a parsed GGUF and build the model from it (ll_model_load is this after
 * ll_gguf_open). On failure g is closed too. Lets tests load files built in memory. */
ll_status ll_model_from_gguf(ll_model **out, ll_gguf *g, const ll_model_params *p, ll_error *err);

/* ---- context (kv.c) ---- */

struct ll_ctx {
    const ll_model *m;                  /* borrowed; must outlive the context */
    const struct ll_kernels *k;
    ll_pool   *pool;                    /* owned, n_threads workers */
    int32_t    n_ctx;                   /* KV cache length */
    int32_t    n_batch;                 /* tokens per forward call */
    int32_t    pos;                     /* tokens in the cache */
    bool       all_logits;

    /* KV cache, F32 (the default, as in the references) or F16 (kv_f16, llama.cpp's default).
     * V is transposed (one row per value dimension) so attention's weighted sum is a dot
     * product over positions, as in llama.cpp. Elements are kv_elem bytes: float or uint16_t. */
    bool       kv_f16;
    size_t     kv_elem;                 /* 4 (F32) or 2 (F16) */
    uint64_t   kv_bytes;                /* bytes of k_cache + v_cache */
    void      *k_cache;                 /* (L, n_ctx, n_head_kv * hd) */
    void      *v_cache;                 /* (L, n_head_kv * hd_v, n_ctx), zero-initialized */

    /* Scratch for one forward call of up to n_batch tokens (allocated once, at init).
     * Every buffer is packed: row t of a (n, w) buffer starts at t * w. */
    float     *x;                       /* (n_batch, d) residual stream */
    float     *xn;                      /* (n_batch, d) normalized x, input of Q/K/V and gate/up */
    float     *q;                       /* (n_batch, n_head * hd) queries */
    float     *kv_k;                    /* (n_batch, n_head_kv * hd) this call's keys */
    float     *kv_v;                    /* (n_batch, n_head_kv * hd_v) this call's values */
    float     *att_out;                 /* (n_batch, n_head * hd_v) attention output, heads concatenated */
    float     *y;                       /* (n_batch, d) output of Wo and of Wdown */
    float     *gate;                    /* (n_batch, n_ff) gate, then silu(gate) * up */
    float     *up;                      /* (n_batch, n_ff) */
    float     *att;                     /* (n_threads, n_ctx) attention scores, one row per thread */
    uint16_t  *att_h;                   /* F16 cache only: (n_threads, att_h_stride) per thread the
                                         * query of one head (hd) then the weights (n_ctx), as F16 */
    size_t     att_h_stride;            /* elements per thread row of att_h */
    float     *rope_cs;                 /* (n_batch, n_rot) (cos, sin) per position and pair */
    void      *xq;                      /* (n_batch, widest input row in its dot type) bytes */
    size_t     xq_cap;                  /* bytes of xq */

    /* Logits of the last decode call: (n_kept, n_vocab). */
    float     *logits;
    size_t     logits_cap;              /* rows allocated */
    int32_t    n_logits;                /* rows valid */
};

/* Run the transformer on n_tok (<= n_batch) tokens at positions c->pos .. c->pos + n_tok - 1,
 * writing their K/V into the cache. When logits is not NULL, the logits of the last
 * n_out tokens (1 or n_tok) go there, (n_out, n_vocab). Does not advance c->pos.
 * Ids and positions are checked by the caller (ll_ctx_decode). */
ll_status ll_forward(ll_ctx *c, const int32_t *ids, int32_t n_tok, float *logits, int32_t n_out,
                     const volatile bool *cancel, ll_error *err);

#endif
