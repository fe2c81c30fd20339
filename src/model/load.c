/* model/load.c: bind a GGUF file to the Llama architecture.
 *
 * Order: container (gguf.c already checked every offset and size), architecture (G45, G46),
 * hyperparameters with their defaults and sanity checks (A.6; G47-G52), vocab, tensors with
 * their exact shapes and types (A.7; G35, G53-G56), norm gains scanned for NaN/Inf (G70).
 * Weights stay views into the mapping: the model keeps the ll_gguf open for its lifetime. */
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- hyperparameters ------------------------------------------------------------------ */

/* Read an element of an integer array KV as int64; false for non-integer element types. */
static bool arr_int_at(const ll_gguf_kv *kv, uint64_t i, int64_t *out) {
    const uint8_t *p = kv->v.arr.data;
    switch (kv->v.arr.type) {
    case LL_GGUF_TYPE_UINT8:  *out = p[i]; return true;
    case LL_GGUF_TYPE_INT8:   *out = (int8_t)p[i]; return true;
    case LL_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); *out = v; return true; }
    case LL_GGUF_TYPE_INT16:  { int16_t v;  memcpy(&v, p + 2 * i, 2); *out = v; return true; }
    case LL_GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p + 4 * i, 4); *out = v; return true; }
    case LL_GGUF_TYPE_INT32:  { int32_t v;  memcpy(&v, p + 4 * i, 4); *out = v; return true; }
    case LL_GGUF_TYPE_UINT64: {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        if (v > INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    case LL_GGUF_TYPE_INT64:  { int64_t v;  memcpy(&v, p + 8 * i, 8); *out = v; return true; }
    default: return false;
    }
}

/* An integer hparam that may also be a per-layer array (G52): accepted as an array only when
 * it has n_layer entries that are all equal (this engine has no per-layer shapes).
 * Absent: *found = false and *out = def. */
static ll_status hp_int(const ll_gguf *g, const char *key, int64_t n_layer, int64_t def,
                        int64_t *out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = ll_gguf_find(g, key);
    *found = kv != NULL;
    *out = def;
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_TYPE_ARRAY) {
        bool f;
        return ll_gguf_get_i64(g, key, out, &f, err);
    }
    if (n_layer <= 0)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' is an array; a single integer is expected", key);
    if (kv->v.arr.n != (uint64_t)n_layer)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' is an array of %llu values; expected one "
                       "integer or %lld (block_count)", key, (unsigned long long)kv->v.arr.n,
                       (long long)n_layer);
    int64_t first = 0;
    for (uint64_t i = 0; i < kv->v.arr.n; i++) {
        int64_t v;
        if (!arr_int_at(kv, i, &v))
            return ll_fail(err, LL_ERR_FORMAT, "key '%s' is an array of %s; integers expected",
                           key, ll_gguf_type_name(kv->v.arr.type));
        if (i == 0) first = v;
        else if (v != first)
            return ll_fail(err, LL_ERR_UNSUPPORTED, "key '%s' has per-layer values (%lld at layer "
                           "0, %lld at layer %llu); only equal layers are supported", key,
                           (long long)first, (long long)v, (unsigned long long)i);
    }
    *out = first;
    return LL_OK;
}

static ll_status hp_required(const ll_gguf *g, const char *key, int64_t n_layer, int64_t lo,
                             int64_t hi, int64_t *out, ll_error *err) {
    bool found;
    ll_status st = hp_int(g, key, n_layer, 0, out, &found, err);
    if (st != LL_OK) return st;
    if (!found) return ll_fail(err, LL_ERR_FORMAT, "missing required key '%s'", key);
    if (*out < lo || *out > hi)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' is %lld, expected %lld..%lld", key,
                       (long long)*out, (long long)lo, (long long)hi);
    return LL_OK;
}

