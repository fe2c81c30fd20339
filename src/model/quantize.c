/* model/quantize: the per-tensor type policy of llama-quantize and the file rewrite
 * (quantize.h). The policy is written from llama.cpp's src/llama-quant.cpp at 0c1e570
 * (tensor_allows_quantization, llama_tensor_get_type_impl, tensor_type_fallback) for the file
 * types named in the table below; the i-quant branches are left out because we do not write
 * those types. */
#include "model/quantize.h"
#include "model/imatrix.h"
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "quant/quantize.h"
#include "threadpool/pool.h"

#include <errno.h>
#include <regex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- file types --------------------------------------------------------------------------- */

enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_Q2_K_S = 21, FT_BF16 = 32,
};

static const ll_ftype_info ftypes[] = {
    { "F32",    FT_F32,    LL_TYPE_F32,  "32-bit float (copy)" },
    { "F16",    FT_F16,    LL_TYPE_F16,  "16-bit float" },
    { "BF16",   FT_BF16,   LL_TYPE_BF16, "bfloat16" },
    { "Q8_0",   FT_Q8_0,   LL_TYPE_Q8_0, "8.5 bits per weight" },
    { "Q4_0",   FT_Q4_0,   LL_TYPE_Q4_0, "4.5 bpw, symmetric" },
    { "Q4_1",   FT_Q4_1,   LL_TYPE_Q4_1, "5.0 bpw, with min" },
    { "Q5_0",   FT_Q5_0,   LL_TYPE_Q5_0, "5.5 bpw, symmetric" },
    { "Q5_1",   FT_Q5_1,   LL_TYPE_Q5_1, "6.0 bpw, with min" },
    { "Q2_K",   FT_Q2_K,   LL_TYPE_Q2_K, "Q2_K mix (attn_v, ffn_down, attn_output Q3_K)" },
    { "Q2_K_S", FT_Q2_K_S, LL_TYPE_Q2_K, "Q2_K, needs --imatrix" },
    { "Q3_K_S", FT_Q3_K_S, LL_TYPE_Q3_K, "Q3_K" },
    { "Q3_K_M", FT_Q3_K_M, LL_TYPE_Q3_K, "Q3_K mix" },
    { "Q3_K_L", FT_Q3_K_L, LL_TYPE_Q3_K, "Q3_K mix, more Q5_K" },
    { "Q4_K_S", FT_Q4_K_S, LL_TYPE_Q4_K, "Q4_K, a few Q5_K" },
    { "Q4_K_M", FT_Q4_K_M, LL_TYPE_Q4_K, "Q4_K mix" },
    { "Q5_K_S", FT_Q5_K_S, LL_TYPE_Q5_K, "Q5_K" },
    { "Q5_K_M", FT_Q5_K_M, LL_TYPE_Q5_K, "Q5_K mix" },
    { "Q6_K",   FT_Q6_K,   LL_TYPE_Q6_K, "6.56 bpw" },
};

static const struct { const char *alias, *name; } ftype_aliases[] = {
    { "Q3_K", "Q3_K_M" }, { "Q4_K", "Q4_K_M" }, { "Q5_K", "Q5_K_M" },
};

const ll_ftype_info *ll_ftype_list(size_t *n) {
    *n = sizeof ftypes / sizeof ftypes[0];
    return ftypes;
}

const ll_ftype_info *ll_ftype_find(const char *name) {
    if (!name || !*name) return NULL;
    for (size_t i = 0; i < sizeof ftype_aliases / sizeof ftype_aliases[0]; i++)
        if (!strcasecmp(name, ftype_aliases[i].alias)) name = ftype_aliases[i].name;
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (!strcasecmp(name, ftypes[i].name)) return &ftypes[i];
    char *end;
    errno = 0;
    long id = strtol(name, &end, 10);
    if (errno || *end || end == name) return NULL;
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if ((long)ftypes[i].ftype == id) return &ftypes[i];
    return NULL;
}

void ll_quantize_params_default(ll_quantize_params *p) {
    memset(p, 0, sizeof *p);
    p->ftype = FT_Q8_0;
    p->output_type = -1;
    p->token_embd_type = -1;
}

static bool type_is_quantized(uint32_t t) {
    return t != LL_TYPE_F32 && t != LL_TYPE_F16 && t != LL_TYPE_BF16 && t != 24 && t != 25 &&
           t != 26 && t != 27 && t != 28;    /* I8 I16 I32 I64 F64 are plain too */
}

/* ---- tensor categories ------------------------------------------------------------------- */

typedef enum {
    CAT_TOKEN_EMBD, CAT_ATTN_Q, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_QKV, CAT_ATTN_KV_B,
    CAT_ATTN_OUTPUT, CAT_FFN_UP, CAT_FFN_GATE, CAT_FFN_DOWN, CAT_OUTPUT, CAT_OTHER
} tensor_cat;

