/* store: create (§1.8, §4.8), copy (§1.9), delete (§1.10) and garbage collection (§4.9). */
#include "store/store_impl.h"
#include "store/gofmt.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// GGUF metadata for the config blob (§4.4)

typedef struct {
    char family[64];
    char model_type[32];
    char file_type[32];
} gguf_meta;

/* When general.file_type is absent, name the quantization after the most common type of the
 * 2-D weights (llama.cpp guesses the same way); the K types get their _M variant. */
static const char *guess_file_type(const ll_gguf *g) {
    uint64_t count[LL_TYPE_COUNT] = {0};
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        if (t->n_dims >= 2 && t->type < LL_TYPE_COUNT) count[t->type]++;
    }
    uint32_t best = 0;
    for (uint32_t t = 1; t < LL_TYPE_COUNT; t++)
        if (count[t] > count[best]) best = t;
    switch (best) {
    case LL_TYPE_F32: return "F32";
    case LL_TYPE_F16: return "F16";
    case LL_TYPE_BF16: return "BF16";
    case LL_TYPE_Q4_0: return "Q4_0";
    case LL_TYPE_Q4_1: return "Q4_1";
    case LL_TYPE_Q5_0: return "Q5_0";
    case LL_TYPE_Q5_1: return "Q5_1";
    case LL_TYPE_Q8_0: return "Q8_0";
    case LL_TYPE_Q2_K: return "Q2_K";
    case LL_TYPE_Q3_K: return "Q3_K_M";
    case LL_TYPE_Q4_K: return "Q4_K_M";
    case LL_TYPE_Q5_K: return "Q5_K_M";
    case LL_TYPE_Q6_K: return "Q6_K";
    default: return "unknown";
    }
}

static ll_status gguf_read_meta(const char *path, const char *what, gguf_meta *m, ll_error *err) {
    ll_gguf *g;
    ll_error e = {0};
    if (ll_gguf_open(&g, path, &e) != LL_OK)
        return ll_fail(err, e.code == LL_ERR_IO ? LL_ERR_IO : LL_ERR_FORMAT, "%s: %s", what, e.msg);
    ll_status st = LL_OK;
    ll_str arch = {0}, type = {0};
    bool found = false, tfound = false;
    if ((st = ll_gguf_get_str(g, "general.architecture", &arch, &found, err))) goto out;
    if (!found || arch.n == 0 || arch.n >= sizeof m->family) {
        st = ll_fail(err, LL_ERR_FORMAT, "%s: GGUF has no usable general.architecture", what);
        goto out;
    }
    if ((st = ll_gguf_get_str(g, "general.type", &type, &tfound, err))) goto out;
    if (tfound && (ll_str_eq_c(type, "adapter"))) {
        st = ll_fail(err, LL_ERR_UNSUPPORTED, "%s is a LoRA adapter GGUF: adapters are not supported", what);
        goto out;
    }
    if (tfound && (ll_str_eq_c(type, "projector") || ll_str_eq_c(type, "mmproj"))) {
        st = ll_fail(err, LL_ERR_UNSUPPORTED, "%s is a projector GGUF: vision models are not supported", what);
        goto out;
    }
    snprintf(m->family, sizeof m->family, "%.*s", LL_STR(arch));
    uint64_t n_params = 0;
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (!ll_mul_u64(ne, (uint64_t)t->ne[d], &ne)) { ne = 0; break; }
        if (!ll_add_u64(n_params, ne, &n_params)) n_params = UINT64_MAX;
    }
    ll_format_param_count(n_params, m->model_type, sizeof m->model_type);
    int64_t ft;
    bool ffound = false;
    if (ll_gguf_get_i64(g, "general.file_type", &ft, &ffound, err) != LL_OK) { st = err ? err->code : LL_ERR_FORMAT; goto out; }
    snprintf(m->file_type, sizeof m->file_type, "%s", ffound ? ll_file_type_name(ft) : guess_file_type(g));
out:
    ll_gguf_close(g);
    return st;
}