static ll_status load_hparams(const ll_gguf *g, ll_hparams *hp, ll_error *err) {
    ll_status st;
    bool found;
    int64_t v;
    /* Caps keep every product below in int64 and scratch sizes sane; the tensors, whose bytes
     * are in the file, must then match these numbers exactly. */
    if ((st = hp_required(g, "llama.block_count", 0, 1, LL_MODEL_MAX_LAYERS, &hp->n_layer, err))) return st;
    const int64_t L = hp->n_layer;
    if ((st = hp_required(g, "llama.context_length", L, 1, INT32_MAX, &hp->n_ctx_train, err))) return st;
    if ((st = hp_required(g, "llama.embedding_length", L, 1, 1 << 20, &hp->n_embd, err))) return st;
    if ((st = hp_required(g, "llama.feed_forward_length", L, 1, 1 << 22, &hp->n_ff, err))) return st;
    if ((st = hp_required(g, "llama.attention.head_count", L, 1, 1 << 14, &hp->n_head, err))) return st;

    if ((st = hp_int(g, "llama.attention.head_count_kv", L, hp->n_head, &hp->n_head_kv, &found, err))) return st;
    if (hp->n_head_kv <= 0 || hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0)
        return ll_fail(err, LL_ERR_FORMAT, "head_count_kv %lld must divide head_count %lld",
                       (long long)hp->n_head_kv, (long long)hp->n_head);
    if (hp->n_head / hp->n_head_kv > LL_ATT_COLS_MAX)
        return ll_fail(err, LL_ERR_FORMAT, "head_count %lld / head_count_kv %lld: more than %d query heads "
                       "per KV head is not supported", (long long)hp->n_head, (long long)hp->n_head_kv,
                       LL_ATT_COLS_MAX);

    if ((st = hp_int(g, "llama.attention.key_length", L, 0, &hp->head_dim_k, &found, err))) return st;
    if (!found) {
        if (hp->n_embd % hp->n_head != 0)
            return ll_fail(err, LL_ERR_FORMAT, "embedding_length %lld not divisible by head_count %lld",
                           (long long)hp->n_embd, (long long)hp->n_head);
        hp->head_dim_k = hp->n_embd / hp->n_head;
    }
    if ((st = hp_int(g, "llama.attention.value_length", L, 0, &hp->head_dim_v, &found, err))) return st;
    if (!found) {
        if (hp->n_embd % hp->n_head != 0)
            return ll_fail(err, LL_ERR_FORMAT, "embedding_length %lld not divisible by head_count %lld",
                           (long long)hp->n_embd, (long long)hp->n_head);
        hp->head_dim_v = hp->n_embd / hp->n_head;
    }
    if (hp->head_dim_k < 1 || hp->head_dim_k > 4096 || hp->head_dim_v < 1 || hp->head_dim_v > 4096)
        return ll_fail(err, LL_ERR_FORMAT, "head dims %lld (key) / %lld (value) out of range 1..4096",
                       (long long)hp->head_dim_k, (long long)hp->head_dim_v);

    if ((st = hp_int(g, "llama.rope.dimension_count", L, hp->head_dim_k, &hp->n_rot, &found, err))) return st;
    if (hp->n_rot <= 0 || hp->n_rot % 2 != 0 || hp->n_rot > hp->head_dim_k)
        return ll_fail(err, LL_ERR_FORMAT, "rope.dimension_count %lld must be even and at most the "
                       "head dim %lld", (long long)hp->n_rot, (long long)hp->head_dim_k);
    if (hp->n_rot != hp->head_dim_k)   /* llama.cpp refuses these files for `llama` too */
        return ll_fail(err, LL_ERR_FORMAT, "rope.dimension_count %lld differs from key_length %lld",
                       (long long)hp->n_rot, (long long)hp->head_dim_k);

    hp->rms_eps = 1e-5f;               /* G47: documented default */
    if ((st = ll_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps, &found, err))) return st;
    if (!(hp->rms_eps >= 0.0f && hp->rms_eps < 1.0f))
        return ll_fail(err, LL_ERR_FORMAT, "layer_norm_rms_epsilon %g out of range [0, 1)", hp->rms_eps);
    hp->rope_base = 10000.0f;
    if ((st = ll_gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_base, &found, err))) return st;
    if (!(hp->rope_base > 0.0f && isfinite(hp->rope_base)))
        return ll_fail(err, LL_ERR_FORMAT, "rope.freq_base %g must be positive", hp->rope_base);

    /* RoPE scaling: none, or linear (positions divided by the factor). YaRN and LongRoPE
     * are not Llama 3.x features (those use rope_freqs.weight) and are refused. */
    ll_str stype = { 0 };
    if ((st = ll_gguf_get_str(g, "llama.rope.scaling.type", &stype, &found, err))) return st;
    float factor = 1.0f;
    bool has_factor;
    if ((st = ll_gguf_get_f32(g, "llama.rope.scaling.factor", &factor, &has_factor, err))) return st;
    if (found && !ll_str_eq_c(stype, "none") && !ll_str_eq_c(stype, "linear"))
        return ll_fail(err, LL_ERR_UNSUPPORTED, "rope.scaling.type '%.*s' is not supported "
                       "(supported: none, linear)", (int)(stype.n > 32 ? 32 : stype.n), stype.p);
    hp->rope_freq_scale = 1.0f;
    if (has_factor && !(found && ll_str_eq_c(stype, "none")) && factor != 0.0f && factor != 1.0f) {
        if (!(factor > 0.0f && isfinite(factor)))
            return ll_fail(err, LL_ERR_FORMAT, "rope.scaling.factor %g must be positive", factor);
        hp->rope_freq_scale = 1.0f / factor;
    }

    v = 0;
    if ((st = ll_gguf_get_i64(g, "llama.expert_count", &v, &found, err))) return st;
    if (found && v > 0)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "llama.expert_count %lld: mixture-of-experts "
                       "models are not supported", (long long)v);
    return LL_OK;
}

