/* model/imatrix: importance matrices as llama-imatrix writes them, for quantize.c
 * (imatrix.h). */
#include "model/imatrix.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void ll_imatrix_free(ll_imatrix *im) {
    for (size_t i = 0; i < im->n; i++) { ll_free(im->e[i].name); ll_free(im->e[i].v); }
    ll_free(im->e);
    ll_free(im->dataset);
    memset(im, 0, sizeof *im);
}

ll_imatrix_entry *ll_imatrix_find(const ll_imatrix *im, const char *name) {
    for (size_t i = 0; i < im->n; i++)
        if (!strcmp(im->e[i].name, name)) return &im->e[i];
    return NULL;
}

static ll_status imatrix_add(ll_imatrix *im, const char *name, size_t name_len, int64_t n,
                             ll_imatrix_entry **out, ll_error *err) {
    ll_imatrix_entry *p = ll_realloc(im->e, (im->n + 1) * sizeof *p);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the importance matrix");
    im->e = p;
    ll_imatrix_entry *e = &im->e[im->n];
    e->name = ll_str_dup((ll_str){ name, name_len });
    e->v = n > 0 ? ll_malloc_array((size_t)n, sizeof(float)) : NULL;
    e->n = n;
    if (!e->name || (n > 0 && !e->v)) {
        ll_free(e->name);
        ll_free(e->v);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory for the importance matrix");
    }
    im->n++;
    *out = e;
    return LL_OK;
}

/* llama-imatrix's GGUF: tensors "<weight>.in_sum2" (sums of squared activations, one row per
 * expert) and "<weight>.counts" (how many were summed per expert), and the keys
 * imatrix.datasets / chunk_count / chunk_size, which llama-quantize requires. The value used
 * is sum / count per expert, or 1 where the count is 0. */
static ll_status imatrix_load_gguf(ll_imatrix *im, const char *path, ll_error *err) {
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_open(&g, path, err);
    if (st != LL_OK) return st;
    if (ll_gguf_n_tensors(g) < 1) { st = ll_fail(err, LL_ERR_FORMAT, "importance matrix '%s' holds no data", path); goto out; }
    const ll_gguf_kv *ds = ll_gguf_find(g, "imatrix.datasets");
    const ll_gguf_kv *cc = ll_gguf_find(g, "imatrix.chunk_count");
    if (!ds || !cc || !ll_gguf_find(g, "imatrix.chunk_size")) {
        st = ll_fail(err, LL_ERR_FORMAT, "importance matrix '%s' lacks its imatrix.* metadata", path);
        goto out;
    }
    if (ds->type == LL_GGUF_TYPE_ARRAY && ds->v.arr.type == LL_GGUF_TYPE_STRING && ds->v.arr.n > 0 &&
        !(im->dataset = ll_str_dup(ds->v.arr.strs[0]))) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto out;
    }
    bool found;
    if ((st = ll_gguf_get_u32(g, "imatrix.chunk_count", &im->chunk_count, &found, err)) != LL_OK) goto out;
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *s = ll_gguf_tensor_at(g, i);
        static const char sfx[] = ".in_sum2";
        if (s->name.n <= sizeof sfx - 1 || memcmp(s->name.p + s->name.n - (sizeof sfx - 1), sfx, sizeof sfx - 1))
            continue;
        size_t base = s->name.n - (sizeof sfx - 1);
        char cname[LL_GGUF_MAX_NAME + 16];
        snprintf(cname, sizeof cname, "%.*s.counts", (int)base, s->name.p);
        const ll_gguf_tensor *c = ll_gguf_find_tensor(g, cname);
        if (!c) { st = ll_fail(err, LL_ERR_FORMAT, "importance matrix: '%.*s' has no counts", LL_STR(s->name)); goto out; }
        if (s->type != LL_TYPE_F32 || c->type != LL_TYPE_F32) {
            st = ll_fail(err, LL_ERR_FORMAT, "importance matrix: sums and counts of '%.*s' must be F32", (int)base, s->name.p);
            goto out;
        }
        int64_t nval = (int64_t)(s->n_bytes / 4), ncounts = (int64_t)(c->n_bytes / 4);
        if (ncounts < 1 || nval % ncounts) {
            st = ll_fail(err, LL_ERR_FORMAT, "importance matrix: '%.*s' has %lld sums for %lld counts",
                         (int)base, s->name.p, (long long)nval, (long long)ncounts);
            goto out;
        }
        ll_imatrix_entry *e;
        if ((st = imatrix_add(im, s->name.p, base, nval, &e, err)) != LL_OK) goto out;
        int64_t ne0 = nval / ncounts;
        for (int64_t j = 0; j < ncounts; j++) {
            float cf;
            memcpy(&cf, (const uint8_t *)c->data + 4 * j, 4);
            const float count = (float)lroundf(cf);
            for (int64_t k = 0; k < ne0; k++) {
                float sum;
                memcpy(&sum, (const uint8_t *)s->data + 4 * (j * ne0 + k), 4);
                e->v[j * ne0 + k] = count > 0.0f ? sum / count : 1;
            }
        }
    }
    /* a counts tensor without sums is as inconsistent as the reverse */
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *c = ll_gguf_tensor_at(g, i);
        static const char sfx[] = ".counts";
        if (c->name.n <= sizeof sfx - 1 || memcmp(c->name.p + c->name.n - (sizeof sfx - 1), sfx, sizeof sfx - 1))
            continue;
        bool paired = false;
        for (size_t k = 0; k < im->n && !paired; k++)
            paired = strlen(im->e[k].name) == c->name.n - (sizeof sfx - 1) &&
                     !memcmp(im->e[k].name, c->name.p, c->name.n - (sizeof sfx - 1));
        if (!paired) { st = ll_fail(err, LL_ERR_FORMAT, "importance matrix: '%.*s' has no sums", LL_STR(c->name)); goto out; }
    }