/* Substring tests in llama.cpp's order: "blk.0.ffn_up_exps.weight" is FFN_UP. */
static tensor_cat category_of(const char *name) {
    if (!strcmp(name, "output.weight")) return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight")) return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(name, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(name, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up")) return CAT_FFN_UP;
    if (strstr(name, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

static bool cat_is_attn_v(tensor_cat c) { return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B; }

/* ggml_n_dims: trailing dimensions of 1 do not count. */
static int n_dims_of(const int64_t ne[4]) {
    for (int i = 3; i >= 1; i--)
        if (ne[i] > 1) return i + 1;
    return 1;
}

/* tensor_allows_quantization (the architecture-independent part of its list). */
static bool allows_quantization(const ll_quantize_params *p, const char *name, const int64_t ne[4]) {
    if (n_dims_of(ne) < 2) return false;
    size_t n = strlen(name);
    /* llama.cpp tests name.rfind("weight") == size - 6; for a 5-character name both sides
     * are npos, so such names pass. Kept for identical choices. */
    bool q = (n >= 6 && !strcmp(name + n - 6, "weight")) || n == 5;
    static const char *const never[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    for (size_t i = 0; q && i < sizeof never / sizeof never[0]; i++)
        if (strstr(name, never[i])) q = false;
    if (p->leave_output && !strcmp(name, "output.weight")) q = false;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) q = false;
    return q;
}

/* ---- type policy --------------------------------------------------------------------------- */

typedef struct {
    const ll_quantize_params *p;
    uint32_t ftype, base_type;
    bool     falcon, is_70b;
    uint32_t n_gqa, n_expert;
    int      n_attention_wv, i_attention_wv;
    int      n_layer, i_ffn_down, i_ffn_gate, i_ffn_up;
    bool     tied;              /* no output.weight: token_embd is also the output */
    bool     has_imatrix;
    regex_t *tt_re;             /* compiled p->tt_patterns */
} qstate;

static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* Layer of an FFN tensor: the running count for dense models, the name's blk.N for MoE
 * (whose expert tensors need not come one per layer in order). */
static ll_status layer_of(const qstate *qs, int counter, const char *name, int *il, ll_error *err) {
    *il = counter;
    if (qs->n_expert > 1) {
        if (sscanf(name, "blk.%d.", il) != 1)
            return ll_fail(err, LL_ERR_FORMAT, "cannot find the layer of tensor '%s'", name);
        if (*il < 0 || *il >= qs->n_layer)
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%s': layer %d outside [0, %d)", name, *il, qs->n_layer);
    }
    return LL_OK;
}

/* llama_tensor_get_type_impl for the K and legacy file types. */
static ll_status mix_type(qstate *qs, uint32_t t, const char *name, int64_t nx, tensor_cat cat,
                          uint32_t *out, ll_error *err) {
    const uint32_t ft = qs->ftype;
    if (cat == CAT_OUTPUT || (qs->tied && cat == CAT_TOKEN_EMBD)) {
        if (qs->p->output_type >= 0) t = (uint32_t)qs->p->output_type;
        else if (qs->falcon || nx % ll_type_traits_of(t)->blck != 0) t = LL_TYPE_Q8_0;
        else if (t != LL_TYPE_Q8_0) t = LL_TYPE_Q6_K;
    } else if (cat == CAT_TOKEN_EMBD) {
        if (qs->p->token_embd_type >= 0) t = (uint32_t)qs->p->token_embd_type;
    } else if (cat_is_attn_v(cat)) {
        if (ft == FT_Q2_K) t = qs->n_gqa >= 4 ? LL_TYPE_Q4_K : LL_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S && qs->n_gqa >= 4) t = LL_TYPE_Q4_K;
        else if (ft == FT_Q3_K_M) t = qs->i_attention_wv < 2 ? LL_TYPE_Q5_K : LL_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = LL_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(qs->i_attention_wv, qs->n_attention_wv))
            t = LL_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && qs->i_attention_wv < 4) t = LL_TYPE_Q5_K;
        /* Llama 2 70B: 8 query heads share each V, so V is 8x smaller than Q: more bits */
        if (qs->is_70b && (t == LL_TYPE_Q3_K || t == LL_TYPE_Q4_K)) t = LL_TYPE_Q5_K;
        if (qs->n_expert == 8) t = LL_TYPE_Q8_0;
        qs->i_attention_wv++;
    } else if (cat == CAT_ATTN_K) {
        if (qs->n_expert == 8) t = LL_TYPE_Q8_0;
    } else if (cat == CAT_FFN_DOWN) {
        int il, n = qs->n_layer;
        ll_status st = layer_of(qs, qs->i_ffn_down, name, &il, err);
        if (st != LL_OK) return st;
        if (ft == FT_Q2_K) t = LL_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S) { if (il < n / 8) t = LL_TYPE_Q4_K; }
        else if (ft == FT_Q3_K_M)
            t = il < n / 16 ? LL_TYPE_Q5_K
              : !qs->falcon || use_more_bits(il, n) ? LL_TYPE_Q4_K : LL_TYPE_Q3_K;
        else if (ft == FT_Q3_K_L) t = qs->falcon ? LL_TYPE_Q4_K : LL_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (qs->falcon)
                t = il < n / 16 ? LL_TYPE_Q6_K : use_more_bits(il, n) ? LL_TYPE_Q5_K : LL_TYPE_Q4_K;
            else if (use_more_bits(il, n)) t = LL_TYPE_Q6_K;
        }
        else if (ft == FT_Q5_K_M && use_more_bits(il, n)) t = LL_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && !qs->falcon && il < n / 8) t = LL_TYPE_Q5_K;
        /* with an importance matrix, Q4_0/Q5_0 take the _1 type in the first eighth of the
         * layers (llama.cpp saw those ffn_down go wrong); without one the choice is unchanged */
        else if ((ft == FT_Q4_0 || ft == FT_Q5_0) && qs->has_imatrix && il < n / 8)
            t = ft == FT_Q4_0 ? LL_TYPE_Q4_1 : LL_TYPE_Q5_1;
        qs->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (!qs->falcon) {
            if (qs->n_expert == 8) {
                if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_Q4_K_S || ft == FT_Q4_K_M)
                    t = LL_TYPE_Q5_K;
            } else {
                if (ft == FT_Q2_K) t = LL_TYPE_Q3_K;
                else if (ft == FT_Q3_K_M) t = LL_TYPE_Q4_K;
                else if (ft == FT_Q3_K_L) t = LL_TYPE_Q5_K;
            }
        } else if (ft == FT_Q3_K_L) {
            t = LL_TYPE_Q4_K;
        }
    } else if (cat == CAT_ATTN_QKV) {
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L) t = LL_TYPE_Q4_K;
        else if (ft == FT_Q4_K_M) t = LL_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M) t = LL_TYPE_Q6_K;
    } else if (cat == CAT_FFN_GATE || cat == CAT_FFN_UP) {
        int il;   /* only the i-quant mixes change these; the layer check still applies */
        ll_status st = layer_of(qs, cat == CAT_FFN_GATE ? qs->i_ffn_gate : qs->i_ffn_up, name, &il, err);
        if (st != LL_OK) return st;
        if (cat == CAT_FFN_GATE) qs->i_ffn_gate++; else qs->i_ffn_up++;
    }
    *out = t;
    return LL_OK;
}