/* ---- tensors -------------------------------------------------------------------------- */

static void shape_str(char *buf, size_t cap, int n_dims, const int64_t *ne) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? ", %lld" : "%lld", (long long)ne[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static void supported_list(char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (uint32_t t = 0; t < LL_TYPE_COUNT && o < cap; t++) {
        const ll_type_traits *tt = ll_type_traits_of(t);
        if (tt && tt->supported)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", tt->name);
    }
}

static ll_status check_type(const ll_gguf_tensor *t, ll_error *err) {
    const ll_type_traits *tt = ll_type_traits_of(t->type);
    if (tt && tt->supported && ll_kernels_get()->dot[t->type]) return LL_OK;
    char list[160];
    supported_list(list, sizeof list);
    return ll_fail(err, LL_ERR_UNSUPPORTED, "tensor '%.*s' has type %s, which is not supported "
                   "(supported: %s)", LL_STR(t->name), tt ? tt->name : "?", list);
}

/* Find a tensor with exactly the shape (ne0[, ne1]) (G53, G54). Optional tensors that are
 * absent give *out = NULL. */
static ll_status find_tensor(const ll_gguf *g, const char *name, int n_dims, int64_t ne0,
                             int64_t ne1, bool required, const ll_gguf_tensor **out, ll_error *err) {
    const ll_gguf_tensor *t = ll_gguf_find_tensor(g, name);
    *out = t;
    if (!t) return required ? ll_fail(err, LL_ERR_FORMAT, "missing tensor '%s'", name) : LL_OK;
    int64_t want[4] = { ne0, n_dims > 1 ? ne1 : 1, 1, 1 };
    bool ok = true;
    for (int d = 0; d < 4; d++) ok = ok && t->ne[d] == want[d];
    if (!ok) {
        char have_s[96], want_s[64];
        shape_str(have_s, sizeof have_s, (int)t->n_dims, t->ne);
        shape_str(want_s, sizeof want_s, n_dims, want);
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' has shape %s, expected %s", name, have_s, want_s);
    }
    return check_type(t, err);
}

static ll_status bind_weight(const ll_gguf *g, const char *name, int64_t n_in, int64_t n_out,
                             ll_weight *w, ll_error *err) {
    const ll_gguf_tensor *t;
    ll_status st = find_tensor(g, name, 2, n_in, n_out, true, &t, err);
    if (st != LL_OK) return st;
    const ll_type_traits *tt = ll_type_traits_of(t->type);
    const ll_type_traits *dt = ll_type_traits_of(tt->dot_type);
    if (!dt || n_in % dt->blck != 0 || !ll_kernels_get()->quantize_act[tt->dot_type])
        return ll_fail(err, LL_ERR_UNSUPPORTED, "tensor '%s' (%s): rows of %lld cannot be "
                       "multiplied", name, tt->name, (long long)n_in);
    *w = (ll_weight){ t, t->type, tt->dot_type, n_in, n_out, t->data };
    return LL_OK;
}

/* A norm gain: (d), F32/F16/BF16, converted to F32 into dst and scanned for NaN/Inf (G70). */
static ll_status bind_norm(const ll_gguf *g, const char *name, int64_t d, float *dst, ll_error *err) {
    const ll_gguf_tensor *t;
    ll_status st = find_tensor(g, name, 1, d, 1, true, &t, err);
    if (st != LL_OK) return st;
    if (t->type != LL_TYPE_F32 && t->type != LL_TYPE_F16 && t->type != LL_TYPE_BF16)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "norm tensor '%s' has type %s (supported: F32, "
                       "F16, BF16)", name, ll_type_traits_of(t->type)->name);
    ll_dequantize_row(t->type, t->data, dst, d);
    for (int64_t i = 0; i < d; i++)
        if (!isfinite(dst[i]))
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' has %s at index %lld", name,
                           isnan(dst[i]) ? "NaN" : "Inf", (long long)i);
    return LL_OK;
}

