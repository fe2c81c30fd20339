/* model/kv_cache.c: the KV cells of every sequence (layout in model.h) and the operations on
 * them: append (ll_kv_store), truncate, remove a position range, copy a sequence, shift
 * positions with key re-rotation.
 *
 * Memory is n_seq x n_ctx cells, sized from the requested context, never from the model's
 * maximum: Llama 3.2 1B (16 layers, 8 KV heads of 64) takes 128 KiB per cell as F32, 64 KiB as
 * F16 and 34 KiB as Q8_0, so 4 sequences of 4096 cells take 2 GiB, 1 GiB or 544 MiB.
 *
 * Cost of the operations: removal moves every later cell once (memmove per layer; strided for
 * transposed V), copy and shift touch only the cells in range. None of them allocates. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

const char *ll_kv_type_name(ll_kv_type t) {
    switch (t) {
    case LL_KV_F32:  return "F32";
    case LL_KV_F16:  return "F16";
    case LL_KV_Q8_0: return "Q8_0";
    }
    return "?";
}

/* Bytes of memory the system can still give (MemAvailable), or 0 when unknown. A cache larger
 * than this would be paged in until the process is killed (fault R5), so it is refused. */
static uint64_t mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long kib = 0;
    if (f) {
        char line[128];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
        fclose(f);
    }
    if (kib) return (uint64_t)kib * 1024u;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* Bytes of n elements of a cache type; false for an unknown type or n not a block multiple. */
static bool kv_elems_bytes(ll_kv_type t, int64_t n, uint64_t *bytes) {
    switch (t) {
    case LL_KV_F32:  return ll_type_row_bytes(LL_TYPE_F32, n, bytes);
    case LL_KV_F16:  return ll_type_row_bytes(LL_TYPE_F16, n, bytes);
    case LL_KV_Q8_0: return ll_type_row_bytes(LL_TYPE_Q8_0, n, bytes);
    }
    return false;
}

static uint32_t kv_ggml_type(ll_kv_type t) {
    return t == LL_KV_F32 ? LL_TYPE_F32 : t == LL_KV_F16 ? LL_TYPE_F16 : LL_TYPE_Q8_0;
}

void ll_kv_free(ll_kv *kv) {
    if (!kv) return;
    if (kv->seq)
        for (int32_t s = 0; s < kv->n_seq; s++) {
            ll_free(kv->seq[s].pos);
            ll_free(kv->seq[s].tok);
        }
    ll_free(kv->seq);
    ll_free(kv->k);
    ll_free(kv->v);
    memset(kv, 0, sizeof *kv);
}

