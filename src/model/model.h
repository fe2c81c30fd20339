/* model: the Llama architecture (internal). load.c binds a GGUF file's hyperparameters and
 * tensors into struct ll_model (checks: fault rows G35, G45-G56, G70); kv_cache.c holds the
 * KV cells of every sequence and the operations on them; context.c owns struct ll_ctx
 * (scratch buffers, batches, the decode loop, outputs); forward.c is the transformer itself.
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
#define LL_ATT_COLS_MAX 256          /* query heads per KV head, at most (attention scratch) */

/* A block of tokens attended together (forward.c): tokens t0 .. t0+nt-1 of the pass, one
 * sequence; hi_max = the last cell any of them sees + 1; n_kv = their V^T dot length. */
typedef struct { int64_t t0, nt, hi_max, n_kv; } ll_attn_block;

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
    int        pooling_type;            /* llama.pooling_type (0-3), -1 when absent */
    atomic_int refs;                    /* references: load gives 1, contexts hold 1 each */
};

/* Take ownership of a parsed GGUF and build the model from it (ll_model_load is this after
 * ll_gguf_open). On failure g is closed too. Lets tests load files built in memory. */
ll_status ll_model_from_gguf(ll_model **out, ll_gguf *g, const ll_model_params *p, ll_error *err);

/* ---- KV cache (kv_cache.c) ----
 *
 * Each sequence owns n_ctx cells. Cell i of a sequence holds a position, a token id and, for
 * every layer, one K row and one V row. A sequence's cells in use are [0, n_cells): new tokens
 * are appended, removals compact the rest downwards, so a sequence decoded with others sees
 * exactly the cells (in the same order) it would see alone. Attention masks cells by
 * position (cell pos <= token pos), so cells need not be sorted after a seq_add.
 *
 * K rows are (k_dim) elements of type_k per cell. V is transposed, (v_dim, n_ctx) per layer
 * and sequence, for F32 and F16, so attention's weighted sum is a dot product over positions
 * as in llama.cpp's non-flash path; Q8_0 V is stored by position, (n_ctx, v_dim), so each
 * block of 32 is whole, and the weighted sum accumulates rows (llama.cpp's flash path). */
typedef struct {
    int32_t    n_cells;                 /* cells in use */
    int32_t   *pos;                     /* (n_ctx) position of each cell */
    int32_t   *tok;                     /* (n_ctx) token id of each cell */
    atomic_bool cancel;                 /* ll_ctx_seq_cancel; read between steps */
} ll_kv_seq;

typedef struct {
    ll_kv_type type_k, type_v;
    int32_t    n_seq;                   /* sequences */
    int32_t    n_ctx;                   /* cells per sequence */
    int64_t    n_layer, k_dim, v_dim;   /* n_head_kv * head_dim_k, n_head_kv * head_dim_v */
    size_t     k_row_bytes;             /* one cell's K in one layer */
    bool       v_trans;                 /* V transposed (F32, F16) or by position (Q8_0) */
    size_t     v_elem_bytes;            /* transposed: bytes per element */
    size_t     v_row_bytes;             /* by position: one cell's V in one layer */
    uint64_t   bytes;                   /* bytes of k + v */
    uint8_t   *k;                       /* (L, n_seq, n_ctx, k_row_bytes) */
    uint8_t   *v;                       /* (L, n_seq, v_dim, n_ctx) elements, or
                                         * (L, n_seq, n_ctx, v_row_bytes) for Q8_0 */
    ll_kv_seq *seq;                     /* (n_seq) */
} ll_kv;

const char *ll_kv_type_name(ll_kv_type t);
/* Sizes the cache and checks it fits before allocating (LL_ERR_NOMEM names the bytes). */
ll_status ll_kv_init(ll_kv *kv, const ll_hparams *hp, int32_t n_ctx, int32_t n_seq,
                     ll_kv_type type_k, ll_kv_type type_v, ll_error *err);
void      ll_kv_free(ll_kv *kv);