/* G55: tensors of layers past block_count are an error; unknown names are logged, ignored. */
static ll_status check_tensor_names(const ll_gguf *g, int64_t n_layer, ll_error *err) {
    static const char *const known[] = {
        "token_embd.weight", "output_norm.weight", "output.weight", "rope_freqs.weight",
    };
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        ll_str n = t->name;
        if (n.n > 4 && memcmp(n.p, "blk.", 4) == 0) {
            size_t j = 4;
            uint64_t layer = 0;
            while (j < n.n && n.p[j] >= '0' && n.p[j] <= '9' && layer < (1u << 30))
                layer = layer * 10 + (uint64_t)(n.p[j++] - '0');
            if (j > 4 && j < n.n && n.p[j] == '.') {
                if (layer >= (uint64_t)n_layer)
                    return ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s' is for layer %llu, but "
                                   "block_count is %lld", LL_STR(n), (unsigned long long)layer,
                                   (long long)n_layer);
                continue;   /* unknown per-layer names (attn_rot_embd) are ignored below */
            }
        }
        bool is_known = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known = is_known || ll_str_eq_c(n, known[k]);
        if (!is_known) LL_DEBUG("model: ignoring tensor '%.*s'", LL_STR(n));
    }
    return LL_OK;
}

/* Full scan (ll_model_params.check_tensors): every element of every tensor is finite. */
static ll_status check_all_tensors(const ll_gguf *g, ll_error *err) {
    float *row = NULL;
    size_t row_cap = 0;
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        const ll_type_traits *tt = ll_type_traits_of(t->type);
        if (!tt || !tt->supported) continue;
        int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
        uint64_t rb;
        if (!ll_type_row_bytes(t->type, ne0, &rb)) continue;
        if ((size_t)ne0 > row_cap) {
            ll_free(row);
            row_cap = (size_t)ne0;
            row = ll_malloc_array(row_cap, sizeof *row);
            if (!row) return ll_fail(err, LL_ERR_NOMEM, "out of memory checking tensors");
        }
        for (int64_t r = 0; r < rows; r++) {
            ll_dequantize_row(t->type, (const uint8_t *)t->data + (uint64_t)r * rb, row, ne0);
            for (int64_t e = 0; e < ne0; e++)
                if (!isfinite(row[e])) {
                    ll_status st = ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s' has %s at index %lld",
                                           LL_STR(t->name), isnan(row[e]) ? "NaN" : "Inf",
                                           (long long)(r * ne0 + e));
                    ll_free(row);
                    return st;
                }
        }
    }
    ll_free(row);
    return LL_OK;
}