ll_status ll_kv_init(ll_kv *kv, const ll_hparams *hp, int32_t n_ctx, int32_t n_seq,
                     ll_kv_type type_k, ll_kv_type type_v, ll_error *err) {
    memset(kv, 0, sizeof *kv);
    if ((unsigned)type_k > LL_KV_Q8_0 || (unsigned)type_v > LL_KV_Q8_0)
        return ll_fail(err, LL_ERR_ARG, "unknown KV cache type (K %d, V %d)", (int)type_k, (int)type_v);
    kv->type_k = type_k;
    kv->type_v = type_v;
    kv->n_seq = n_seq;
    kv->n_ctx = n_ctx;
    kv->n_layer = hp->n_layer;
    kv->k_dim = hp->n_head_kv * hp->head_dim_k;
    kv->v_dim = hp->n_head_kv * hp->head_dim_v;

    /* Q8_0 blocks must not straddle heads: attention reads one head's slice at a time. */
    if (type_k == LL_KV_Q8_0 && hp->head_dim_k % 32 != 0)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "a Q8_0 K cache needs a key head size divisible "
                       "by 32; this model's is %lld", (long long)hp->head_dim_k);
    if (type_v == LL_KV_Q8_0 && hp->head_dim_v % 32 != 0)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "a Q8_0 V cache needs a value head size divisible "
                       "by 32; this model's is %lld", (long long)hp->head_dim_v);
    uint64_t kr, vr;
    if (!kv_elems_bytes(type_k, kv->k_dim, &kr) || !kv_elems_bytes(type_v, kv->v_dim, &vr))
        return ll_fail(err, LL_ERR_FORMAT, "KV row sizes overflow");
    kv->k_row_bytes = (size_t)kr;
    kv->v_row_bytes = (size_t)vr;
    kv->v_trans = type_v != LL_KV_Q8_0;
    kv->v_elem_bytes = type_v == LL_KV_F32 ? 4 : 2;

    /* bytes = L * n_seq * n_ctx * (k_row + v_row), every step checked. */
    uint64_t cells, k_bytes, v_bytes;
    if (!ll_mul_u64((uint64_t)kv->n_layer * (uint64_t)n_seq, (uint64_t)n_ctx, &cells) ||
        !ll_mul_u64(cells, kr, &k_bytes) || !ll_mul_u64(cells, vr, &v_bytes) ||
        !ll_add_u64(k_bytes, v_bytes, &kv->bytes) || kv->bytes > SIZE_MAX / 2)
        return ll_fail(err, LL_ERR_NOMEM, "KV cache for %d sequences x n_ctx %d does not fit in "
                       "memory", n_seq, n_ctx);
    const uint64_t avail = mem_available_bytes();
    if (avail && kv->bytes > avail)
        return ll_fail(err, LL_ERR_NOMEM, "%s/%s KV cache for %d sequences x n_ctx %d needs %.1f GiB; "
                       "%.1f GiB of memory is available", ll_kv_type_name(type_k),
                       ll_kv_type_name(type_v), n_seq, n_ctx, (double)kv->bytes / 1073741824.0,
                       (double)avail / 1073741824.0);
    kv->k = ll_malloc(k_bytes ? (size_t)k_bytes : 1);
    /* Zeroed: attention reads up to 31 cells past the last with weight 0, which must be
     * finite (all-zero bits are 0.0 in every cache type). calloc maps zero pages lazily. */
    kv->v = ll_calloc(v_bytes ? (size_t)v_bytes : 1, 1);
    kv->seq = ll_calloc((size_t)n_seq, sizeof *kv->seq);
    if (!kv->k || !kv->v || !kv->seq) goto nomem;
    for (int32_t s = 0; s < n_seq; s++) {
        atomic_init(&kv->seq[s].cancel, false);
        kv->seq[s].pos = ll_malloc_array((size_t)n_ctx, sizeof(int32_t));
        kv->seq[s].tok = ll_malloc_array((size_t)n_ctx, sizeof(int32_t));
        if (!kv->seq[s].pos || !kv->seq[s].tok) goto nomem;
    }
    return LL_OK;
nomem:;
    uint64_t bytes = kv->bytes;
    ll_kv_free(kv);
    return ll_fail(err, LL_ERR_NOMEM, "cannot allocate the %s/%s KV cache: %llu bytes for %d "
                   "sequences x n_ctx %d", ll_kv_type_name(type_k), ll_kv_type_name(type_v),
                   (unsigned long long)bytes, n_seq, n_ctx);
}

/* ---- cells --------------------------------------------------------------------------------- */

void ll_kv_store(ll_kv *kv, const struct ll_kernels *kern, int64_t layer, int32_t seq,
                 int32_t cell, const float *k, const float *v) {
    uint8_t *kr = ll_kv_k_row(kv, layer, seq, cell);
    /* F16 rounds to nearest even and Q8_0 with ggml's x86 rounding: the conversions of a copy
     * into a ggml cache of that type. */
    kern->quantize_act[kv_ggml_type(kv->type_k)](k, kr, kv->k_dim);
    uint8_t *vb = ll_kv_v_block(kv, layer, seq);
    if (!kv->v_trans) {
        kern->quantize_act[LL_TYPE_Q8_0](v, vb + (size_t)cell * kv->v_row_bytes, kv->v_dim);
    } else if (kv->type_v == LL_KV_F16) {
        uint16_t *vt = (uint16_t *)vb + cell;
        for (int64_t e = 0; e < kv->v_dim; e++) vt[(size_t)e * (size_t)kv->n_ctx] = ll_fp32_to_fp16(v[e]);
    } else {
        float *vt = (float *)vb + cell;
        for (int64_t e = 0; e < kv->v_dim; e++) vt[(size_t)e * (size_t)kv->n_ctx] = v[e];
    }
}