ll_status ll_store_gguf_file_type(const char *path, char *buf, size_t cap, ll_error *err) {
    gguf_meta meta;
    ll_status st = gguf_read_meta(path, path, &meta, err);
    if (st == LL_OK) snprintf(buf, cap, "%s", meta.file_type);
    return st;
}

// ---------------------------------------------------------------------------------------------
// create

typedef struct {
    ll_store *s;
    ll_layer *layers;
    size_t    n, cap;
    ll_digest *pins;          /* every digest pinned by this create, unpinned at the end */
    size_t    n_pins, cap_pins;
    const ll_create_opts *o;
    ll_error *err;
} create_ctx;

static void progress(create_ctx *c, const char *fmt, ...) LL_PRINTF(2, 3);
static void progress(create_ctx *c, const char *fmt, ...) {
    if (!c->o->progress) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->o->progress(c->o->progress_user, buf);
}

static bool remember_pin(create_ctx *c, const ll_digest *d) {
    if (c->n_pins == c->cap_pins) {
        size_t nc = c->cap_pins ? 2 * c->cap_pins : 16;
        ll_digest *v = ll_realloc(c->pins, nc * sizeof *v);
        if (!v) return false;
        c->pins = v;
        c->cap_pins = nc;
    }
    c->pins[c->n_pins++] = *d;
    return true;
}

static void layer_clear(ll_layer *l) {
    ll_free(l->media_type);
    ll_free(l->from);
    ll_free(l->name);
    memset(l, 0, sizeof *l);
}

static ll_status add_layer(create_ctx *c, const char *media, const ll_digest *d, uint64_t size,
                           const char *from, const char *name) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 8;
        ll_layer *v = ll_realloc(c->layers, nc * sizeof *v);
        if (!v) return ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model");
        c->layers = v;
        c->cap = nc;
    }
    ll_layer *l = &c->layers[c->n];
    memset(l, 0, sizeof *l);
    l->digest = *d;
    l->size = size;
    l->media_type = ll_str_dup(ll_str_c(media));
    if (from && *from) l->from = ll_str_dup(ll_str_c(from));
    if (name && *name) l->name = ll_str_dup(ll_str_c(name));
    if (!l->media_type || (from && *from && !l->from) || (name && *name && !l->name)) {
        layer_clear(l);
        return ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model");
    }
    c->n++;
    return LL_OK;
}

static void remove_layers(create_ctx *c, const char *media) {
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->layers[i].media_type, media)) { layer_clear(&c->layers[i]); continue; }
        c->layers[k++] = c->layers[i];
    }
    c->n = k;
}

/* A text or JSON layer: blob written (or found), pinned, appended. */
static ll_status add_blob_layer(create_ctx *c, const char *media, const void *p, size_t n) {
    ll_digest d;
    bool existed;
    ll_status st = store_put_mem_pin(c->s, p, n, &d, &existed, c->err);
    if (st) return st;
    if (!remember_pin(c, &d)) { ll_store_unpin(c->s, &d); return ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model"); }
    progress(c, "%s layer sha256:%s", existed ? "using existing" : "creating new", d.hex);
    return add_layer(c, media, &d, n, NULL, NULL);
}

/* The params blob as Ollama writes it: json.NewEncoder(map) → keys sorted, Go escapes, "\n". */
static char *params_json(const json_t *params, size_t *n) {
    gobuf b = {0};
    const char **keys = NULL;
    size_t nk = json_object_size(params);
    if (nk && !(keys = ll_malloc_array(nk, sizeof *keys))) return NULL;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v) keys[i++] = k;
    for (size_t a = 1; a < nk; a++)             /* insertion sort: a handful of keys */
        for (size_t j = a; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t;
        }
    gobuf_puts(&b, "{");
    for (i = 0; i < nk; i++) {
        json_t *val = json_object_get(params, keys[i]);
        if (i) gobuf_puts(&b, ",");
        gobuf_json_str(&b, keys[i], strlen(keys[i]));
        gobuf_puts(&b, ":");
        size_t m = json_is_array(val) ? json_array_size(val) : 1;
        if (json_is_array(val)) gobuf_puts(&b, "[");
        for (size_t j = 0; j < m; j++) {
            json_t *e = json_is_array(val) ? json_array_get(val, j) : val;
            if (j) gobuf_puts(&b, ",");
            if (json_is_string(e)) gobuf_json_str(&b, json_string_value(e), json_string_length(e));
            else if (json_is_integer(e)) gobuf_printf(&b, "%lld", (long long)json_integer_value(e));
            else if (json_is_real(e)) gobuf_json_num(&b, json_real_value(e));
            else if (json_is_true(e)) gobuf_puts(&b, "true");
            else if (json_is_false(e)) gobuf_puts(&b, "false");
            else gobuf_puts(&b, "null");
        }
        if (json_is_array(val)) gobuf_puts(&b, "]");
    }
    gobuf_puts(&b, "}\n");
    ll_free(keys);
    return gobuf_take(&b, n);
}