static ll_status load_tensors(ll_model *m, ll_error *err) {
    const ll_gguf *g = m->gguf;
    const ll_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, L = hp->n_layer, V = hp->n_vocab;
    const int64_t q_dim = hp->n_head * hp->head_dim_k;
    const int64_t k_dim = hp->n_head_kv * hp->head_dim_k;
    const int64_t v_dim = hp->n_head_kv * hp->head_dim_v;
    const int64_t o_dim = hp->n_head * hp->head_dim_v;
    ll_status st;
    char name[96];

    if ((st = check_tensor_names(g, L, err))) return st;

    /* token_embd: any supported type; only rows are dequantized (C.1: no activation rounding). */
    const ll_gguf_tensor *te = ll_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return ll_fail(err, LL_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    if (te->n_dims == 2 && te->ne[0] == d && te->ne[1] != V)   /* G56 */
        return ll_fail(err, LL_ERR_FORMAT, "vocab has %lld tokens but token_embd.weight has %lld rows",
                       (long long)V, (long long)te->ne[1]);
    if ((st = bind_weight(g, "token_embd.weight", d, V, &m->tok_embd, err))) return st;

    size_t n_norms = (size_t)(2 * L + 1);
    m->norms = ll_malloc_array(n_norms * (size_t)d + (size_t)(hp->n_rot / 2), sizeof(float));
    if (!m->norms) return ll_fail(err, LL_ERR_NOMEM, "out of memory for %zu norm vectors", n_norms);
    m->layers = ll_calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return ll_fail(err, LL_ERR_NOMEM, "out of memory for %lld layers", (long long)L);

    float *norm = m->norms;
    if ((st = bind_norm(g, "output_norm.weight", d, norm, err))) return st;
    m->output_norm = norm;
    norm += d;

    const ll_gguf_tensor *out = ll_gguf_find_tensor(g, "output.weight");
    if (out) {
        if ((st = bind_weight(g, "output.weight", d, V, &m->output, err))) return st;
    } else {
        m->output = m->tok_embd;      /* G54: tied embeddings (Llama 3.2 1B/3B, SmolLM2) */
        m->tied_output = true;
    }

    const ll_gguf_tensor *rf;
    if ((st = find_tensor(g, "rope_freqs.weight", 1, hp->n_rot / 2, 1, false, &rf, err))) return st;
    if (rf) {
        if (rf->type != LL_TYPE_F32)
            return ll_fail(err, LL_ERR_FORMAT, "tensor 'rope_freqs.weight' has type %s, expected F32",
                           ll_type_traits_of(rf->type)->name);
        /* Copied after the norms: general.alignment may be 1 (G26 loads it), so the data can
         * sit at any byte and cannot be read through a float pointer. */
        float *freqs = m->norms + n_norms * (size_t)d;
        memcpy(freqs, rf->data, (size_t)(hp->n_rot / 2) * sizeof(float));
        m->rope_freqs = freqs;
        for (int64_t i = 0; i < hp->n_rot / 2; i++)
            if (!(m->rope_freqs[i] > 0.0f) || !isfinite(m->rope_freqs[i]))
                return ll_fail(err, LL_ERR_FORMAT, "tensor 'rope_freqs.weight' has %g at index %lld",
                               m->rope_freqs[i], (long long)i);
    }

    for (int64_t l = 0; l < L; l++) {
        ll_layer *ly = &m->layers[l];
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)l), name)
        if ((st = bind_norm(g, BLK("attn_norm.weight"), d, norm, err))) return st;
        ly->attn_norm = norm;
        norm += d;
        if ((st = bind_weight(g, BLK("attn_q.weight"), d, q_dim, &ly->wq, err))) return st;
        if ((st = bind_weight(g, BLK("attn_k.weight"), d, k_dim, &ly->wk, err))) return st;
        if ((st = bind_weight(g, BLK("attn_v.weight"), d, v_dim, &ly->wv, err))) return st;
        if ((st = bind_weight(g, BLK("attn_output.weight"), o_dim, d, &ly->wo, err))) return st;
        if ((st = bind_norm(g, BLK("ffn_norm.weight"), d, norm, err))) return st;
        ly->ffn_norm = norm;
        norm += d;
        if ((st = bind_weight(g, BLK("ffn_gate.weight"), d, hp->n_ff, &ly->w_gate, err))) return st;
        if ((st = bind_weight(g, BLK("ffn_up.weight"), d, hp->n_ff, &ly->w_up, err))) return st;
        if ((st = bind_weight(g, BLK("ffn_down.weight"), hp->n_ff, d, &ly->w_down, err))) return st;
