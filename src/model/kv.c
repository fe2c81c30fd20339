/* model/kv.c: the inference context: KV cache, scratch buffers, thread pool, and the decode
 * loop that feeds ll_forward at most n_batch tokens at a time.
 *
 * The KV cache holds K as (n_layer, n_ctx, kv_dim) and V transposed as (n_layer, kv_dim,
 * n_ctx), as llama.cpp's non-flash attention does. It is F32 by default, as in the references;
 * kv_f16 stores it as F16 (llama.cpp's and Ollama's default), half the bytes. It is sized from
 * the requested n_ctx, never from the model's maximum: Llama 3.2 1B at 131072 positions needs
 * 8 GiB as F32 (4 GiB as F16), at the default 4096 only 256 MiB; 3B at 131072 needs 28 GiB as
 * F32, 14 GiB as F16. Everything is allocated in ll_ctx_init; decoding allocates only when
 * all_logits needs a bigger logits table than any earlier call. */
#include "model/model.h"

#include <stdio.h>

#define LL_CTX_DEFAULT_N_CTX   4096
#define LL_CTX_DEFAULT_N_BATCH 512

ll_ctx_params ll_ctx_default_params(void) {
    ll_ctx_params p = { 0, LL_CTX_DEFAULT_N_BATCH, 0, false, false };
    return p;
}

void ll_ctx_free(ll_ctx *c) {
    if (!c) return;
    ll_pool_free(c->pool);
    ll_free(c->k_cache);
    ll_free(c->v_cache);
    ll_free(c->x);
    ll_free(c->xn);
    ll_free(c->q);
    ll_free(c->kv_k);
    ll_free(c->kv_v);
    ll_free(c->att_out);
    ll_free(c->y);
    ll_free(c->gate);
    ll_free(c->up);
    ll_free(c->att);
    ll_free(c->att_h);
    ll_free(c->rope_cs);
    ll_free(c->xq);
    ll_free(c->logits);
    ll_free(c);
}

/* n floats (rows x width), overflow-checked; NULL on failure. */
static float *alloc_floats(int64_t rows, int64_t width) {
    size_t n;
    if (rows < 0 || width < 0 || !ll_mul_size((size_t)rows, (size_t)width, &n)) return NULL;
    return ll_malloc_array(n ? n : 1, sizeof(float));
}

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
    int64_t n_batch = p->n_batch > 0 ? p->n_batch : LL_CTX_DEFAULT_N_BATCH;
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (p->n_threads < 0 || p->n_threads > 1024)
        return ll_fail(err, LL_ERR_ARG, "n_threads %d out of range [0, 1024]", p->n_threads);
    int n_threads = p->n_threads ? p->n_threads : ll_cpu_count();

    const int64_t L = hp->n_layer, d = hp->n_embd;
    const int64_t q_dim = hp->n_head * hp->head_dim_k, o_dim = hp->n_head * hp->head_dim_v;
    const int64_t k_dim = hp->n_head_kv * hp->head_dim_k, v_dim = hp->n_head_kv * hp->head_dim_v;

    /* KV cache bytes, checked: L * n_ctx * (k_dim + v_dim) * element size. */
    const size_t elem = p->kv_f16 ? sizeof(uint16_t) : sizeof(float);
    const char *kv_type = p->kv_f16 ? "F16" : "F32";
    uint64_t k_elems, v_elems, kv_bytes;
    if (!ll_mul_u64((uint64_t)L * (uint64_t)n_ctx, (uint64_t)k_dim, &k_elems) ||
        !ll_mul_u64((uint64_t)L * (uint64_t)n_ctx, (uint64_t)v_dim, &v_elems) ||
        !ll_add_u64(k_elems, v_elems, &kv_bytes) || !ll_mul_u64(kv_bytes, elem, &kv_bytes) ||
        kv_bytes > SIZE_MAX)
        return ll_fail(err, LL_ERR_NOMEM, "%s KV cache for n_ctx %lld does not fit in memory",
                       kv_type, (long long)n_ctx);

    ll_ctx *c = ll_calloc(1, sizeof *c);
    if (!c) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the context");
    c->m = m;
    c->k = ll_kernels_get();
    c->n_ctx = (int32_t)n_ctx;
    c->n_batch = (int32_t)n_batch;
    c->all_logits = p->all_logits;
    c->kv_f16 = p->kv_f16;
    c->kv_elem = elem;
    c->kv_bytes = kv_bytes;

    c->k_cache = ll_malloc_array((size_t)k_elems, elem);
    /* Zeroed: attention reads up to 31 positions past the last one with weight 0 (forward.c),
     * which must be finite (all-zero bits are 0.0 in F32 and F16 alike). calloc of a large
     * block maps zero pages lazily. */
    c->v_cache = ll_calloc((size_t)v_elems, elem);
    if (!c->k_cache || !c->v_cache) {
        st = ll_fail(err, LL_ERR_NOMEM, "cannot allocate the %s KV cache: %llu bytes for n_ctx %lld",
                     kv_type, (unsigned long long)kv_bytes, (long long)n_ctx);
        goto fail;
    }
    if (c->kv_f16) {    /* per thread: the query of one head, then the weights, as F16 */
        size_t rows;
        c->att_h_stride = (size_t)hp->head_dim_k + (size_t)n_ctx;
        if (ll_mul_size(c->att_h_stride, (size_t)n_threads, &rows))
            c->att_h = ll_malloc_array(rows, sizeof(uint16_t));
        if (!c->att_h) {
            st = ll_fail(err, LL_ERR_NOMEM, "out of memory for the F16 attention scratch of n_ctx %lld",
                         (long long)n_ctx);
            goto fail;
        }
    }
    c->x = alloc_floats(n_batch, d);
    c->xn = alloc_floats(n_batch, d);
    c->q = alloc_floats(n_batch, q_dim);
    c->kv_k = alloc_floats(n_batch, k_dim);
    c->kv_v = alloc_floats(n_batch, v_dim);
    c->att_out = alloc_floats(n_batch, o_dim);
    c->y = alloc_floats(n_batch, d);
    c->gate = alloc_floats(n_batch, hp->n_ff);
    c->up = alloc_floats(n_batch, hp->n_ff);
    c->att = alloc_floats(n_threads, n_ctx);
    c->rope_cs = alloc_floats(n_batch, hp->n_rot);
    size_t row = widest_act_row(m);
    if (ll_mul_size(row, (size_t)n_batch, &c->xq_cap)) c->xq = ll_malloc(c->xq_cap ? c->xq_cap : 1);
    c->logits_cap = c->all_logits ? (size_t)n_batch : 1;
    c->logits = alloc_floats((int64_t)c->logits_cap, hp->n_vocab);
    if (!c->x || !c->xn || !c->q || !c->kv_k || !c->kv_v || !c->att_out || !c->y || !c->gate ||
        !c->up || !c->att || !c->rope_cs || !c->xq || !c->logits) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory for the scratch buffers of n_batch %lld",
                     (long long)n_batch);
        goto fail;
    }
    if ((st = ll_pool_init(&c->pool, n_threads, err)) != LL_OK) goto fail;
    *out = c;
    return LL_OK;
