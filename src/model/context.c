/* model/context.c: the inference context: scratch buffers, the thread pool (own or shared),
 * batches, the decode loop that feeds ll_forward at most n_batch entries at a time, the
 * outputs (logits, embeddings) and the public per-sequence cache operations.
 *
 * A decode call either completes or leaves the cache as it was: the cells it reserves are
 * removed again when a pass fails or is cancelled, and the cells cached before stay. All
 * memory is allocated in ll_ctx_init, except the output tables and ll_ctx_decode's batch,
 * which grow to a new high-water mark when a call needs more (never per token). */
#include "model/model.h"

#include <math.h>

#define LL_CTX_DEFAULT_N_CTX   4096
#define LL_CTX_DEFAULT_N_BATCH 512
#define LL_CTX_MAX_SEQ         256

ll_ctx_params ll_ctx_default_params(void) {
    ll_ctx_params p;
    memset(&p, 0, sizeof p);
    p.n_batch = LL_CTX_DEFAULT_N_BATCH;
    p.n_seq_max = 1;
    p.type_k = LL_KV_F32;
    p.type_v = LL_KV_F32;
    p.pooling = LL_POOLING_UNSPECIFIED;
    return p;
}

void ll_ctx_free(ll_ctx *c) {
    if (!c) return;
    if (c->own_pool) ll_pool_free(c->pool);
    ll_kv_free(&c->kv);
    ll_free(c->ub_tok);
    ll_free(c->ub_pos);
    ll_free(c->ub_seq);
    ll_free(c->ub_cell);
    ll_free(c->ub_out);
    ll_free(c->ub_multi);
    ll_free(c->seq_rows);
    ll_free(c->x);
    ll_free(c->xn);
    ll_free(c->q);
    ll_free(c->k_new);
    ll_free(c->v_new);
    ll_free(c->att_out);
    ll_free(c->y);
    ll_free(c->gate);
    ll_free(c->up);
    ll_free(c->att);
    ll_free(c->att_blk);
    ll_free(c->att_b);
    ll_free(c->rope_cs);
    ll_free(c->xq);
    ll_free(c->hid);
    ll_free(c->logits);
    ll_free(c->embd);
    ll_free(c->out_row);
    ll_free(c->embd_seq);
    ll_free(c->embd_seq_n);
    ll_free(c->seq_cells0);
    ll_free(c->seq_last);
    ll_free(c->seq_new);
    ll_batch_free(&c->own);
    ll_model_free(c->m);
    ll_free(c);
}

/* n floats (rows x width), overflow-checked; NULL on failure. */
static float *alloc_floats(int64_t rows, int64_t width) {
    size_t n;
    if (rows < 0 || width < 0 || !ll_mul_size((size_t)rows, (size_t)width, &n)) return NULL;
    return ll_malloc_array(n ? n : 1, sizeof(float));
}

static int32_t *alloc_ints(int64_t n) { return ll_calloc(n > 0 ? (size_t)n : 1, sizeof(int32_t)); }

/* Bytes of the widest activation row any weight product converts to its dot type. */
static size_t widest_act_row(const ll_model *m) {
    uint64_t best = 0, b;
    const ll_weight *w;
#define CONSIDER(wp) (w = (wp), ll_type_row_bytes(w->dot_type, w->n_in, &b) && b > best ? (best = b) : 0)
    CONSIDER(&m->output);
    for (int64_t l = 0; l < m->hp.n_layer; l++) {
        const ll_layer *ly = &m->layers[l];
        CONSIDER(&ly->wq); CONSIDER(&ly->wk); CONSIDER(&ly->wv); CONSIDER(&ly->wo);
        CONSIDER(&ly->w_gate); CONSIDER(&ly->w_up); CONSIDER(&ly->w_down);
    }
#undef CONSIDER
    return (size_t)best;
}