static char *messages_json(const ll_modelfile *mf, size_t *n) {
    gobuf b = {0};
    gobuf_puts(&b, "[");
    for (size_t i = 0; i < mf->n_messages; i++) {
        if (i) gobuf_puts(&b, ",");
        gobuf_puts(&b, "{\"role\":");
        gobuf_json_str(&b, mf->messages[i].role, strlen(mf->messages[i].role));
        gobuf_puts(&b, ",\"content\":");
        gobuf_json_str(&b, mf->messages[i].content, strlen(mf->messages[i].content));
        gobuf_puts(&b, "}");
    }
    gobuf_puts(&b, "]\n");
    return gobuf_take(&b, n);
}

typedef struct {
    char *format, *family, *model_type, *file_type, *renderer, *parser, *requires;
    json_t *families;        /* array or NULL (null) */
} config_fields;

static void config_clear(config_fields *f) {
    ll_free(f->format); ll_free(f->family); ll_free(f->model_type); ll_free(f->file_type);
    ll_free(f->renderer); ll_free(f->parser); ll_free(f->requires);
    json_decref(f->families);
    memset(f, 0, sizeof *f);
}

static void put_field(gobuf *b, const char *key, const char *v, bool omit_empty) {
    if (omit_empty && (!v || !*v)) return;
    gobuf_printf(b, ",\"%s\":", key);
    gobuf_json_str(b, v ? v : "", v ? strlen(v) : 0);
}