/* The one place the cache's address arithmetic lives. */
static inline uint8_t *ll_kv_k_row(const ll_kv *kv, int64_t layer, int32_t seq, int32_t cell) {
    return kv->k + (((size_t)layer * (size_t)kv->n_seq + (size_t)seq) * (size_t)kv->n_ctx +
                    (size_t)cell) * kv->k_row_bytes;
}
/* Start of (layer, seq)'s V: transposed, row e at + e * n_ctx * v_elem_bytes; by position,
 * cell i at + i * v_row_bytes. Both blocks are n_ctx * v_row_bytes long. */
static inline uint8_t *ll_kv_v_block(const ll_kv *kv, int64_t layer, int32_t seq) {
    return kv->v + ((size_t)layer * (size_t)kv->n_seq + (size_t)seq) * (size_t)kv->n_ctx *
                   kv->v_row_bytes;
}

/* Write one cell's K and V (floats) in every layer's format, for one layer. */
void ll_kv_store(ll_kv *kv, const struct ll_kernels *kern, int64_t layer, int32_t seq,
                 int32_t cell, const float *k, const float *v);
/* Drop cells [c0, n_cells) of a sequence; their V is zeroed (attention reads up to 31 cells
 * past the last with weight 0, which must be finite). */
void      ll_kv_truncate_cells(ll_kv *kv, int32_t seq, int32_t c0);
/* Remove cells with positions in [p0, p1) and compact; returns the count removed. */
int32_t   ll_kv_remove_pos(ll_kv *kv, int32_t seq, int32_t p0, int32_t p1);
/* dst := src's cells with positions in [p0, p1). */
void      ll_kv_copy_seq(ll_kv *kv, int32_t src, int32_t dst, int32_t p0, int32_t p1);
/* Shift positions in [p0, p1) by delta, re-rotating their keys; negative results removed. */
ll_status ll_kv_shift_pos(ll_kv *kv, const ll_model *m, const struct ll_kernels *kern, int32_t seq,
                          int32_t p0, int32_t p1, int32_t delta, ll_error *err);
/* Positions stay below this, so a shift or a batch's position arithmetic never overflows. */
#define LL_POS_MAX (INT32_MAX / 2)
int32_t   ll_kv_pos_max(const ll_kv *kv, int32_t seq);

/* ---- context (context.c) ---- */

struct ll_ctx {
    ll_model  *m;                       /* one reference held */
    const struct ll_kernels *kern;
    ll_pool   *pool;                    /* owned when own_pool, else borrowed */
    bool       own_pool;
    int        n_threads;               /* the pool's */
    int32_t    n_ctx;                   /* cells per sequence */
    int32_t    n_batch;                 /* tokens per forward pass */
    int32_t    n_seq;                   /* sequences */
    bool       all_logits;
    bool       embeddings;
    ll_pooling pooling;                 /* resolved: never UNSPECIFIED */
    bool       embd_normalize;
    ll_abort_fn abort_cb;
    void      *abort_data;
    ll_kv      kv;

    /* The tokens of one forward pass (a "ubatch" of <= n_batch entries), filled by context.c. */
    int32_t   *ub_tok;                  /* (n_batch) token ids */
    int32_t   *ub_pos;                  /* (n_batch) positions */
    int32_t   *ub_seq;                  /* (n_batch) sequences */
    int32_t   *ub_cell;                 /* (n_batch) cell each token's K/V goes to */
    int32_t   *ub_out;                  /* (n_batch) indices of the tokens that want output */
    int32_t   *ub_multi;                /* (n_batch) per row of a product: 1 when its sequence has
                                           other rows in it (LL_MM_FAST), 0 when alone (EXACT) */
    bool       fast_products;           /* ll_ctx_params.fast_products */
    int32_t   *seq_rows;                /* (n_seq) scratch: rows per sequence */