/* Per-thread attention scratch, sized from the pool's thread count, for one block of query
 * columns: att_tb tokens of one sequence times the query heads sharing a KV head, as many as
 * one dot_multi pass takes (LL_DOT_MULTI_MAX), so each key row and each row of V^T is read
 * once for all of them. Floats for each column's scores (n_ctx) and one V slice per column
 * (V^T against a block's columns in one call writes them all); bytes for
 * each column's query in K's dot type or widened to f32 (4 hd), one F16 query, and each
 * column's weights as F16 (2 n_ctx). */
static bool alloc_attention_scratch(ll_ctx *c) {
    const ll_hparams *hp = &c->m->hp;
    const size_t group = (size_t)(hp->n_head / hp->n_head_kv);
    if (group > LL_ATT_COLS_MAX) return false;
    c->att_tb = group < LL_DOT_MULTI_MAX ? (int64_t)(LL_DOT_MULTI_MAX / group) : 1;
    const size_t cols = group * (size_t)c->att_tb;
    size_t rows, scores, wts;
    if (!ll_mul_size((size_t)c->n_ctx, cols, &scores)) return false;
    c->att_stride = scores + (size_t)LL_DOT_MULTI_MAX * (size_t)hp->head_dim_v;
    if (!ll_mul_size(c->att_stride, (size_t)c->n_threads, &rows)) return false;
    c->att = ll_malloc_array(rows, sizeof(float));
    /* a query as f32 (the F16 path widens it after rounding) or in K's type (<= 4 bytes/elem) */
    c->att_b_qstride = ((size_t)hp->head_dim_k * 4 + 63) / 64 * 64;
    c->att_b_tofs = c->att_b_qstride * cols;                             /* one F16 query */
    c->att_b_wofs = c->att_b_tofs + ((size_t)hp->head_dim_k * 2 + 63) / 64 * 64;
    if (!ll_mul_size(((size_t)c->n_ctx * 2 + 63) / 64 * 64, cols, &wts)) return false;
    c->att_b_stride = c->att_b_wofs + wts;
    if (!ll_mul_size(c->att_b_stride, (size_t)c->n_threads, &rows)) return false;
    c->att_b = ll_malloc(rows);
    return c->att && c->att_b;
}