/* Move n cells of one sequence from index src to index dst (ranges may overlap), in every
 * layer; cell metadata too. */
static void kv_move_cells(ll_kv *kv, int32_t seq, int32_t dst, int32_t src, int32_t n) {
    if (n <= 0 || dst == src) return;
    for (int64_t l = 0; l < kv->n_layer; l++) {
        memmove(ll_kv_k_row(kv, l, seq, dst), ll_kv_k_row(kv, l, seq, src), (size_t)n * kv->k_row_bytes);
        uint8_t *vb = ll_kv_v_block(kv, l, seq);
        if (!kv->v_trans) {
            memmove(vb + (size_t)dst * kv->v_row_bytes, vb + (size_t)src * kv->v_row_bytes,
                    (size_t)n * kv->v_row_bytes);
        } else {
            const size_t es = kv->v_elem_bytes, row = (size_t)kv->n_ctx * es;
            for (int64_t e = 0; e < kv->v_dim; e++)
                memmove(vb + (size_t)e * row + (size_t)dst * es, vb + (size_t)e * row + (size_t)src * es,
                        (size_t)n * es);
        }
    }
    ll_kv_seq *sq = &kv->seq[seq];
    memmove(sq->pos + dst, sq->pos + src, (size_t)n * sizeof(int32_t));
    memmove(sq->tok + dst, sq->tok + src, (size_t)n * sizeof(int32_t));
}

/* Zero V of cells [c0, c1) in every layer. */
static void kv_zero_v(ll_kv *kv, int32_t seq, int32_t c0, int32_t c1) {
    if (c1 <= c0) return;
    for (int64_t l = 0; l < kv->n_layer; l++) {
        uint8_t *vb = ll_kv_v_block(kv, l, seq);
        if (!kv->v_trans) {
            memset(vb + (size_t)c0 * kv->v_row_bytes, 0, (size_t)(c1 - c0) * kv->v_row_bytes);
        } else {
            const size_t es = kv->v_elem_bytes, row = (size_t)kv->n_ctx * es;
            for (int64_t e = 0; e < kv->v_dim; e++)
                memset(vb + (size_t)e * row + (size_t)c0 * es, 0, (size_t)(c1 - c0) * es);
        }
    }
}

void ll_kv_truncate_cells(ll_kv *kv, int32_t seq, int32_t c0) {
    ll_kv_seq *sq = &kv->seq[seq];
    if (c0 < 0) c0 = 0;
    if (c0 >= sq->n_cells) return;
    kv_zero_v(kv, seq, c0, sq->n_cells);
    sq->n_cells = c0;
}

int32_t ll_kv_remove_pos(ll_kv *kv, int32_t seq, int32_t p0, int32_t p1) {
    ll_kv_seq *sq = &kv->seq[seq];
    const int32_t n = sq->n_cells;
    int32_t w = 0;                     /* cells kept so far, compacted to [0, w) */
    for (int32_t r = 0; r < n;) {
        if (sq->pos[r] >= p0 && sq->pos[r] < p1) { r++; continue; }
        int32_t e = r + 1;             /* a run of kept cells moves in one go */
        while (e < n && !(sq->pos[e] >= p0 && sq->pos[e] < p1)) e++;
        kv_move_cells(kv, seq, w, r, e - r);
        w += e - r;
        r = e;
    }
    kv_zero_v(kv, seq, w, n);
    sq->n_cells = w;
    return n - w;
}