#undef BLK
    }
    return LL_OK;
}

/* general.file_type, or a guess from the most common type of the 2-D tensors when absent. */
static uint32_t file_type_of(const ll_gguf *g) {
    uint32_t ft;
    bool found = false;
    ll_error ignore = { 0 };
    if (ll_gguf_get_u32(g, "general.file_type", &ft, &found, &ignore) == LL_OK && found) return ft;
    uint64_t count[LL_TYPE_COUNT] = { 0 };
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        if (t->n_dims == 2 && t->type < LL_TYPE_COUNT) count[t->type]++;
    }
    uint32_t best = 0;
    for (uint32_t t = 1; t < LL_TYPE_COUNT; t++) if (count[t] > count[best]) best = t;
    /* ggml type id -> llama ftype for the "pure" files */
    switch (best) {
    case LL_TYPE_F32: return 0;  case LL_TYPE_F16: return 1;   case LL_TYPE_Q4_0: return 2;
    case LL_TYPE_Q4_1: return 3; case LL_TYPE_Q8_0: return 7;  case LL_TYPE_Q5_0: return 8;
    case LL_TYPE_Q5_1: return 9; case LL_TYPE_Q2_K: return 10; case LL_TYPE_Q3_K: return 12;
    case LL_TYPE_Q4_K: return 15; case LL_TYPE_Q5_K: return 17; case LL_TYPE_Q6_K: return 18;
    case LL_TYPE_BF16: return 32;
    default: return UINT32_MAX;
    }
}

/* ---- public ---------------------------------------------------------------------------- */

ll_model *ll_model_ref(ll_model *m) {
    if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* Drops one reference; the last one frees. acq_rel: every use of the model by the thread
 * dropping a reference happens before the free by the thread dropping the last one. */
void ll_model_free(ll_model *m) {
    if (!m) return;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) > 1) return;
    ll_vocab_free(m->vocab);
    ll_free(m->layers);
    ll_free(m->norms);
    ll_gguf_close(m->gguf);
    ll_free(m);
}