ll_status ll_ctx_init(ll_ctx **out, const ll_model *m, const ll_ctx_params *p, ll_error *err) {
    *out = NULL;
    ll_ctx_params dp = ll_ctx_default_params();
    if (!p) p = &dp;
    const ll_hparams *hp = &m->hp;
    ll_status st;

    int64_t n_ctx = p->n_ctx;
    if (n_ctx < 0) return ll_fail(err, LL_ERR_ARG, "n_ctx %lld must not be negative", (long long)n_ctx);
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < LL_CTX_DEFAULT_N_CTX ? hp->n_ctx_train : LL_CTX_DEFAULT_N_CTX;
    if (n_ctx > hp->n_ctx_train)
        return ll_fail(err, LL_ERR_ARG, "n_ctx %lld exceeds the model's training context %lld",
                       (long long)n_ctx, (long long)hp->n_ctx_train);
    int64_t n_seq = p->n_seq_max > 0 ? p->n_seq_max : 1;
    if (p->n_seq_max < 0 || n_seq > LL_CTX_MAX_SEQ)
        return ll_fail(err, LL_ERR_ARG, "n_seq_max %d out of range [1, %d]", p->n_seq_max, LL_CTX_MAX_SEQ);
    int64_t n_batch = p->n_batch > 0 ? p->n_batch : LL_CTX_DEFAULT_N_BATCH;
    if (n_batch > n_ctx * n_seq) n_batch = n_ctx * n_seq;
    if (p->pool == NULL && (p->n_threads < 0 || p->n_threads > 1024))
        return ll_fail(err, LL_ERR_ARG, "n_threads %d out of range [0, 1024]", p->n_threads);
    if ((unsigned)p->type_k > LL_KV_Q8_0 || (unsigned)p->type_v > LL_KV_Q8_0)
        return ll_fail(err, LL_ERR_ARG, "unknown KV cache type (K %d, V %d)", (int)p->type_k, (int)p->type_v);
    if (p->pooling < LL_POOLING_UNSPECIFIED || p->pooling > LL_POOLING_LAST)
        return ll_fail(err, LL_ERR_ARG, "unknown pooling type %d", (int)p->pooling);

    const int64_t d = hp->n_embd;
    const int64_t q_dim = hp->n_head * hp->head_dim_k, o_dim = hp->n_head * hp->head_dim_v;
    const int64_t k_dim = hp->n_head_kv * hp->head_dim_k, v_dim = hp->n_head_kv * hp->head_dim_v;

    ll_ctx *c = ll_calloc(1, sizeof *c);
    if (!c) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the context");
    c->m = ll_model_ref((ll_model *)m);   /* the count is the one mutable part of a model */
    c->kern = ll_kernels_get();
    c->n_ctx = (int32_t)n_ctx;
    c->n_batch = (int32_t)n_batch;
    c->n_seq = (int32_t)n_seq;
    c->all_logits = p->all_logits;
    c->embeddings = p->embeddings;
    c->pooling = p->pooling != LL_POOLING_UNSPECIFIED ? p->pooling
               : m->pooling_type >= 0 ? (ll_pooling)m->pooling_type : LL_POOLING_MEAN;
    c->embd_normalize = p->embd_normalize;
    c->abort_cb = p->abort_cb;
    c->abort_data = p->abort_data;
    c->fast_products = p->fast_products;
    if (p->pool) {
        c->pool = p->pool;
        c->n_threads = ll_pool_n_threads(p->pool);
    } else {
        c->n_threads = p->n_threads ? p->n_threads : ll_cpu_count();
        c->own_pool = true;
    }

    if ((st = ll_kv_init(&c->kv, hp, c->n_ctx, c->n_seq, p->type_k, p->type_v, err)) != LL_OK) goto fail;

    c->ub_tok = alloc_ints(n_batch);
    c->ub_pos = alloc_ints(n_batch);
    c->ub_seq = alloc_ints(n_batch);
    c->ub_cell = alloc_ints(n_batch);
    c->ub_out = alloc_ints(n_batch);
    c->ub_multi = alloc_ints(n_batch);
    c->x = alloc_floats(n_batch, d);
    c->xn = alloc_floats(n_batch, d);
    c->q = alloc_floats(n_batch, q_dim);
    c->k_new = alloc_floats(n_batch, k_dim);
    c->v_new = alloc_floats(n_batch, v_dim);
    c->att_out = alloc_floats(n_batch, o_dim);
    c->att_blk = ll_malloc_array((size_t)n_batch, sizeof(ll_attn_block));
    c->y = alloc_floats(n_batch, d);
    c->gate = alloc_floats(n_batch, hp->n_ff);
    c->up = alloc_floats(n_batch, hp->n_ff);
    c->rope_cs = alloc_floats(n_batch, hp->n_rot);
    c->hid = c->embeddings ? alloc_floats(n_batch, d) : alloc_floats(1, 1);
    size_t row = widest_act_row(m);
    if (ll_mul_size(row, (size_t)n_batch, &c->xq_cap)) c->xq = ll_malloc(c->xq_cap ? c->xq_cap : 1);
    c->embd_seq = alloc_floats(n_seq, d);
    c->embd_seq_n = alloc_ints(n_seq);
    c->seq_cells0 = alloc_ints(n_seq);
    c->seq_last = alloc_ints(n_seq);
    c->seq_new = alloc_ints(n_seq);
    c->seq_rows = alloc_ints(n_seq);
    /* Room for ll_ctx_decode's usual outputs up front: the last row, or a whole pass. */
    c->logits_cap = c->embeddings ? 0 : c->all_logits ? (size_t)n_batch : 1;
    c->logits = alloc_floats((int64_t)(c->logits_cap ? c->logits_cap : 1), c->logits_cap ? hp->n_vocab : 1);
    if (!c->ub_tok || !c->ub_pos || !c->ub_seq || !c->ub_cell || !c->ub_out || !c->ub_multi ||
        !c->seq_rows || !c->x || !c->xn ||
        !c->q || !c->k_new || !c->v_new || !c->att_out || !c->y || !c->gate || !c->up ||
        !c->rope_cs || !c->hid || !c->xq || !c->embd_seq || !c->embd_seq_n || !c->seq_cells0 ||
        !c->seq_last || !c->seq_new || !c->logits || !c->att_blk || !alloc_attention_scratch(c)) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory for the scratch buffers of n_batch %lld",
                     (long long)n_batch);
        goto fail;
    }
    if (c->own_pool && (st = ll_pool_init(&c->pool, c->n_threads, err)) != LL_OK) goto fail;
    *out = c;
    return LL_OK;