out:
    ll_gguf_close(g);
    return st;
}

/* The older binary .dat: i32 n_entries, then per entry i32 name length, the name, i32 ncall,
 * i32 nval, nval floats (already divided by the count and multiplied by ncall); then
 * optionally i32 chunk count, i32 length and the dataset name. */
static ll_status imatrix_load_legacy(ll_imatrix *im, const char *path, ll_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ll_fail(err, LL_ERR_IO, "cannot open importance matrix '%s': %s", path, strerror(errno));
    ll_status st = LL_OK;
    int32_t n_entries;
    char *name = NULL;
    if (fread(&n_entries, 4, 1, f) != 1 || n_entries < 1 || n_entries > (1 << 20)) {
        st = ll_fail(err, LL_ERR_FORMAT, "importance matrix '%s': not a GGUF and no entries as a .dat file", path);
        goto out;
    }
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        if (fread(&len, 4, 1, f) != 1 || len < 1 || len > 4096) goto trunc;
        name = ll_malloc((size_t)len + 1);
        if (!name) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
        if (fread(name, 1, (size_t)len, f) != (size_t)len) goto trunc;
        name[len] = 0;
        if (fread(&ncall, 4, 1, f) != 1 || fread(&nval, 4, 1, f) != 1 || nval < 1 || nval > (1 << 28)) goto trunc;
        ll_imatrix_entry *e = ll_imatrix_find(im, name);
        if (!e && (st = imatrix_add(im, name, strlen(name), nval, &e, err)) != LL_OK) goto out;
        if (e->n != nval) { st = ll_fail(err, LL_ERR_FORMAT, "importance matrix: '%s' given twice with different sizes", name); goto out; }
        if (fread(e->v, 4, (size_t)nval, f) != (size_t)nval) goto trunc;
        if (ncall > 0)
            for (int32_t k = 0; k < nval; k++) e->v[k] = e->v[k] / (float)ncall;
        ll_free(name);
        name = NULL;
    }
    int32_t n_calls, dlen;
    if (fread(&n_calls, 4, 1, f) == 1) {
        im->chunk_count = n_calls > 0 ? (uint32_t)n_calls : 0;
        if (fread(&dlen, 4, 1, f) == 1 && dlen > 0 && dlen < (1 << 16)) {
            char *d = ll_calloc(1, (size_t)dlen + 1);
            if (d && fread(d, 1, (size_t)dlen, f) == (size_t)dlen) { im->dataset = ll_str_dup(ll_str_c(d)); }
            ll_free(d);
        }
    }
    goto out;
trunc:
    st = ll_fail(err, LL_ERR_FORMAT, "importance matrix '%s' is truncated or malformed", path);
out:
    ll_free(name);
    fclose(f);
    return st;
}

/* --include-weights / --exclude-weights: substring filters on the entry names. */
void ll_imatrix_filter(ll_imatrix *im, const char *const *include, size_t n_include,
                       const char *const *exclude, size_t n_exclude) {
    size_t k = 0;
    for (size_t i = 0; i < im->n; i++) {
        bool keep = true;
        for (size_t j = 0; j < n_exclude && keep; j++)
            if (strstr(im->e[i].name, exclude[j])) keep = false;
        if (keep && n_include) {
            keep = false;
            for (size_t j = 0; j < n_include && !keep; j++)
                if (strstr(im->e[i].name, include[j])) keep = true;
        }
        if (keep) im->e[k++] = im->e[i];
        else { ll_free(im->e[i].name); ll_free(im->e[i].v); }
    }
    im->n = k;
}

ll_status ll_imatrix_load(ll_imatrix *im, const char *path, ll_error *err) {
    memset(im, 0, sizeof *im);
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return ll_fail(err, LL_ERR_IO, "cannot open importance matrix '%s': %s", path, strerror(errno));
    size_t k = fread(magic, 1, 4, f);
    fclose(f);
    ll_status st = k == 4 && !memcmp(magic, "GGUF", 4) ? imatrix_load_gguf(im, path, err)
                                                        : imatrix_load_legacy(im, path, err);
    if (st == LL_OK) {
        for (size_t i = 0; i < im->n; i++)
            for (int64_t j = 0; j < im->e[i].n; j++)
                if (!isfinite(im->e[i].v[j])) {
                    st = ll_fail(err, LL_ERR_FORMAT, "importance matrix: '%s' holds a non-finite value", im->e[i].name);
                    break;
                }
    }
    if (st != LL_OK) ll_imatrix_free(im);
    return st;
}