ll_status ll_model_from_gguf(ll_model **out, ll_gguf *g, const ll_model_params *p, ll_error *err) {
    *out = NULL;
    ll_status st;
    ll_model *m = ll_calloc(1, sizeof *m);
    if (!m) {
        ll_gguf_close(g);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory for the model");
    }
    m->gguf = g;
    atomic_init(&m->refs, 1);
    m->pooling_type = -1;

    uint32_t n_split = 0;
    bool found = false;
    if ((st = ll_gguf_get_u32(g, "split.count", &n_split, &found, err))) goto fail;
    if (found && n_split > 1) {
        st = ll_fail(err, LL_ERR_UNSUPPORTED, "split GGUF files (split.count %u) are not supported",
                     n_split);
        goto fail;
    }

    ll_str arch = { 0 };
    if ((st = ll_gguf_get_str(g, "general.architecture", &arch, &found, err))) goto fail;
    if (!found) {                                                        /* G45 */
        st = ll_fail(err, LL_ERR_FORMAT, "missing key 'general.architecture'");
        goto fail;
    }
    if (!ll_str_eq_c(arch, "llama")) {                                   /* G46 */
        st = ll_fail(err, LL_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (supported: llama)",
                     (int)(arch.n > 64 ? 64 : arch.n), arch.p);
        goto fail;
    }
    if ((st = load_hparams(g, &m->hp, err))) goto fail;

    if ((st = ll_vocab_from_gguf(&m->vocab, g, err))) goto fail;
    m->hp.n_vocab = ll_vocab_n_tokens(m->vocab);
    int64_t vocab_size;
    if ((st = ll_gguf_get_i64(g, "llama.vocab_size", &vocab_size, &found, err))) goto fail;
    if (found && vocab_size != m->hp.n_vocab) {                          /* G56 */
        st = ll_fail(err, LL_ERR_FORMAT, "llama.vocab_size is %lld but the vocab has %lld tokens",
                     (long long)vocab_size, (long long)m->hp.n_vocab);
        goto fail;
    }

    uint32_t pooling;
    if ((st = ll_gguf_get_u32(g, "llama.pooling_type", &pooling, &found, err))) goto fail;
    if (found && pooling <= 3) m->pooling_type = (int)pooling;   /* none, mean, cls, last */

    if ((st = load_tensors(m, err))) goto fail;
    if (p && p->check_tensors && (st = check_all_tensors(g, err))) goto fail;

    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        m->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        m->size_bytes += t->n_bytes;
    }
    m->file_type = file_type_of(g);
    *out = m;
    return LL_OK;
fail:
    ll_model_free(m);
    return st;
}

ll_status ll_model_load(ll_model **out, const char *path, const ll_model_params *p, ll_error *err) {
    *out = NULL;
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_open(&g, path, err);
    if (st != LL_OK) return st;
    return ll_model_from_gguf(out, g, p, err);
}

const ll_vocab *ll_model_vocab(const ll_model *m) { return m->vocab; }
int32_t ll_model_n_vocab(const ll_model *m) { return (int32_t)m->hp.n_vocab; }
int32_t ll_model_n_embd(const ll_model *m) { return (int32_t)m->hp.n_embd; }
int32_t ll_model_n_ctx_train(const ll_model *m) { return (int32_t)m->hp.n_ctx_train; }
uint64_t ll_model_size_bytes(const ll_model *m) { return m->size_bytes; }
uint64_t ll_model_n_params(const ll_model *m) { return m->n_params; }

ll_str ll_model_meta_str(const ll_model *m, const char *key) {
    const ll_gguf_kv *kv = ll_gguf_find(m->gguf, key);
    if (!kv || kv->type != LL_GGUF_TYPE_STRING) return (ll_str){ NULL, 0 };
    return kv->v.s;
}

/* llama.cpp's names for general.file_type (llama_model_ftype_name). */
static const char *ftype_name(uint32_t ft) {
    switch (ft) {
    case 0: return "all F32";       case 1: return "F16";           case 2: return "Q4_0";
    case 3: return "Q4_1";          case 7: return "Q8_0";          case 8: return "Q5_0";
    case 9: return "Q5_1";          case 10: return "Q2_K - Medium"; case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium"; case 13: return "Q3_K - Large"; case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium"; case 16: return "Q5_K - Small"; case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";         case 21: return "Q2_K - Small"; case 32: return "BF16";
    default: return "unknown type";
    }
}

void ll_model_desc(const ll_model *m, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    char size[32];
    double n = (double)m->n_params;
    if (n >= 1e9) snprintf(size, sizeof size, "%.0fB", n / 1e9);
    else if (n >= 1e6) snprintf(size, sizeof size, "%.0fM", n / 1e6);
    else snprintf(size, sizeof size, "%.0fK", n / 1e3);
    snprintf(buf, cap, "llama %s %s", size, ftype_name(m->file_type));
}