fail:
    ll_ctx_free(c);
    return st;
}

int32_t ll_ctx_n_ctx(const ll_ctx *c) { return c->n_ctx; }
int32_t ll_ctx_n_seq_max(const ll_ctx *c) { return c->n_seq; }
uint64_t ll_ctx_kv_bytes(const ll_ctx *c) { return c->kv.bytes; }
const ll_model *ll_ctx_model(const ll_ctx *c) { return c->m; }
ll_pooling ll_ctx_pooling(const ll_ctx *c) { return c->pooling; }

/* ---- batches -------------------------------------------------------------------------------- */

ll_status ll_batch_init(ll_batch *b, int32_t cap, ll_error *err) {
    memset(b, 0, sizeof *b);
    if (cap <= 0) return ll_fail(err, LL_ERR_ARG, "batch capacity %d must be positive", cap);
    b->token = ll_malloc_array((size_t)cap, sizeof(int32_t));
    b->pos = ll_malloc_array((size_t)cap, sizeof(int32_t));
    b->seq_id = ll_malloc_array((size_t)cap, sizeof(int32_t));
    b->output = ll_malloc_array((size_t)cap, sizeof(bool));
    if (!b->token || !b->pos || !b->seq_id || !b->output) {
        ll_batch_free(b);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory for a batch of %d entries", cap);
    }
    b->cap = cap;
    return LL_OK;
}

void ll_batch_free(ll_batch *b) {
    if (!b) return;
    ll_free(b->token);
    ll_free(b->pos);
    ll_free(b->seq_id);
    ll_free(b->output);
    memset(b, 0, sizeof *b);
}

void ll_batch_clear(ll_batch *b) { b->n_tokens = 0; }