/* tensor_type_fallback: a row length the block does not divide gets a 32-element type with
 * about as many bits, or F16 when even 32 does not divide it. */
static uint32_t fallback_type(uint32_t t, int64_t ncols, bool *fell) {
    *fell = false;
    int64_t blck = ll_type_traits_of(t)->blck;
    if (ncols % blck == 0) return t;
    *fell = true;
    uint32_t r;
    switch (t) {
    case LL_TYPE_Q2_K: case LL_TYPE_Q3_K: r = LL_TYPE_Q4_0; break;
    case LL_TYPE_Q4_K: r = LL_TYPE_Q5_0; break;
    case LL_TYPE_Q5_K: r = LL_TYPE_Q5_1; break;
    case LL_TYPE_Q6_K: r = LL_TYPE_Q8_0; break;
    default: r = t; break;     /* already a 32-element type */
    }
    if (ncols % ll_type_traits_of(r)->blck != 0) r = LL_TYPE_F16;
    return r;
}

/* llama_tensor_get_type: the type tensor `name` is written in. */
static ll_status target_type(qstate *qs, const char *name, const ll_gguf_tensor *t, tensor_cat cat,
                             uint32_t *out, bool *fell, ll_error *err) {
    const ll_quantize_params *p = qs->p;
    *fell = false;
    *out = t->type;
    if (!allows_quantization(p, name, t->ne)) return LL_OK;
    if (p->token_embd_type >= 0 && cat == CAT_TOKEN_EMBD) {
        /* per_layer_token_embd follows --token-embedding-type unless a --tensor-type names it */
        bool named = false;
        if (!strcmp(name, "per_layer_token_embd.weight"))
            for (size_t k = 0; k < p->n_tt && !named; k++) named = !regexec(&qs->tt_re[k], name, 0, NULL, 0);
        if (!named) { *out = (uint32_t)p->token_embd_type; return LL_OK; }
    }
    if (p->output_type >= 0 && cat == CAT_OUTPUT) { *out = (uint32_t)p->output_type; return LL_OK; }
    uint32_t nt = qs->base_type;
    if (type_is_quantized(nt)) {
        bool manual = false;
        for (size_t k = 0; k < p->n_tt && !manual; k++)
            if (!regexec(&qs->tt_re[k], name, 0, NULL, 0)) {
                nt = (uint32_t)p->tt_types[k];
                manual = true;
            }
        if (!manual && !p->pure) {
            ll_status st = mix_type(qs, nt, name, t->ne[0], cat, &nt, err);
            if (st != LL_OK) return st;
        }
        nt = fallback_type(nt, t->ne[0], fell);
    }
    *out = nt;
    return LL_OK;
}

/* ---- key overrides ------------------------------------------------------------------------- */

bool ll_kv_override_parse(const char *arg, ll_kv_override *o) {
    memset(o, 0, sizeof *o);
    const char *eq = strchr(arg, '=');
    if (!eq || eq - arg >= (ptrdiff_t)sizeof o->key) return false;
    memcpy(o->key, arg, (size_t)(eq - arg));
    const char *v = eq + 1;
    if (!strncmp(v, "int:", 4)) { o->tag = LL_KVO_INT; o->i = atol(v + 4); }
    else if (!strncmp(v, "float:", 6)) { o->tag = LL_KVO_FLOAT; o->f = atof(v + 6); }
    else if (!strncmp(v, "bool:", 5)) {
        o->tag = LL_KVO_BOOL;
        if (!strcmp(v + 5, "true")) o->b = true;
        else if (strcmp(v + 5, "false")) return false;
    } else if (!strncmp(v, "str:", 4)) {
        o->tag = LL_KVO_STR;
        if (strlen(v + 4) > 127) return false;
        snprintf(o->s, sizeof o->s, "%s", v + 4);
    } else {
        return false;
    }
    return true;
}