void ll_kv_copy_seq(ll_kv *kv, int32_t src, int32_t dst, int32_t p0, int32_t p1) {
    if (src == dst) {                  /* keep only [p0, p1) */
        ll_kv_remove_pos(kv, dst, INT32_MIN, p0);
        ll_kv_remove_pos(kv, dst, p1, INT32_MAX);
        return;
    }
    ll_kv_truncate_cells(kv, dst, 0);
    const ll_kv_seq *ss = &kv->seq[src];
    ll_kv_seq *ds = &kv->seq[dst];
    int32_t w = 0;
    for (int32_t r = 0; r < ss->n_cells;) {
        if (!(ss->pos[r] >= p0 && ss->pos[r] < p1)) { r++; continue; }
        int32_t e = r + 1;
        while (e < ss->n_cells && ss->pos[e] >= p0 && ss->pos[e] < p1) e++;
        const int32_t n = e - r;
        for (int64_t l = 0; l < kv->n_layer; l++) {
            memcpy(ll_kv_k_row(kv, l, dst, w), ll_kv_k_row(kv, l, src, r), (size_t)n * kv->k_row_bytes);
            const uint8_t *sb = ll_kv_v_block(kv, l, src);
            uint8_t *db = ll_kv_v_block(kv, l, dst);
            if (!kv->v_trans) {
                memcpy(db + (size_t)w * kv->v_row_bytes, sb + (size_t)r * kv->v_row_bytes,
                       (size_t)n * kv->v_row_bytes);
            } else {
                const size_t es = kv->v_elem_bytes, row = (size_t)kv->n_ctx * es;
                for (int64_t e2 = 0; e2 < kv->v_dim; e2++)
                    memcpy(db + (size_t)e2 * row + (size_t)w * es, sb + (size_t)e2 * row + (size_t)r * es,
                           (size_t)n * es);
            }
        }
        memcpy(ds->pos + w, ss->pos + r, (size_t)n * sizeof(int32_t));
        memcpy(ds->tok + w, ss->tok + r, (size_t)n * sizeof(int32_t));
        w += n;
        r = e;
    }
    ds->n_cells = w;
}

/* Rotate one cell's keys (every KV head of every layer) by the angles of cs. The stored form
 * is decoded to floats, turned and encoded again, as llama.cpp's K-shift does for F16 and
 * quantized caches. */
static void kv_rotate_cell(ll_kv *kv, const ll_model *m, const struct ll_kernels *kern, int32_t seq,
                           int32_t cell, const float *cs, float *tmp) {
    const ll_hparams *hp = &m->hp;
    const uint32_t t = kv_ggml_type(kv->type_k);
    for (int64_t l = 0; l < kv->n_layer; l++) {
        uint8_t *kr = ll_kv_k_row(kv, l, seq, cell);
        ll_dequantize_row(t, kr, tmp, kv->k_dim);
        for (int64_t h = 0; h < hp->n_head_kv; h++) ll_rope_rotate(tmp + h * hp->head_dim_k, cs, hp->n_rot);
        kern->quantize_act[t](tmp, kr, kv->k_dim);
    }
}

ll_status ll_kv_shift_pos(ll_kv *kv, const ll_model *m, const struct ll_kernels *kern, int32_t seq,
                          int32_t p0, int32_t p1, int32_t delta, ll_error *err) {
    ll_kv_seq *sq = &kv->seq[seq];
    if (delta == 0) return LL_OK;
    /* One (cos, sin) row for the angle of `delta` positions, and one cell's keys as floats. */
    float *cs = ll_malloc_array((size_t)m->hp.n_rot, sizeof(float));
    float *tmp = ll_malloc_array((size_t)kv->k_dim, sizeof(float));
    if (!cs || !tmp) {
        ll_free(cs);
        ll_free(tmp);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory shifting the positions of sequence %d", seq);
    }
    ll_rope_row(cs, m, delta);
    bool any_negative = false;
    for (int32_t i = 0; i < sq->n_cells; i++) {
        if (sq->pos[i] < p0 || sq->pos[i] >= p1) continue;
        const int64_t np = (int64_t)sq->pos[i] + delta;
        if (np < 0) { any_negative = true; sq->pos[i] = -1; continue; }
        sq->pos[i] = (int32_t)np;      /* the caller keeps positions below LL_POS_MAX */
        kv_rotate_cell(kv, m, kern, seq, i, cs, tmp);
    }
    if (any_negative) ll_kv_remove_pos(kv, seq, -1, 0);
    ll_free(cs);
    ll_free(tmp);
    return LL_OK;
}

int32_t ll_kv_pos_max(const ll_kv *kv, int32_t seq) {
    const ll_kv_seq *sq = &kv->seq[seq];
    int32_t mx = -1;
    for (int32_t i = 0; i < sq->n_cells; i++)
        if (sq->pos[i] > mx) mx = sq->pos[i];
    return mx;
}