bool ll_batch_add(ll_batch *b, int32_t token, int32_t pos, int32_t seq, bool output) {
    if (b->n_tokens >= b->cap) return false;
    const int32_t i = b->n_tokens++;
    b->token[i] = token;
    b->pos[i] = pos;
    b->seq_id[i] = seq;
    b->output[i] = output;
    return true;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static bool seq_cancelled(const ll_ctx *c, int32_t s) {
    return atomic_load_explicit(&c->kv.seq[s].cancel, memory_order_acquire);
}

/* Every entry is checked before anything changes: a refused call keeps the cache and the
 * previous outputs. Sets seq_new: entries per sequence, or -1 for a sequence whose cancel
 * flag is up now (the call skips it, whatever happens to the flag meanwhile); returns the
 * outputs needed. */
static ll_status batch_check(ll_ctx *c, const ll_batch *b, int32_t *n_out, ll_error *err) {
    const int64_t V = c->m->hp.n_vocab;
    if (!b || b->n_tokens <= 0) return ll_fail(err, LL_ERR_ARG, "decode: no tokens");
    if (b->n_tokens > b->cap) return ll_fail(err, LL_ERR_ARG, "batch holds %d entries but has room for %d", b->n_tokens, b->cap);
    for (int32_t s = 0; s < c->n_seq; s++) {
        c->seq_last[s] = ll_kv_pos_max(&c->kv, s);
        c->seq_new[s] = seq_cancelled(c, s) ? -1 : 0;
    }
    *n_out = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        const int32_t s = b->seq_id[i], p = b->pos[i], t = b->token[i];
        if (s < 0 || s >= c->n_seq)
            return ll_fail(err, LL_ERR_ARG, "entry %d: sequence %d out of range [0, %d)", i, s, c->n_seq);
        if (t < 0 || t >= V)
            return ll_fail(err, LL_ERR_ARG, "token id %d (at %d) out of range [0, %lld)", t, i, (long long)V);
        if (c->seq_new[s] < 0) continue;
        if (p <= c->seq_last[s] || p >= LL_POS_MAX)
            return ll_fail(err, LL_ERR_ARG, "entry %d: position %d of sequence %d must be above its "
                           "last position %d (and below %d)", i, p, s, c->seq_last[s], LL_POS_MAX);
        c->seq_last[s] = p;
        c->seq_new[s]++;
        if (b->output[i]) ++*n_out;
    }
    for (int32_t s = 0; s < c->n_seq; s++)
        if (c->seq_new[s] > c->n_ctx - c->kv.seq[s].n_cells)
            return ll_fail(err, LL_ERR_LIMIT, "context full: %d tokens in the cache + %d new exceed "
                           "n_ctx %d (sequence %d)", c->kv.seq[s].n_cells, c->seq_new[s], c->n_ctx, s);
    return LL_OK;
}

/* Grow the output tables to hold rows outputs and entries entries (high-water, never shrink). */
static ll_status outputs_reserve(ll_ctx *c, int32_t rows, int32_t entries, ll_error *err) {
    const int64_t w = c->embeddings ? c->m->hp.n_embd : c->m->hp.n_vocab;
    float **tab = c->embeddings ? &c->embd : &c->logits;
    size_t *cap = c->embeddings ? &c->embd_cap : &c->logits_cap;
    if ((size_t)rows > *cap) {
        float *nt = alloc_floats(rows, w);
        if (!nt) return ll_fail(err, LL_ERR_NOMEM, "out of memory for %d x %lld outputs", rows, (long long)w);
        ll_free(*tab);
        *tab = nt;
        *cap = (size_t)rows;
    }
    if ((size_t)entries > c->out_cap) {
        int32_t *nr = alloc_ints(entries);
        if (!nr) return ll_fail(err, LL_ERR_NOMEM, "out of memory for a batch of %d entries", entries);
        ll_free(c->out_row);
        c->out_row = nr;
        c->out_cap = (size_t)entries;
    }
    return LL_OK;
}

static void l2_normalize(float *v, int64_t n) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)v[i] * (double)v[i];
    if (ss <= 0.0) return;
    const float inv = (float)(1.0 / sqrt(ss));
    for (int64_t i = 0; i < n; i++) v[i] *= inv;
}

/* Fold one pass's hidden rows (all its tokens) into the sequences' pooled vectors. */
static void pool_rows(ll_ctx *c, int32_t n_tok) {
    const int64_t d = c->m->hp.n_embd;
    for (int32_t t = 0; t < n_tok; t++) {
        const int32_t s = c->ub_seq[t];
        float *acc = c->embd_seq + (int64_t)s * d;
        const float *h = c->hid + (int64_t)t * d;
        const int32_t n = c->embd_seq_n[s]++;
        if (c->pooling == LL_POOLING_MEAN) {
            for (int64_t i = 0; i < d; i++) acc[i] = n ? acc[i] + h[i] : h[i];
        } else if (c->pooling == LL_POOLING_LAST || n == 0) {   /* CLS keeps the first */
            memcpy(acc, h, (size_t)d * sizeof(float));
        }
    }
}