/* ---- hyperparameters the policy reads ------------------------------------------------------ */

/* A u32 key or the first element of a per-layer array; def when absent. */
static uint32_t hparam_u32(const ll_gguf *g, const ll_quantize_params *p, const char *arch,
                           const char *suffix, uint32_t def) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    /* the model loader sees --override-kv too: an int override replaces the value */
    for (size_t i = p->n_kv_overrides; i-- > 0;)
        if (p->kv_overrides[i].tag == LL_KVO_INT && !strcmp(p->kv_overrides[i].key, key))
            return (uint32_t)p->kv_overrides[i].i;
    const ll_gguf_kv *kv = ll_gguf_find(g, key);
    if (!kv) return def;
    if (kv->type == LL_GGUF_TYPE_ARRAY) {
        if (kv->v.arr.n == 0) return def;
        uint32_t v = def;
        if (kv->v.arr.type == LL_GGUF_TYPE_UINT32 || kv->v.arr.type == LL_GGUF_TYPE_INT32)
            memcpy(&v, kv->v.arr.data, 4);
        return v;
    }
    uint32_t v = def;
    bool found;
    ll_error e = {0};
    if (ll_gguf_get_u32(g, key, &v, &found, &e) != LL_OK || !found) return def;
    return v;
}

/* ---- tensor order -------------------------------------------------------------------------- */

typedef struct {
    const ll_gguf_tensor *t;
    char     name[LL_GGUF_MAX_NAME + 1];   /* as written (renumbered when layers are pruned) */
    char     orig[LL_GGUF_MAX_NAME + 1];   /* as read: the importance matrix's name for it */
    int      layer;                 /* blk.N, or -1 */
    tensor_cat cat;
    uint32_t dst_type;
    bool     fell;
} qtensor;

/* llama_model_loader's weight order: layer (-1 for non-layer tensors first), then name. */
static int qtensor_cmp(const void *a, const void *b) {
    const qtensor *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* --prune-layers (llama-quant.cpp remap_layer): tensors of the listed layers are dropped and
 * the layers after the first pruned one renumbered down, in the loader's order. qt is sorted;
 * returns the new count and the number of layers left in *n_layers. */
static size_t prune_layers(qtensor *qt, size_t nt, const int *prune, size_t n_prune, uint32_t *n_layers) {
    int next_id = 0, last = -1, mapped = -1;
    bool dropped = false;
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        int l = qt[i].layer;
        if (l >= 0 && l != last) {          /* first tensor of a new layer: map it */
            last = l;
            dropped = false;
            for (size_t j = 0; j < n_prune; j++) if (prune[j] == l) dropped = true;
            if (!dropped) {
                if (l < prune[0]) { mapped = l; next_id = l + 1; }
                else mapped = next_id++;
            }
        }
        if (l >= 0 && dropped) continue;
        qtensor q = qt[i];
        if (l >= 0 && mapped != l) {
            /* mapped < l, so the new name is never longer than the old one */
            char buf[2 * sizeof q.name];
            const char *tail = strchr(q.name + 4, '.');     /* after "blk.N" */
            snprintf(buf, sizeof buf, "blk.%d%s", mapped, tail ? tail : "");
            size_t n = strlen(buf);
            if (n < sizeof q.name) memcpy(q.name, buf, n + 1);
        }
        qt[k++] = q;
    }
    *n_layers = (uint32_t)next_id;
    return k;
}

/* ---- parallel conversion ------------------------------------------------------------------- */

typedef struct {
    uint32_t     type;
    const float *src;               /* (nrows, n_per_row) */
    uint8_t     *dst;               /* nrows * row_bytes */
    int64_t      nrows, n_per_row;
    size_t       row_bytes;
    bool         stats;
    float       *scratch;           /* nth * n_per_row, for the error measure */
    double      *err2, *ref2;       /* one per thread */
    bool        *bad;               /* one per thread: validation failed */
    const float *imatrix;           /* NULL, or n_per_row values per expert */
    int64_t      row0;              /* the slab's first row in the tensor */
    int64_t      rows_per_expert;   /* ne[1]: rows sharing one imatrix row */
} qjob;

static void qjob_run(void *arg, int ith, int nth) {
    qjob *j = arg;
    int64_t r0 = j->nrows * ith / nth, r1 = j->nrows * (ith + 1) / nth;
    double e = 0, r = 0;
    for (int64_t row = r0; row < r1; row++) {
        const float *x = j->src + row * j->n_per_row;
        uint8_t *q = j->dst + (size_t)row * j->row_bytes;
        const float *qw = j->imatrix ? j->imatrix + ((j->row0 + row) / j->rows_per_expert) * j->n_per_row : NULL;
        ll_quantize_rows_imatrix(j->type, x, q, 1, j->n_per_row, qw);
        if (!ll_quantize_check(j->type, q, j->row_bytes, NULL)) j->bad[ith] = true;
        if (j->stats) ll_quantize_error(j->type, x, q, j->n_per_row, j->scratch + (size_t)ith * j->n_per_row, &e, &r);
    }
    j->err2[ith] = e;
    j->ref2[ith] = r;
}