    /* Scratch for one forward pass (allocated once, at init). Every buffer is packed: row t of
     * a (n, w) buffer starts at t * w. */
    float     *x;                       /* (n_batch, d) residual stream */
    float     *xn;                      /* (n_batch, d) normalized x, input of Q/K/V and gate/up */
    float     *q;                       /* (n_batch, n_head * hd) queries */
    float     *k_new;                   /* (n_batch, n_head_kv * hd) this pass's keys */
    float     *v_new;                   /* (n_batch, n_head_kv * hd_v) this pass's values */
    float     *att_out;                 /* (n_batch, n_head * hd_v) attention output, heads concatenated */
    float     *y;                       /* (n_batch, d) output of Wo and of Wdown */
    float     *gate;                    /* (n_batch, n_ff) gate, then silu(gate) * up */
    float     *up;                      /* (n_batch, n_ff) */
    float     *att;                     /* (n_threads, att_stride) per thread: scores (n_ctx)
                                         * of each query column (att_tb tokens x the query
                                         * heads of one KV group), then one dequantized V
                                         * slice (hd_v) */
    ll_attn_block *att_blk;             /* (n_batch) this pass's attention blocks */
    int64_t    att_tb;                  /* tokens of one sequence attended together: their
                                         * query heads of a KV group fill a dot_multi pass */
    size_t     att_stride;
    uint8_t   *att_b;                   /* (n_threads, att_b_stride) bytes per thread: the
                                         * columns' queries in K's dot type or f32
                                         * (att_b_qstride apart), then their weights as F16
                                         * (n_ctx apart) */
    size_t     att_b_stride;
    size_t     att_b_qstride;           /* bytes between two heads' converted queries */
    size_t     att_b_tofs;              /* offset of one F16 query (before widening) */
    size_t     att_b_wofs;              /* offset of the F16 weights in a thread's att_b row */
    float     *rope_cs;                 /* (n_batch, n_rot) (cos, sin) per token and pair */
    void      *xq;                      /* (n_batch, widest input row in its dot type) bytes */
    size_t     xq_cap;                  /* bytes of xq */
    float     *hid;                     /* (n_batch, d) final-norm hidden states (embeddings) */

    /* Outputs of the last decode call. */
    float     *logits;                  /* (logits_cap, n_vocab) rows in entry order */
    size_t     logits_cap;
    float     *embd;                    /* (embd_cap, d) POOLING_NONE rows in entry order */
    size_t     embd_cap;
    int32_t    n_outputs;               /* rows valid */
    int32_t   *out_row;                 /* (out_cap) entry -> output row, or -1 */
    size_t     out_cap;
    int32_t    n_entries;               /* entries of the last decode call */
    bool       simple;                  /* last call was ll_ctx_decode (ll_ctx_logits' view) */
    float     *embd_seq;                /* (n_seq, d) pooled embeddings */
    int32_t   *embd_seq_n;              /* (n_seq) tokens pooled in the last call; 0 = none */

    /* Per-sequence scratch of one decode call. */
    int32_t   *seq_cells0;              /* (n_seq) n_cells before the call, for rollback */
    int32_t   *seq_last;                /* (n_seq) last position seen while validating */
    int32_t   *seq_new;                 /* (n_seq) entries the call adds */
    ll_batch   own;                     /* ll_ctx_decode's batch, grown as needed */
};

/* Run the transformer on the ubatch c->ub_*[0 .. n_tok) whose cells are already reserved
 * (the sequences' n_cells include them). For the n_out tokens listed in c->ub_out, the
 * final-norm hidden states go to hidden (n_out, d) when it is not NULL, else the logits to
 * logits (n_out, n_vocab) when that is not NULL. Checks those rows for non-finite values
 * (R17). Ids, positions and cells are checked by the caller. */
ll_status ll_forward(ll_ctx *c, int32_t n_tok, int32_t n_out, float *logits, float *hidden,
                     const volatile bool *cancel, ll_error *err);

/* RoPE (forward.c): cs gets the (cos, sin) pairs of position pos, (n_rot); ll_rope_rotate
 * turns one head's first n_rot values by them. Used by the forward pass and by seq_add. */
void ll_rope_row(float *cs, const ll_model *m, int32_t pos);
void ll_rope_rotate(float *v, const float *cs, int64_t n_rot);

#endif