static void pool_finish(ll_ctx *c) {
    const int64_t d = c->m->hp.n_embd;
    for (int32_t s = 0; s < c->n_seq; s++) {
        if (c->embd_seq_n[s] == 0) continue;
        float *v = c->embd_seq + (int64_t)s * d;
        if (c->pooling == LL_POOLING_MEAN)
            for (int64_t i = 0; i < d; i++) v[i] /= (float)c->embd_seq_n[s];
        if (c->embd_normalize) l2_normalize(v, d);
    }
}

/* The decode loop shared by ll_ctx_decode and ll_ctx_decode_batch. */
static ll_status decode(ll_ctx *c, const ll_batch *b, const volatile bool *cancel, ll_error *err) {
    ll_status st;
    int32_t n_out_total = 0;
    if ((st = batch_check(c, b, &n_out_total, err)) != LL_OK) return st;
    const bool pooled = c->embeddings && c->pooling != LL_POOLING_NONE;
    if ((st = outputs_reserve(c, pooled ? 0 : n_out_total, b->n_tokens, err)) != LL_OK) return st;

    /* From here on the previous outputs are gone. */
    const int64_t d = c->m->hp.n_embd, V = c->m->hp.n_vocab;
    c->n_outputs = 0;
    c->n_entries = b->n_tokens;
    for (int32_t i = 0; i < b->n_tokens; i++) c->out_row[i] = -1;
    for (int32_t s = 0; s < c->n_seq; s++) {
        c->seq_cells0[s] = c->kv.seq[s].n_cells;
        c->embd_seq_n[s] = 0;
    }

    int32_t i = 0;
    while (i < b->n_tokens) {
        /* Gather up to n_batch entries of sequences still running; reserve their cells. */
        int32_t nt = 0, n_out = 0, first_row = c->n_outputs;
        const int32_t i0 = i;
        for (; i < b->n_tokens && nt < c->n_batch; i++) {
            const int32_t s = b->seq_id[i];
            if (c->seq_new[s] < 0) continue;                   /* cancelled at the call's start */
            ll_kv_seq *sq = &c->kv.seq[s];
            const int32_t cell = sq->n_cells++;
            sq->pos[cell] = b->pos[i];
            sq->tok[cell] = b->token[i];
            c->ub_tok[nt] = b->token[i];
            c->ub_pos[nt] = b->pos[i];
            c->ub_seq[nt] = s;
            c->ub_cell[nt] = cell;
            if (pooled || b->output[i]) c->ub_out[n_out++] = nt;
            nt++;
        }
        if (nt == 0) continue;
        float *logits = NULL, *hidden = NULL;
        if (pooled) hidden = c->hid;
        else if (c->embeddings) hidden = c->embd + (size_t)first_row * (size_t)d;
        else logits = c->logits + (size_t)first_row * (size_t)V;
        st = ll_forward(c, nt, n_out, logits, hidden, cancel, err);
        if (st != LL_OK) {
            for (int32_t s = 0; s < c->n_seq; s++) ll_kv_truncate_cells(&c->kv, s, c->seq_cells0[s]);
            c->n_outputs = 0;
            c->n_entries = 0;
            for (int32_t s = 0; s < c->n_seq; s++) c->embd_seq_n[s] = 0;
            return st;
        }
        if (pooled) {
            pool_rows(c, nt);
        } else {
            /* Output rows follow the entries in order: map the entries of this pass. */
            for (int32_t e = i0; e < i; e++)
                if (b->output[e] && c->seq_new[b->seq_id[e]] >= 0) c->out_row[e] = c->n_outputs++;
            if (c->embeddings && c->embd_normalize)
                for (int32_t r = first_row; r < c->n_outputs; r++) l2_normalize(c->embd + (size_t)r * (size_t)d, d);
        }
    }
    if (pooled) pool_finish(c);
    return LL_OK;
}

ll_status ll_ctx_decode_batch(ll_ctx *c, const ll_batch *b, ll_error *err) {
    ll_status st = decode(c, b, NULL, err);
    c->simple = false;
    return st;
}