/* ---- the rewrite ----------------------------------------------------------------------------- */

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* mkstemp makes the file 0600; give the result the mode a plain create would (0666 less the
 * umask). The umask is read from /proc (umask() would change it for every thread). */
static void chmod_like_create(int fd) {
    unsigned um = 022;
    FILE *st = fopen("/proc/self/status", "r");
    if (st) {
        char line[128];
        while (fgets(line, sizeof line, st))
            if (sscanf(line, "Umask: %o", &um) == 1) break;
        fclose(st);
    }
    (void)fchmod(fd, (mode_t)(0666 & ~um));
}

static ll_status write_all(FILE *f, const void *p, size_t n, const char *what, ll_error *err) {
    if (n && fwrite(p, 1, n, f) != n)
        return ll_fail(err, LL_ERR_IO, "writing %s: %s", what, strerror(errno));
    return LL_OK;
}

static ll_status write_zeros(FILE *f, uint64_t n, ll_error *err) {
    static const uint8_t z[256];
    while (n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        ll_status st = write_all(f, z, k, "padding", err);
        if (st != LL_OK) return st;
        n -= k;
    }
    return LL_OK;
}

#define SLAB_FLOATS ((int64_t)16 << 20)    /* f32 elements converted per step: 64 MiB */

ll_status ll_quantize_file(const char *in_path, const char *out_path, const ll_quantize_params *p,
                           ll_quantize_result *res, ll_error *err) {
    ll_status st = LL_OK;
    ll_gguf *g = NULL;
    ll_gguf_writer *w = NULL;
    ll_pool *pool = NULL;
    qtensor *qt = NULL;
    float *f32 = NULL, *scratch = NULL;
    uint8_t *qbuf = NULL;
    double *err2 = NULL, *ref2 = NULL;
    bool *bad = NULL;
    FILE *f = NULL;
    char *tmp = NULL;
    ll_imatrix im = {0};
    regex_t *tt_re = NULL;
    size_t n_re = 0;
    uint32_t n_kept_layers = 0;
    memset(res, 0, sizeof *res);

    const ll_ftype_info *fi = NULL;
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (ftypes[i].ftype == p->ftype) fi = &ftypes[i];
    if (!fi) return ll_fail(err, LL_ERR_UNSUPPORTED, "file type %u is not one we can write", p->ftype);
    if (fi->ftype == FT_Q2_K_S && !p->imatrix_path && !p->dry_run)
        return ll_fail(err, LL_ERR_UNSUPPORTED,
                       "Q2_K_S needs an importance matrix (--imatrix FILE), as in llama-quantize");
    res->needs_imatrix = fi->ftype == FT_Q2_K_S && !p->imatrix_path;
    for (int k = 0; k < 2; k++) {
        int32_t ot = k ? p->token_embd_type : p->output_type;
        if (ot >= 0 && !ll_quantize_supported((uint32_t)ot))
            return ll_fail(err, LL_ERR_UNSUPPORTED, "cannot write tensors of type %d", ot);
    }
    if (same_file(in_path, out_path))
        return ll_fail(err, LL_ERR_IO, "output '%s' is the input file: refusing to overwrite it", out_path);

    if (p->imatrix_path) {
        if ((st = ll_imatrix_load(&im, p->imatrix_path, err)) != LL_OK) goto done;
        ll_imatrix_filter(&im, p->imatrix_include, p->n_imatrix_include, p->imatrix_exclude, p->n_imatrix_exclude);
    }
    if (fi->ftype == FT_Q2_K_S && im.n == 0 && p->imatrix_path) {
        st = ll_fail(err, LL_ERR_UNSUPPORTED, "Q2_K_S needs an importance matrix, and '%s' holds no entries",
                     p->imatrix_path);
        goto done;
    }
    if ((st = ll_gguf_open(&g, in_path, err)) != LL_OK) goto done;

    /* hyperparameters */
    ll_str arch_s;
    bool found;
    if ((st = ll_gguf_get_str(g, "general.architecture", &arch_s, &found, err)) != LL_OK) goto done;
    if (!found) { st = ll_fail(err, LL_ERR_FORMAT, "%s: no general.architecture key", in_path); goto done; }
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", LL_STR(arch_s));
    qstate qs = { .p = p, .ftype = fi->ftype, .base_type = fi->base_type, .tied = true };
    qs.falcon = !strcmp(arch, "falcon");
    qs.n_layer = (int)hparam_u32(g, p, arch, "block_count", 0);
    uint32_t n_head = hparam_u32(g, p, arch, "attention.head_count", 0);
    uint32_t n_head_kv = hparam_u32(g, p, arch, "attention.head_count_kv", n_head);
    qs.n_gqa = n_head_kv ? n_head / n_head_kv : 0;
    qs.n_expert = hparam_u32(g, p, arch, "expert_count", 0);
    qs.is_70b = !strcmp(arch, "llama") && qs.n_layer == 80 && n_head != n_head_kv;
    qs.has_imatrix = im.n > 0;
    if (p->n_tt) {
        tt_re = ll_calloc(p->n_tt, sizeof *tt_re);
        if (!tt_re) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto done; }
        for (; n_re < p->n_tt; n_re++) {
            int rc = regcomp(&tt_re[n_re], p->tt_patterns[n_re], REG_EXTENDED | REG_NOSUB);
            if (rc) {
                char msg[128];
                regerror(rc, &tt_re[n_re], msg, sizeof msg);
                st = ll_fail(err, LL_ERR_FORMAT, "--tensor-type pattern '%s': %s", p->tt_patterns[n_re], msg);
                goto done;
            }
            if (!ll_quantize_supported((uint32_t)p->tt_types[n_re])) {
                regfree(&tt_re[n_re]);
                st = ll_fail(err, LL_ERR_UNSUPPORTED, "--tensor-type '%s': cannot write type %d",
                             p->tt_patterns[n_re], p->tt_types[n_re]);
                goto done;
            }
        }
    }
    qs.tt_re = tt_re;

    /* tensors in output order, their categories and types */
    size_t nt = ll_gguf_n_tensors(g);
    qt = ll_calloc(nt ? nt : 1, sizeof *qt);
    if (!qt) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < nt; i++) {
        qt[i].t = ll_gguf_tensor_at(g, i);
        snprintf(qt[i].name, sizeof qt[i].name, "%.*s", LL_STR(qt[i].t->name));
        memcpy(qt[i].orig, qt[i].name, sizeof qt[i].orig);
        qt[i].layer = -1;
        sscanf(qt[i].name, "blk.%d.", &qt[i].layer);
    }
    qsort(qt, nt, sizeof *qt, qtensor_cmp);
    if (p->n_prune) nt = prune_layers(qt, nt, p->prune, p->n_prune, &n_kept_layers);
    for (size_t i = 0; i < nt; i++) {
        qt[i].cat = category_of(qt[i].name);
        if (cat_is_attn_v(qt[i].cat)) qs.n_attention_wv++;
        if (qt[i].cat == CAT_OUTPUT) qs.tied = false;
    }
    for (size_t i = 0; i < nt; i++) {
        if ((st = target_type(&qs, qt[i].name, qt[i].t, qt[i].cat, &qt[i].dst_type, &qt[i].fell, err)) != LL_OK)
            goto done;
        const ll_gguf_tensor *t = qt[i].t;
        uint32_t dt = qt[i].dst_type;
        if (dt == t->type) continue;
        if (!ll_quantize_supported(dt)) {
            st = ll_fail(err, LL_ERR_UNSUPPORTED, "tensor '%s': cannot write type %u", qt[i].name, dt);
            goto done;
        }
        if (t->ne[0] % ll_type_traits_of(dt)->blck) {
            st = ll_fail(err, LL_ERR_UNSUPPORTED, "tensor '%s': row of %lld elements is not a multiple of %s's block of %lld",
                         qt[i].name, (long long)t->ne[0], ll_type_traits_of(dt)->name, (long long)ll_type_traits_of(dt)->blck);
            goto done;
        }
        const ll_type_traits *stt = ll_type_traits_of(t->type);
        if (!stt || !stt->supported) {
            st = ll_fail(err, LL_ERR_UNSUPPORTED, "tensor '%s': cannot convert from type %s",
                         qt[i].name, stt ? stt->name : "?");
            goto done;
        }
        if (type_is_quantized(t->type) && !p->allow_requantize) {
            st = ll_fail(err, LL_ERR_UNSUPPORTED, "tensor '%s' is already %s: requantizing is disabled "
                         "(it loses precision); pass --allow-requantize to do it anyway", qt[i].name, stt->name);
            goto done;
        }
    }

    /* metadata: the input's keys, then the two llama-quantize sets, split keys dropped */
    if ((st = ll_gguf_writer_init(&w, ll_gguf_alignment(g), err)) != LL_OK) goto done;
    for (size_t i = 0; i < ll_gguf_n_kv(g); i++)
        if ((st = ll_gguf_writer_add_kv(w, ll_gguf_kv_at(g, i), err)) != LL_OK) goto done;
    if ((st = ll_gguf_writer_set_u32(w, "general.quantization_version", 2, err)) != LL_OK) goto done;
    if ((st = ll_gguf_writer_set_u32(w, "general.file_type", fi->ftype, err)) != LL_OK) goto done;
    ll_gguf_writer_remove_key(w, "split.no");
    ll_gguf_writer_remove_key(w, "split.count");
    ll_gguf_writer_remove_key(w, "split.tensors.count");
    for (size_t k = 0; k < p->n_kv_overrides; k++) {
        const ll_kv_override *o = &p->kv_overrides[k];
        switch (o->tag) {
        case LL_KVO_INT:   st = ll_gguf_writer_set_u32(w, o->key, (uint32_t)llabs(o->i), err); break;
        case LL_KVO_FLOAT: st = ll_gguf_writer_set_f32(w, o->key, (float)o->f, err); break;
        case LL_KVO_BOOL:  st = ll_gguf_writer_set_bool(w, o->key, o->b, err); break;
        case LL_KVO_STR:   st = ll_gguf_writer_set_str(w, o->key, o->s, err); break;
        }
        if (st != LL_OK) goto done;
    }
    if (im.n > 0) {
        /* what llama-quantize records (as key overrides, strings cut to 127 bytes) */
        char v[128];
        snprintf(v, sizeof v, "%s", p->imatrix_path);
        if ((st = ll_gguf_writer_set_str(w, "quantize.imatrix.file", v, err)) != LL_OK) goto done;
        if (im.dataset) {
            snprintf(v, sizeof v, "%s", im.dataset);
            if ((st = ll_gguf_writer_set_str(w, "quantize.imatrix.dataset", v, err)) != LL_OK) goto done;
        }
        if ((st = ll_gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im.n, err)) != LL_OK) goto done;
        if (im.chunk_count > 0 &&
            (st = ll_gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", im.chunk_count, err)) != LL_OK) goto done;
    }
    if (p->n_prune) {
        char key[96];
        snprintf(key, sizeof key, "%s.block_count", arch);
        if ((st = ll_gguf_writer_set_u32(w, key, n_kept_layers, err)) != LL_OK) goto done;
    }
    for (size_t i = 0; i < nt; i++)
        if ((st = ll_gguf_writer_add_tensor(w, ll_str_c(qt[i].name), qt[i].t->n_dims, qt[i].t->ne,
                                            qt[i].dst_type, err)) != LL_OK) goto done;

    if (p->dry_run) {
        for (size_t i = 0; i < nt; i++) {
            const ll_gguf_tensor *t = qt[i].t;
            ll_quantize_tensor_info info = {
                .index = i, .count = nt, .name = qt[i].name, .src_type = t->type, .dst_type = qt[i].dst_type,
                .src_bytes = t->n_bytes, .dst_bytes = ll_gguf_writer_tensor_bytes(w, i),
                .converted = qt[i].dst_type != t->type, .fallback = qt[i].fell,
            };
            memcpy(info.ne, t->ne, sizeof info.ne);
            res->src_bytes += info.src_bytes;
            res->dst_bytes += info.dst_bytes;
            res->n_elements += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
            res->n_tensors++;
            res->n_converted += info.converted;
            res->n_fallback += info.converted && qt[i].fell;
            if (p->progress) p->progress(p->progress_ud, &info);
        }
        goto done;
    }

    /* buffers: one slab of f32 rows (at most SLAB_FLOATS, or one row) and its quantized form */
    int64_t max_cols = 1, max_slab = 1;
    for (size_t i = 0; i < nt; i++) {
        const ll_gguf_tensor *t = qt[i].t;
        if (qt[i].dst_type == t->type) continue;
        int64_t nrows = t->ne[1] * t->ne[2] * t->ne[3];
        int64_t slab = SLAB_FLOATS / t->ne[0] > 0 ? SLAB_FLOATS / t->ne[0] : 1;
        if (slab > nrows) slab = nrows;
        if (slab * t->ne[0] > max_slab) max_slab = slab * t->ne[0];
        if (t->ne[0] > max_cols) max_cols = t->ne[0];
    }
    int nth = p->n_threads > 0 ? p->n_threads : ll_cpu_count();
    if ((st = ll_pool_init(&pool, nth, err)) != LL_OK) goto done;
    nth = ll_pool_n_threads(pool);
    f32 = ll_malloc_array((size_t)max_slab, sizeof *f32);
    qbuf = ll_malloc_array((size_t)max_slab, sizeof(float));   /* no type takes more than 4 bytes/elem */
    scratch = p->stats ? ll_malloc_array((size_t)nth * (size_t)max_cols, sizeof *scratch) : NULL;
    err2 = ll_calloc((size_t)nth, sizeof *err2);
    ref2 = ll_calloc((size_t)nth, sizeof *ref2);
    bad = ll_calloc((size_t)nth, sizeof *bad);
    if (!f32 || !qbuf || (p->stats && !scratch) || !err2 || !ref2 || !bad) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory for a slab of %lld floats", (long long)max_slab);
        goto done;
    }

    /* temporary output next to the final name */
    size_t n_tmp = strlen(out_path) + 16;
    tmp = ll_malloc(n_tmp);
    if (!tmp) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto done; }
    snprintf(tmp, n_tmp, "%s.tmp-XXXXXX", out_path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = ll_fail(err, LL_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        ll_free(tmp);
        tmp = NULL;
        goto done;
    }
    chmod_like_create(fd);
    f = fdopen(fd, "wb");
    if (!f) { close(fd); st = ll_fail(err, LL_ERR_IO, "cannot open '%s': %s", tmp, strerror(errno)); goto done; }
    if ((st = ll_gguf_writer_write_meta(w, f, err)) != LL_OK) goto done;

    uint32_t align = ll_gguf_alignment(g);
    for (size_t i = 0; i < nt; i++) {
        const ll_gguf_tensor *t = qt[i].t;
        const uint32_t dt = qt[i].dst_type;
        ll_quantize_tensor_info info = {
            .index = i, .count = nt, .name = qt[i].name, .src_type = t->type, .dst_type = dt,
            .src_bytes = t->n_bytes, .dst_bytes = ll_gguf_writer_tensor_bytes(w, i),
            .converted = dt != t->type, .fallback = qt[i].fell,
        };
        memcpy(info.ne, t->ne, sizeof info.ne);
        size_t bad_at;
        const ll_type_traits *stt = ll_type_traits_of(t->type);
        if (stt && stt->supported && !ll_quantize_check(t->type, t->data, (size_t)t->n_bytes, &bad_at)) {
            st = ll_fail(err, LL_ERR_FORMAT, "tensor '%s' holds a NaN or infinity (%s %zu of the %s data)",
                         qt[i].name, type_is_quantized(t->type) ? "block" : "element", bad_at, stt->name);
            goto done;
        }
        if (p->cancel && atomic_load(p->cancel)) {
            st = ll_fail(err, LL_ERR_CANCELLED, "quantization cancelled");
            goto done;
        }
        if (dt == t->type) {
            if ((st = write_all(f, t->data, (size_t)t->n_bytes, qt[i].name, err)) != LL_OK) goto done;
        } else {
            const int64_t n_per_row = t->ne[0], nrows = t->ne[1] * t->ne[2] * t->ne[3];
            const size_t src_row = (size_t)(t->n_bytes / (uint64_t)nrows);
            size_t dst_row = (size_t)(info.dst_bytes / (uint64_t)nrows);
            int64_t slab = SLAB_FLOATS / n_per_row > 0 ? SLAB_FLOATS / n_per_row : 1;
            /* the importance values for this weight: one row of n_per_row per expert */
            const float *qw = NULL;
            const ll_imatrix_entry *ie = im.n ? ll_imatrix_find(&im, qt[i].orig) : NULL;
            if (ie) {
                if (ie->n == n_per_row * t->ne[2]) qw = ie->v;
                else if (qt[i].cat != CAT_TOKEN_EMBD) {
                    st = ll_fail(err, LL_ERR_FORMAT, "importance matrix has %lld values for '%s', which needs %lld",
                                 (long long)ie->n, qt[i].name, (long long)(n_per_row * t->ne[2]));
                    goto done;
                }
            }
            /* Q2_K in a Q2_K_S file is garbage without one (llama-quant.cpp) */
            if (!qw && fi->ftype == FT_Q2_K_S && dt == LL_TYPE_Q2_K && qt[i].cat != CAT_TOKEN_EMBD &&
                qt[i].cat != CAT_OUTPUT) {
                st = ll_fail(err, LL_ERR_UNSUPPORTED, "no importance matrix entry for '%s', which Q2_K_S needs",
                             qt[i].name);
                goto done;
            }
            for (int64_t r = 0; r < nrows; r += slab) {
                if (p->cancel && atomic_load(p->cancel)) {
                    st = ll_fail(err, LL_ERR_CANCELLED, "quantization cancelled");
                    goto done;
                }
                int64_t nr = nrows - r < slab ? nrows - r : slab;
                ll_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * src_row, f32, nr * n_per_row);
                qjob job = { .type = dt, .src = f32, .dst = qbuf, .nrows = nr, .n_per_row = n_per_row,
                             .row_bytes = dst_row, .stats = p->stats, .scratch = scratch,
                             .err2 = err2, .ref2 = ref2, .bad = bad, .imatrix = qw, .row0 = r,
                             .rows_per_expert = t->ne[1] };
                memset(bad, 0, (size_t)nth * sizeof *bad);
                ll_pool_run(pool, qjob_run, &job);
                for (int k = 0; k < nth; k++) {
                    if (bad[k]) {
                        st = ll_fail(err, LL_ERR_FORMAT, "tensor '%s': quantized %s data holds a NaN or "
                                     "infinity (a value too large for F16 scales?)", qt[i].name, ll_type_traits_of(dt)->name);
                        goto done;
                    }
                    info.err2 += err2[k];
                    info.ref2 += ref2[k];
                }
                if ((st = write_all(f, qbuf, (size_t)nr * dst_row, qt[i].name, err)) != LL_OK) goto done;
            }
            res->n_converted++;
            if (qt[i].fell) res->n_fallback++;
        }
        if ((st = write_zeros(f, ll_gguf_pad_bytes(info.dst_bytes, align), err)) != LL_OK) goto done;
        res->src_bytes += t->n_bytes;
        res->dst_bytes += info.dst_bytes;
        res->n_elements += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        res->n_tensors++;
        if (p->progress) p->progress(p->progress_ud, &info);
    }

    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        st = ll_fail(err, LL_ERR_IO, "writing '%s': %s", tmp, strerror(errno));
        goto done;
    }
    if (fclose(f) != 0) {
        f = NULL;
        st = ll_fail(err, LL_ERR_IO, "closing '%s': %s", tmp, strerror(errno));
        goto done;
    }
    f = NULL;
    if (rename(tmp, out_path) != 0) {
        st = ll_fail(err, LL_ERR_IO, "renaming '%s' to '%s': %s", tmp, out_path, strerror(errno));
        goto done;
    }
    ll_free(tmp);
    tmp = NULL;

done:
    for (size_t k = 0; k < n_re; k++) regfree(&tt_re[k]);
    ll_free(tt_re);
    ll_imatrix_free(&im);
    if (f) fclose(f);
    if (tmp) { unlink(tmp); ll_free(tmp); }
    ll_free(bad);
    ll_free(ref2);
    ll_free(err2);
    ll_free(scratch);
    ll_free(qbuf);
    ll_free(f32);
    ll_pool_free(pool);
    ll_free(qt);
    ll_gguf_writer_free(w);
    ll_gguf_close(g);
    return st;
}