fail:
    ll_ctx_free(c);
    return st;
}

ll_status ll_ctx_decode(ll_ctx *c, const int32_t *ids, size_t n, const volatile bool *cancel,
                        ll_error *err) {
    const int64_t V = c->m->hp.n_vocab;
    if (n == 0) return ll_fail(err, LL_ERR_ARG, "decode: no tokens");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ll_fail(err, LL_ERR_ARG, "token id %d (at %zu) out of range [0, %lld)", ids[i], i,
                           (long long)V);
    if (n > (size_t)(c->n_ctx - c->pos))
        return ll_fail(err, LL_ERR_LIMIT, "context full: %d tokens in the cache + %zu new exceed "
                       "n_ctx %d", c->pos, n, c->n_ctx);

    /* Refused calls (above) change nothing; from here on the old logits are gone. */
    c->n_logits = 0;
    size_t rows = c->all_logits ? n : 1;
    if (rows > c->logits_cap) {     /* once per new high-water mark, never per token */
        float *nl = alloc_floats((int64_t)rows, V);
        if (!nl)
            return ll_fail(err, LL_ERR_NOMEM, "out of memory for %zu x %lld logits", rows, (long long)V);
        ll_free(c->logits);
        c->logits = nl;
        c->logits_cap = rows;
    }

    const int32_t pos0 = c->pos;
    for (size_t off = 0; off < n; off += (size_t)c->n_batch) {
        int32_t nt = (int32_t)(n - off < (size_t)c->n_batch ? n - off : (size_t)c->n_batch);
        bool last = off + (size_t)nt == n;
        float *out = NULL;
        int32_t n_out = 0;
        if (c->all_logits) { out = c->logits + off * (size_t)V; n_out = nt; }
        else if (last) { out = c->logits; n_out = 1; }
        ll_status st = ll_forward(c, ids + off, nt, out, n_out, cancel, err);
        if (st != LL_OK) {
            c->pos = pos0;          /* a failed call leaves the cache as it was */
            return st;
        }
        c->pos += nt;
    }
    c->n_logits = (int32_t)rows;
    return LL_OK;
}

const float *ll_ctx_logits(const ll_ctx *c, int32_t i) {
    if (c->n_logits == 0) return NULL;
    if (!c->all_logits) return i == -1 ? c->logits : NULL;
    if (i < 0) i += c->n_logits;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * (size_t)c->m->hp.n_vocab;
}

int32_t ll_ctx_pos(const ll_ctx *c) { return c->pos; }
int32_t ll_ctx_n_ctx(const ll_ctx *c) { return c->n_ctx; }

void ll_ctx_truncate(ll_ctx *c, int32_t pos) {
    if (pos < 0) pos = 0;
    if (pos < c->pos) c->pos = pos;
}