ll_status ll_ctx_decode(ll_ctx *c, const int32_t *ids, size_t n, const volatile bool *cancel,
                        ll_error *err) {
    if (n == 0) return ll_fail(err, LL_ERR_ARG, "decode: no tokens");
    if (n > (size_t)LL_POS_MAX) return ll_fail(err, LL_ERR_LIMIT, "decode: %zu tokens is too many", n);
    if ((size_t)c->own.cap < n) {
        ll_batch nb;
        ll_status st = ll_batch_init(&nb, (int32_t)n, err);
        if (st != LL_OK) return st;
        ll_batch_free(&c->own);
        c->own = nb;
    }
    /* A call that only appends to seq 0, as before batches existed; a cancelled seq 0 is
     * un-cancelled (this API has its own cancel flag). */
    atomic_store(&c->kv.seq[0].cancel, false);
    const int32_t p0 = ll_kv_pos_max(&c->kv, 0) + 1;
    ll_batch_clear(&c->own);
    for (size_t i = 0; i < n; i++)
        ll_batch_add(&c->own, ids[i], p0 + (int32_t)i, 0, c->all_logits || i + 1 == n);
    ll_status st = decode(c, &c->own, cancel, err);
    c->simple = true;
    return st;
}

const float *ll_ctx_logits(const ll_ctx *c, int32_t i) {
    if (!c->simple || c->embeddings || c->n_outputs == 0) return NULL;
    if (!c->all_logits) return i == -1 ? c->logits + (size_t)(c->n_outputs - 1) * (size_t)c->m->hp.n_vocab : NULL;
    if (i < 0) i += c->n_outputs;
    if (i < 0 || i >= c->n_outputs) return NULL;
    return c->logits + (size_t)i * (size_t)c->m->hp.n_vocab;
}

const float *ll_ctx_logits_ith(const ll_ctx *c, int32_t i) {
    if (c->embeddings || i < 0 || i >= c->n_entries || c->out_row[i] < 0) return NULL;
    return c->logits + (size_t)c->out_row[i] * (size_t)c->m->hp.n_vocab;
}

const float *ll_ctx_embeddings_ith(const ll_ctx *c, int32_t i) {
    if (!c->embeddings || c->pooling != LL_POOLING_NONE || i < 0 || i >= c->n_entries || c->out_row[i] < 0)
        return NULL;
    return c->embd + (size_t)c->out_row[i] * (size_t)c->m->hp.n_embd;
}

const float *ll_ctx_embeddings_seq(const ll_ctx *c, int32_t seq) {
    if (!c->embeddings || c->pooling == LL_POOLING_NONE || seq < 0 || seq >= c->n_seq ||
        c->embd_seq_n[seq] == 0)
        return NULL;
    return c->embd_seq + (size_t)seq * (size_t)c->m->hp.n_embd;
}

/* ---- sequences ------------------------------------------------------------------------------ */

int32_t ll_ctx_pos(const ll_ctx *c) { return ll_kv_pos_max(&c->kv, 0) + 1; }

void ll_ctx_truncate(ll_ctx *c, int32_t pos) {
    ll_kv_remove_pos(&c->kv, 0, pos < 0 ? 0 : pos, INT32_MAX);
}

static ll_status seq_check(const ll_ctx *c, int32_t seq, ll_error *err) {
    if (seq < 0 || seq >= c->n_seq)
        return ll_fail(err, LL_ERR_ARG, "sequence %d out of range [0, %d)", seq, c->n_seq);
    return LL_OK;
}

int32_t ll_ctx_seq_len(const ll_ctx *c, int32_t seq) {
    return seq >= 0 && seq < c->n_seq ? c->kv.seq[seq].n_cells : 0;
}

int32_t ll_ctx_seq_pos_max(const ll_ctx *c, int32_t seq) {
    return seq >= 0 && seq < c->n_seq ? ll_kv_pos_max(&c->kv, seq) : -1;
}