/* Ollama's ConfigV2, in its field order, as json.NewEncoder writes it. */
static char *config_json(const config_fields *f, const ll_layer *layers, size_t n_layers, size_t *n) {
    gobuf b = {0};
    gobuf_puts(&b, "{\"model_format\":");
    gobuf_json_str(&b, f->format ? f->format : "", f->format ? strlen(f->format) : 0);
    put_field(&b, "model_family", f->family, false);
    gobuf_puts(&b, ",\"model_families\":");
    if (!json_is_array(f->families)) gobuf_puts(&b, "null");
    else {
        gobuf_puts(&b, "[");
        for (size_t i = 0; i < json_array_size(f->families); i++) {
            json_t *e = json_array_get(f->families, i);
            if (i) gobuf_puts(&b, ",");
            gobuf_json_str(&b, json_string_value(e) ? json_string_value(e) : "", json_string_length(e));
        }
        gobuf_puts(&b, "]");
    }
    put_field(&b, "model_type", f->model_type, false);
    put_field(&b, "file_type", f->file_type, false);
    put_field(&b, "renderer", f->renderer, true);
    put_field(&b, "parser", f->parser, true);
    put_field(&b, "requires", f->requires, true);
    gobuf_puts(&b, ",\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
    for (size_t i = 0; i < n_layers; i++)
        gobuf_printf(&b, "%s\"sha256:%s\"", i ? "," : "", layers[i].digest.hex);
    gobuf_puts(&b, "]}}\n");
    return gobuf_take(&b, n);
}

static char *dup_or_null(const char *s) { return s ? ll_str_dup(ll_str_c(s)) : NULL; }

static ll_status base_from_gguf(create_ctx *c, config_fields *cfg) {
    const ll_create_opts *o = c->o;
    gguf_meta meta;
    ll_status st;
    ll_digest d;
    uint64_t size;
    bool existed;
    progress(c, "parsing GGUF");
    if (o->gguf_path) {
        if ((st = gguf_read_meta(o->gguf_path, o->gguf_path, &meta, c->err))) return st;
        if ((st = store_put_file_pin(c->s, o->gguf_path, &d, &size, &existed, c->err))) return st;
        if (!remember_pin(c, &d)) { ll_store_unpin(c->s, &d); return ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model"); }
    } else {
        if ((st = ll_store_pin(c->s, o->gguf_blob, c->err))) return st;
        if (!remember_pin(c, o->gguf_blob)) { ll_store_unpin(c->s, o->gguf_blob); return ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model"); }
        d = *o->gguf_blob;
        if (!ll_store_blob_exists(c->s, &d, &size))
            return ll_fail(c->err, LL_ERR_ARG, "blob sha256-%s not found: upload it first", d.hex);
        char path[PATH_MAX_STORE], what[96];
        ll_store_blob_path(c->s, &d, path, sizeof path);
        snprintf(what, sizeof what, "blob sha256-%.12s", d.hex);
        if ((st = gguf_read_meta(path, what, &meta, c->err))) return st;
        existed = true;
    }
    progress(c, "%s layer sha256:%s", existed ? "using existing" : "creating new", d.hex);
    if ((st = add_layer(c, LL_MEDIA_MODEL, &d, size, o->parent, NULL))) return st;
    cfg->format = dup_or_null("gguf");
    cfg->family = dup_or_null(meta.family);
    cfg->model_type = dup_or_null(meta.model_type);
    cfg->file_type = dup_or_null(meta.file_type);
    cfg->families = json_pack("[s]", meta.family);
    if (!cfg->format || !cfg->family || !cfg->model_type || !cfg->file_type || !cfg->families)
        return ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model");
    return LL_OK;
}

static ll_status base_from_model(create_ctx *c, config_fields *cfg, json_t **base_params) {
    gguf_meta new_meta;
    bool replaced = false;
    memset(&new_meta, 0, sizeof new_meta);
    char display[LL_NAME_FULL_MAX];
    ll_name_display(c->o->from_model, display, sizeof display);
    ll_manifest *m;
    bool found;
    ll_status st = ll_store_manifest_read(c->s, c->o->from_model, &m, &found, c->err);
    if (st) return st;
    if (!found) return ll_fail(c->err, LL_ERR_ARG, "model '%s' not found", display);
    for (size_t i = 0; i <= m->n_layers; i++) {
        const ll_digest *d = i < m->n_layers ? &m->layers[i].digest : &m->config.digest;
        if ((st = ll_store_pin(c->s, d, c->err))) goto out;
        if (!remember_pin(c, d)) { ll_store_unpin(c->s, d); st = ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
    }
    if ((st = ll_store_model_check(c->s, c->o->from_model, m, c->err))) goto out;
    for (size_t i = 0; i < m->n_layers; i++) {
        const ll_layer *l = &m->layers[i];
        if (!strcmp(l->media_type, LL_MEDIA_PARAMS)) {
            char *text;
            size_t n;
            if ((st = store_blob_read(c->s, &l->digest, LL_MANIFEST_MAX_BYTES, &text, &n, c->err))) goto out;
            json_t *j = json_loadb(text, n, 0, NULL);
            ll_free(text);
            if (json_is_object(j)) { json_decref(*base_params); *base_params = j; }
            else json_decref(j);
        }
        const char *from = l->from;
        if (!strcmp(l->media_type, LL_MEDIA_MODEL) && c->o->parent) from = c->o->parent;
        if (!strcmp(l->media_type, LL_MEDIA_MODEL) && c->o->model_path) {
            /* the base's weights replaced (quantized): a new model layer, its own file type */
            ll_digest d;
            uint64_t size;
            bool existed;
            if ((st = gguf_read_meta(c->o->model_path, c->o->model_path, &new_meta, c->err))) goto out;
            if ((st = store_put_file_pin(c->s, c->o->model_path, &d, &size, &existed, c->err))) goto out;
            if (!remember_pin(c, &d)) { ll_store_unpin(c->s, &d); st = ll_fail(c->err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
            progress(c, "%s layer sha256:%s", existed ? "using existing" : "creating new", d.hex);
            if ((st = add_layer(c, l->media_type, &d, size, from, l->name))) goto out;
            replaced = true;
            continue;
        }
        if ((st = add_layer(c, l->media_type, &l->digest, l->size, from, l->name))) goto out;
        progress(c, "using existing layer sha256:%s", l->digest.hex);
    }
    char *text;
    size_t n;
    if ((st = store_blob_read(c->s, &m->config.digest, LL_MANIFEST_MAX_BYTES, &text, &n, c->err))) goto out;
    json_t *j = json_loadb(text, n, 0, NULL);
    ll_free(text);
    if (!json_is_object(j)) {
        json_decref(j);
        st = ll_fail(c->err, LL_ERR_FORMAT, "model '%s': config blob sha256-%s is not a JSON object", display, m->config.digest.hex);
        goto out;
    }
    json_t *v;
#define CFG_STR(field, key) if (json_is_string(v = json_object_get(j, key))) cfg->field = dup_or_null(json_string_value(v));
    CFG_STR(format, "model_format")
    CFG_STR(family, "model_family")
    CFG_STR(model_type, "model_type")
    CFG_STR(file_type, "file_type")
    if (replaced) { ll_free(cfg->file_type); cfg->file_type = dup_or_null(new_meta.file_type); }
    CFG_STR(renderer, "renderer")
    CFG_STR(parser, "parser")
    CFG_STR(requires, "requires")
#undef CFG_STR
    if (json_is_array(v = json_object_get(j, "model_families"))) cfg->families = json_incref(v);
    json_decref(j);
out:
    ll_manifest_free(m);
    return st;
}

/* Under s->mu: delete blobs among cand[] that no manifest references and nothing pins;
 * returns how many went. */
size_t store_gc_candidates_locked(ll_store *s, const ll_digest *cand, size_t n_cand) {
    if (!n_cand) return 0;
    ll_digest *ref;
    size_t n_ref;
    ll_error e = {0};
    if (store_referenced_locked(s, &ref, &n_ref, &e) != LL_OK) {
        LL_WARN("model store: unused blobs kept: %s", e.msg);
        return 0;
    }
    size_t n_removed = 0;
    for (size_t i = 0; i < n_cand; i++) {
        bool used = false;
        for (size_t lo = 0, hi = n_ref; lo < hi;) {
            size_t mid = (lo + hi) / 2;
            int c = strcmp(ref[mid].hex, cand[i].hex);
            if (!c) { used = true; break; }
            if (c < 0) lo = mid + 1; else hi = mid;
        }
        if (used || store_pinned_locked(s, &cand[i])) continue;
        char name[80];
        snprintf(name, sizeof name, "sha256-%s", cand[i].hex);
        if (unlinkat(s->blobs_fd, name, 0) == 0) n_removed++;
    }
    ll_free(ref);
    fsync(s->blobs_fd);
    return n_removed;
}

ll_status ll_store_create(ll_store *s, const ll_model_name *name, const ll_create_opts *o,
                          ll_error *err) {
    if (s->read_only) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    int n_base = (o->gguf_path != NULL) + (o->gguf_blob != NULL) + (o->from_model != NULL);
    if (n_base != 1) return ll_fail(err, LL_ERR_ARG, "create needs exactly one of a GGUF file, a blob or a model to start from");
    const ll_modelfile *mf = o->mf;
    if (mf && mf->n_adapters)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "ADAPTER is not supported: LoRA adapters cannot be applied yet");
    if (mf && mf->draft)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "DRAFT is not supported: there is no speculative decoding yet");

    char display[LL_NAME_FULL_MAX];
    ll_name_display(name, display, sizeof display);
    create_ctx c = { .s = s, .o = o, .err = err };
    config_fields cfg = {0};
    json_t *params = NULL;
    char *blob = NULL, *man = NULL;
    ll_digest *old = NULL;
    size_t n_old = 0, cap_old = 0;
    ll_status st = o->from_model ? base_from_model(&c, &cfg, &params) : base_from_gguf(&c, &cfg);
    if (st) goto out;

    size_t n;
    if (mf && mf->template_text && *mf->template_text) {
        remove_layers(&c, LL_MEDIA_TEMPLATE);
        remove_layers(&c, LL_MEDIA_PROMPT);
        if ((st = add_blob_layer(&c, LL_MEDIA_TEMPLATE, mf->template_text, strlen(mf->template_text)))) goto out;
    }
    if (mf && mf->system && *mf->system) {
        remove_layers(&c, LL_MEDIA_SYSTEM);
        if ((st = add_blob_layer(&c, LL_MEDIA_SYSTEM, mf->system, strlen(mf->system)))) goto out;
    }
    for (size_t i = 0; mf && i < mf->n_licenses; i++)
        if ((st = add_blob_layer(&c, LL_MEDIA_LICENSE, mf->licenses[i], strlen(mf->licenses[i])))) goto out;
    if (mf && json_object_size(mf->params)) {
        if (!params && !(params = json_object())) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
        if (json_object_update(params, mf->params)) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
        if (!(blob = params_json(params, &n))) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
        remove_layers(&c, LL_MEDIA_PARAMS);
        if ((st = add_blob_layer(&c, LL_MEDIA_PARAMS, blob, n))) goto out;
        ll_free(blob);
        blob = NULL;
    }
    if (mf && mf->n_messages) {
        if (!(blob = messages_json(mf, &n))) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
        remove_layers(&c, LL_MEDIA_MESSAGES);
        if ((st = add_blob_layer(&c, LL_MEDIA_MESSAGES, blob, n))) goto out;
        ll_free(blob);
        blob = NULL;
    }
    if (mf && mf->renderer) { ll_free(cfg.renderer); cfg.renderer = dup_or_null(mf->renderer); }
    if (mf && mf->parser) { ll_free(cfg.parser); cfg.parser = dup_or_null(mf->parser); }
    if (mf && mf->requires) { ll_free(cfg.requires); cfg.requires = dup_or_null(mf->requires); }

    /* config, then the manifest */
    if (!(blob = config_json(&cfg, c.layers, c.n, &n))) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
    ll_digest cd;
    bool existed;
    if ((st = store_put_mem_pin(s, blob, n, &cd, &existed, err))) goto out;
    if (!remember_pin(&c, &cd)) { ll_store_unpin(s, &cd); st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
    ll_manifest m = { .config = { .media_type = (char *)LL_MEDIA_CONFIG, .digest = cd, .size = n },
                      .layers = c.layers, .n_layers = c.n };
    size_t man_n;
    if (!(man = ll_manifest_serialize(&m, &man_n))) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory creating a model"); goto out; }
    progress(&c, "writing manifest");

    /* S12, S13: one writer at a time; every blob checked present under the lock, so a delete
     * or GC that ran in between cannot leave this manifest pointing at nothing. */
    pthread_mutex_lock(&s->mu);
    store_mpath mp;
    bool found;
    st = store_manifest_dir(s, name, true, &mp, NULL, &found, err);
    if (st == LL_OK) {
        for (size_t i = 0; i <= c.n && st == LL_OK; i++) {
            const ll_digest *d = i < c.n ? &c.layers[i].digest : &cd;
            if (!ll_store_blob_exists(s, d, NULL))
                st = ll_fail(err, LL_ERR_IO, "model '%s': blob sha256-%s vanished while creating it", display, d->hex);
        }
        char *prev = NULL;
        size_t prev_n = 0;
        ll_error e2 = {0};
        if (st == LL_OK && found &&
            store_manifest_bytes(mp.dir_fd, mp.tag, display, &prev, &prev_n, NULL, &e2) == LL_OK) {
            if (!store_collect_digests(prev, prev_n, &old, &n_old, &cap_old)) n_old = 0;
            ll_free(prev);
        }
        if (st == LL_OK) st = store_manifest_put(s, mp.dir_fd, mp.tag, man, man_n, display, err);
        close(mp.dir_fd);
    }
    /* the replaced manifest's layers that nothing references any more (§1.8) */
    for (size_t i = 0; i < c.n_pins; i++) store_unpin_locked(s, &c.pins[i]);
    c.n_pins = 0;
    if (st == LL_OK) store_gc_candidates_locked(s, old, n_old);
    pthread_mutex_unlock(&s->mu);
    if (st == LL_OK) progress(&c, "success");

out:
    for (size_t i = 0; i < c.n_pins; i++) ll_store_unpin(s, &c.pins[i]);
    ll_free(c.pins);
    for (size_t i = 0; i < c.n; i++) layer_clear(&c.layers[i]);
    ll_free(c.layers);
    config_clear(&cfg);
    json_decref(params);
    ll_free(blob);
    ll_free(man);
    ll_free(old);
    return st;
}

// ---------------------------------------------------------------------------------------------
// copy

ll_status ll_store_copy(ll_store *s, const ll_model_name *src, const ll_model_name *dst,
                        bool *found, ll_error *err) {
    *found = false;
    if (s->read_only) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    char sd[LL_NAME_FULL_MAX], dd[LL_NAME_FULL_MAX];
    ll_name_display(src, sd, sizeof sd);
    ll_name_display(dst, dd, sizeof dd);
    pthread_mutex_lock(&s->mu);   /* S14: the source cannot be deleted half way */
    store_mpath mp;
    ll_model_name rs;
    char *buf = NULL;
    size_t n = 0;
    ll_manifest *m = NULL;
    ll_status st = store_manifest_dir(s, src, false, &mp, &rs, found, err);
    if (st || !*found) goto out;
    st = store_manifest_bytes(mp.dir_fd, mp.tag, sd, &buf, &n, NULL, err);
    close(mp.dir_fd);
    if (st) goto out;
    ll_error e2 = {0};
    if (ll_manifest_parse(&m, buf, n, &e2) != LL_OK) {
        st = ll_fail(err, e2.code == LL_ERR_NOMEM ? LL_ERR_NOMEM : LL_ERR_FORMAT,
                     "manifest for '%s' is corrupt: %s", sd, e2.msg);
        goto out;
    }
    if ((st = ll_store_model_check(s, src, m, err))) goto out;
    if (ll_name_equal(&rs, dst)) goto out;                 /* onto itself: nothing to do */
    bool dfound;
    if ((st = store_manifest_dir(s, dst, true, &mp, NULL, &dfound, err))) goto out;
    st = store_manifest_put(s, mp.dir_fd, mp.tag, buf, n, dd, err);
    close(mp.dir_fd);
out:
    pthread_mutex_unlock(&s->mu);
    ll_manifest_free(m);
    ll_free(buf);
    return st;
}

// ---------------------------------------------------------------------------------------------
// delete

ll_status ll_store_delete(ll_store *s, const ll_model_name *n, bool *found, ll_error *err) {
    *found = false;
    if (s->read_only) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    char display[LL_NAME_FULL_MAX];
    ll_name_display(n, display, sizeof display);
    pthread_mutex_lock(&s->mu);
    store_mpath mp;
    ll_model_name r;
    ll_digest *cand = NULL;
    size_t n_cand = 0, cap = 0;
    ll_status st = store_manifest_dir(s, n, false, &mp, &r, found, err);
    if (st || !*found) goto out;
    char *buf;
    size_t len;
    ll_error e2 = {0};
    /* a corrupt manifest is still deleted (S7); its blobs are whatever its bytes name */
    if (store_manifest_bytes(mp.dir_fd, mp.tag, display, &buf, &len, NULL, &e2) == LL_OK) {
        if (!store_collect_digests(buf, len, &cand, &n_cand, &cap)) n_cand = 0;
        ll_free(buf);
    }
    if (unlinkat(mp.dir_fd, mp.tag, 0) < 0) {
        st = ll_fail(err, LL_ERR_IO, "deleting model '%s': %s", display,
                     errno == EROFS || errno == EACCES ? "model store is read-only" : strerror(errno));
        close(mp.dir_fd);
        goto out;
    }
    fsync(mp.dir_fd);
    close(mp.dir_fd);
    /* empty parents up to manifests/ (§4.6) */
    int host = store_open_dir(s->manifests_fd, r.host, false);
    int ns = host >= 0 ? store_open_dir(host, r.ns, false) : -1;
    if (ns >= 0) { unlinkat(ns, r.model, AT_REMOVEDIR); close(ns); }
    if (host >= 0) { unlinkat(host, r.ns, AT_REMOVEDIR); close(host); }
    unlinkat(s->manifests_fd, r.host, AT_REMOVEDIR);
    store_gc_candidates_locked(s, cand, n_cand);   /* S11: only what nothing references */
out:
    pthread_mutex_unlock(&s->mu);
    ll_free(cand);
    return st;
}

// ---------------------------------------------------------------------------------------------
// garbage collection (§4.9)

static int cmp_digest_hex(const void *a, const void *b) {
    return strcmp(((const ll_digest *)a)->hex, ((const ll_digest *)b)->hex);
}

static int no_visit(void *user, const char *parts[4], int dir_fd) {
    (void)user; (void)parts; (void)dir_fd;
    return 0;
}

ll_status ll_store_gc(ll_store *s, int64_t grace_seconds, ll_gc_stats *stats, ll_error *err) {
    ll_gc_stats local = {0};
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (s->read_only) return ll_fail(err, LL_ERR_IO, "model store is read-only");
    if (grace_seconds < 0) grace_seconds = s->grace;
    time_t now = time(NULL);
    pthread_mutex_lock(&s->mu);
    ll_digest *ref = NULL;
    size_t n_ref = 0;
    ll_status st = store_referenced_locked(s, &ref, &n_ref, err);
    if (st) goto out;
    int fd = dup(s->blobs_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        st = ll_fail(err, LL_ERR_IO, "reading the blobs directory: %s", strerror(errno));
        goto out;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        ll_digest dg;
        bool is_blob = store_is_digest_name(e->d_name, &dg);
        bool is_temp = !is_blob && store_is_temp_name(e->d_name);
        bool is_frag = !is_blob && !is_temp && store_is_fragment_name(e->d_name, &dg);
        if (!is_blob && !is_temp && !is_frag) continue;     /* S17: not ours, untouched */
        struct stat sb;
        if (fstatat(s->blobs_fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) continue;
        if (grace_seconds > 0 && now - sb.st_mtime < grace_seconds) continue;   /* S16 */
        if (is_frag) {
            /* A pull fragment is stale unless a pull holds the lock on its -partial (S16);
             * removed while we hold that lock, so no pull can start on it meanwhile (a pull
             * checks after locking that its file still has the name). */
            char pname[96];
            snprintf(pname, sizeof pname, "sha256-%s-partial", dg.hex);
            int lfd = openat(s->blobs_fd, pname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) != 0) { close(lfd); continue; }
            if (unlinkat(s->blobs_fd, e->d_name, 0) == 0) {
                stats->n_temps_removed++;
                stats->bytes_removed += (uint64_t)sb.st_size;
            }
            if (lfd >= 0) close(lfd);
            continue;
        }
        if (is_temp) {
            if (store_temp_live_locked(s, e->d_name)) continue;
        } else {
            if (n_ref && bsearch(&dg, ref, n_ref, sizeof dg, cmp_digest_hex)) continue;
            if (store_pinned_locked(s, &dg)) continue;
        }
        if (unlinkat(s->blobs_fd, e->d_name, 0) == 0) {
            if (is_temp) stats->n_temps_removed++;
            else stats->n_blobs_removed++;
            stats->bytes_removed += (uint64_t)sb.st_size;
        }
    }
    closedir(d);
    fsync(s->blobs_fd);
    store_walk_manifests(s, no_visit, NULL, true);
out:
    pthread_mutex_unlock(&s->mu);
    ll_free(ref);
    return st;
}