size_t ll_ctx_seq_tokens(const ll_ctx *c, int32_t seq, int32_t *ids, size_t cap) {
    if (seq < 0 || seq >= c->n_seq) return 0;
    const ll_kv_seq *sq = &c->kv.seq[seq];
    for (int32_t i = 0; i < sq->n_cells && (size_t)i < cap; i++) ids[i] = sq->tok[i];
    return (size_t)sq->n_cells;
}

ll_status ll_ctx_seq_rm(ll_ctx *c, int32_t seq, int32_t p0, int32_t p1, ll_error *err) {
    ll_status st = seq_check(c, seq, err);
    if (st != LL_OK) return st;
    if (p1 < 0) p1 = INT32_MAX;
    if (p0 < 0) p0 = 0;
    ll_kv_remove_pos(&c->kv, seq, p0, p1);
    if (c->kv.seq[seq].n_cells == 0) atomic_store(&c->kv.seq[seq].cancel, false);
    return LL_OK;
}

ll_status ll_ctx_seq_cp(ll_ctx *c, int32_t src, int32_t dst, int32_t p0, int32_t p1, ll_error *err) {
    ll_status st;
    if ((st = seq_check(c, src, err)) != LL_OK || (st = seq_check(c, dst, err)) != LL_OK) return st;
    if (p1 < 0) p1 = INT32_MAX;
    if (p0 < 0) p0 = 0;
    ll_kv_copy_seq(&c->kv, src, dst, p0, p1);
    atomic_store(&c->kv.seq[dst].cancel, false);
    return LL_OK;
}

ll_status ll_ctx_seq_add(ll_ctx *c, int32_t seq, int32_t p0, int32_t p1, int32_t delta, ll_error *err) {
    ll_status st = seq_check(c, seq, err);
    if (st != LL_OK) return st;
    if (p1 < 0) p1 = INT32_MAX;
    if (p0 < 0) p0 = 0;
    if (delta > 0 && (int64_t)ll_kv_pos_max(&c->kv, seq) + delta >= LL_POS_MAX)
        return ll_fail(err, LL_ERR_ARG, "seq_add: positions of sequence %d would pass %d", seq, LL_POS_MAX);
    if (delta < -LL_POS_MAX) return ll_fail(err, LL_ERR_ARG, "seq_add: delta %d out of range", delta);
    return ll_kv_shift_pos(&c->kv, c->m, c->kern, seq, p0, p1, delta, err);
}

ll_status ll_ctx_seq_shift(ll_ctx *c, int32_t seq, int32_t n_keep, int32_t *n_discard, ll_error *err) {
    ll_status st = seq_check(c, seq, err);
    if (n_discard) *n_discard = 0;
    if (st != LL_OK) return st;
    const ll_kv_seq *sq = &c->kv.seq[seq];
    if (n_keep < 0) n_keep = 0;
    if (n_keep >= sq->n_cells - 1)
        return ll_fail(err, LL_ERR_LIMIT, "context shift: sequence %d keeps %d of its %d cells; "
                       "nothing left to drop", seq, n_keep, sq->n_cells);
    /* Positions of the cells in order; after a shift they are contiguous again. Discard
     * (cells - keep) / 2, as llama.cpp's and Ollama's shift do, counted in int64. */
    const int64_t discard = ((int64_t)sq->n_cells - n_keep) / 2;
    const int32_t keep_end = sq->pos[n_keep], drop_end = sq->pos[n_keep + discard];
    if ((st = ll_ctx_seq_rm(c, seq, keep_end, drop_end, err)) != LL_OK) return st;
    if ((st = ll_ctx_seq_add(c, seq, drop_end, -1, -(drop_end - keep_end), err)) != LL_OK) return st;
    if (n_discard) *n_discard = (int32_t)discard;
    return LL_OK;
}

void ll_ctx_seq_cancel(ll_ctx *c, int32_t seq, bool on) {
    if (seq >= 0 && seq < c->n_seq) atomic_store_explicit(&c->kv.seq[seq].cancel, on, memory_order_release);
}
