/* server/api_models: the model-management endpoints of §1.5-§1.10 and §1.13 (GET /api/tags,
 * POST /api/show, GET /api/ps, POST /api/create, /api/copy, DELETE /api/delete,
 * HEAD/POST /api/blobs/:digest) and api_model_open, which the generation endpoints use to turn
 * a request's model string into the model's blob and layers.
 *
 * Templates. Ollama's create gives a bare GGUF the Go template of a known family by comparing
 * its Jinja chat template with an index (llama3-prompt-format.md §10). We detect the family
 * with src/template/chat.c (substring rules, not Levenshtein distance) and write the matching
 * Go template: Llama 3.2 → the registry llama3.2 TEMPLATE (this project's rule, §10), Llama 3 /
 * 3.1 / 3.3 → llama3-instruct, ChatML → chatml plus the default system prompt the GGUF's Jinja
 * template writes (SmolLM2's), so the prompt equals what that Jinja template renders. A model
 * stored without a template layer gets the same choice at request time. */
#include "server/api_internal.h"
#include "server/thinking.h"
#include "model/quantize.h"

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "template/chat.h"

#include <assert.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

/* ---- built-in templates ------------------------------------------------------------------- */

static const char LLAMA32_TEMPLATE[] =
    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n"
    "{{ if .System }}{{ .System }}\n{{- end }}\n{{- if .Tools }}When you receive a tool call "
    "response, use the output to format an answer to the orginal user question.\n\nYou are a "
    "helpful assistant with tool calling capabilities.\n{{- end }}<|eot_id|>\n"
    "{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
    "{{- if eq .Role \"user\" }}<|start_header_id|>user<|end_header_id|>\n"
    "{{- if and $.Tools $last }}\n\nGiven the following functions, please respond with a JSON "
    "for a function call with its proper arguments that best answers the given prompt.\n\n"
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name "
    "and its value}. Do not use variables.\n\n{{ range $.Tools }}\n{{- . }}\n{{ end }}\n"
    "{{ .Content }}<|eot_id|>\n{{- else }}\n\n{{ .Content }}<|eot_id|>\n"
    "{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}\n"
    "{{- else if eq .Role \"assistant\" }}<|start_header_id|>assistant<|end_header_id|>\n"
    "{{- if .ToolCalls }}\n{{ range .ToolCalls }}\n{\"name\": \"{{ .Function.Name }}\", "
    "\"parameters\": {{ .Function.Arguments }}}{{ end }}\n{{- else }}\n\n{{ .Content }}\n"
    "{{- end }}{{ if not $last }}<|eot_id|>{{ end }}\n"
    "{{- else if eq .Role \"tool\" }}<|start_header_id|>ipython<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    "{{ end }}\n{{- end }}\n{{- end }}";
static_assert(sizeof LLAMA32_TEMPLATE - 1 == 1429, "llama3.2 TEMPLATE is 1429 bytes (§3)");

static const char LLAMA3_TEMPLATE[] =
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n";

static const char *const LLAMA3_STOPS[] = { "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", NULL };
static const char *const CHATML_STOPS[] = { "<|im_start|>", "<|im_end|>", NULL };

char *api_template_for_gguf(const char *ct, const char **name, const char *const **stops) {
    ll_str t = ll_str_c(ct);
    switch (ll_chat_detect(t)) {
    case LL_CHAT_LLAMA32:
        *name = "llama3.2"; *stops = LLAMA3_STOPS;
        return ll_str_dup(ll_str_c(LLAMA32_TEMPLATE));
    case LL_CHAT_LLAMA3: case LL_CHAT_LLAMA31:
        *name = "llama3-instruct"; *stops = LLAMA3_STOPS;
        return ll_str_dup(ll_str_c(LLAMA3_TEMPLATE));
    case LL_CHAT_CHATML: {
        /* The Jinja template's default system prompt, as chat.c renders it for one user turn. */
        ll_chat_msg probe = { "user", "x" };
        char *out = NULL, *sys = NULL;
        size_t n = 0;
        ll_error e = { 0 };
        static const char open[] = "<|im_start|>system\n";
        if (ll_chat_render(t, &probe, 1, true, &out, &n, &e) == LL_OK && !strncmp(out, open, sizeof open - 1)) {
            const char *b = out + sizeof open - 1, *end = strstr(b, "<|im_end|>");
            if (end && !memmem(b, (size_t)(end - b), "{{", 2)) sys = ll_str_dup((ll_str){ b, (size_t)(end - b) });
        }
        ll_free(out);
        static const char body[] =
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
            "{{ end }}<|im_start|>assistant\n";
        size_t cap = sizeof body + (sys ? strlen(sys) + 128 : 0);
        char *tmpl = ll_malloc(cap);
        if (tmpl) {
            if (sys) snprintf(tmpl, cap, "{{- if not .System }}<|im_start|>system\n%s<|im_end|>\n{{ end }}%s", sys, body);
            else memcpy(tmpl, body, sizeof body);
        }
        ll_free(sys);
        *name = "chatml"; *stops = CHATML_STOPS;
        return tmpl;
    }
    default:
        return NULL;
    }
}

/* ---- resolving a request's model ----------------------------------------------------------- */

static const char DEFAULT_TEMPLATE[] = "{{ .Prompt }}";

void api_model_close(api_model *m) {
    /* template_text may point into mf (borrowed): decide before mf is freed. */
    const bool own_template = m->template_text && m->template_text != DEFAULT_TEMPLATE &&
                              (!m->mf || m->template_text != m->mf->template_text);
    if (own_template) ll_free((char *)m->template_text);
    ll_manifest_free(m->manifest);
    ll_modelfile_free(m->mf);
    ll_free(m->chat_template);
    memset(m, 0, sizeof *m);
}

/* {arch}.pooling_type and tokenizer.chat_template of the model blob. */
static void model_read_gguf(api_model *m) {
    ll_gguf *g = NULL;
    ll_error e = { 0 };
    if (!m->mf || m->mf->n_from == 0 || ll_gguf_open(&g, m->mf->from[0], &e) != LL_OK) return;
    ll_str s; bool found = false;
    if (ll_gguf_get_str(g, "tokenizer.chat_template", &s, &found, &e) == LL_OK && found)
        m->chat_template = ll_str_dup(s);
    ll_str arch;
    if (ll_gguf_get_str(g, "general.architecture", &arch, &found, &e) == LL_OK && found) {
        char key[160];
        snprintf(key, sizeof key, "%.*s.pooling_type", LL_STR(arch));
        m->embedding_only = ll_gguf_find(g, key) != NULL;
    }
    ll_gguf_close(g);
}

#define CLOUD_DISABLED "ollama cloud is disabled: remote model is unavailable"

/* §0.8.4: a final ":cloud", or a tag ending in "-cloud", names a cloud model; ":local" forces
 * the local one and is stripped. */
static bool has_tail(const char *s, const char *t) {
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

bool api_model_refused(ll_http_resp *resp, const ll_error *err, bool show) {
    if (err->code == LL_ERR_UNSUPPORTED && !strcmp(err->msg, CLOUD_DISABLED)) {
        ll_http_resp_error(resp, 403, "%s", show ? "ollama cloud is disabled: remote model details are unavailable" : CLOUD_DISABLED);
        return true;
    }
    if (err->code == LL_ERR_ARG && !strncmp(err->msg, "use either :local or :cloud", 27)) {
        ll_http_resp_error(resp, 400, "%s", err->msg);
        return true;
    }
    return false;
}

ll_status api_model_open(ll_api_ctx *ctx, const char *model, api_model *m, bool *found, ll_error *err) {
    memset(m, 0, sizeof *m);
    *found = false;
    char local[LL_NAME_FULL_MAX + 8];
    if (has_tail(model, ":local")) {
        size_t k = strlen(model) - 6;
        if (k >= sizeof local) return ll_fail(err, LL_ERR_ARG, "invalid model name");
        memcpy(local, model, k);
        local[k] = 0;
        if (has_tail(local, ":cloud") || has_tail(local, "-cloud"))
            return ll_fail(err, LL_ERR_ARG, "use either :local or :cloud, not both: \"%s\"", model);
        model = local;
    } else if (has_tail(model, ":cloud") || (has_tail(model, "-cloud") && strchr(model, ':'))) {
        return ll_fail(err, LL_ERR_UNSUPPORTED, CLOUD_DISABLED);     /* §1.16 */
    }
    ll_model_name n;
    if (ll_name_parse(&n, model, err) != LL_OK) return err->code;
    bool have = false;
    if (ll_store_resolve(ctx->store, &n, &m->name, &have, err) != LL_OK) return err->code;
    if (!have) return LL_OK;
    if (ll_store_manifest_read(ctx->store, &m->name, &m->manifest, &have, err) != LL_OK) goto fail;
    if (!have) return LL_OK;
    if (ll_store_model_check(ctx->store, &m->name, m->manifest, err) != LL_OK) goto fail;
    if (ll_store_modelfile(ctx->store, m->manifest, &m->mf, err) != LL_OK) goto fail;
    if (m->mf->n_from == 0) { ll_fail(err, LL_ERR_FORMAT, "model '%s' has no model layer", model); goto fail; }
    ll_name_full(&m->name, m->full, sizeof m->full);
    ll_name_display(&m->name, m->display, sizeof m->display);
    model_read_gguf(m);
    if (m->mf->template_text && *m->mf->template_text) {
        m->template_text = m->mf->template_text;
        m->template_source = "layer";
    } else {
        const char *name = NULL; const char *const *stops = NULL;
        char *t = m->chat_template ? api_template_for_gguf(m->chat_template, &name, &stops) : NULL;
        m->template_text = t ? t : DEFAULT_TEMPLATE;
        m->template_source = t ? name : "default";
    }
    *found = true;
    return LL_OK;
fail:
    api_model_close(m);
    return err->code;
}

/* Capabilities (§4.7.1) of an opened model. */
static json_t *model_capabilities(const api_model *m) {
    json_t *caps = json_array();
    json_array_append_new(caps, json_string(m->embedding_only ? "embedding" : "completion"));
    ll_tmpl *t = NULL;
    ll_error e = { 0 };
    if (ll_tmpl_parse(&t, m->template_text, strlen(m->template_text), &e) == LL_OK) {
        if (ll_tmpl_uses(t, "tools")) json_array_append_new(caps, json_string("tools"));
        if (ll_tmpl_uses(t, "suffix")) json_array_append_new(caps, json_string("insert"));
        char *open_tag = NULL, *close_tag = NULL;          /* §4.7.1 step 5 */
        if (ll_think_tags(t, &open_tag, &close_tag)) json_array_append_new(caps, json_string("thinking"));
        ll_free(open_tag);
        ll_free(close_tag);
        ll_tmpl_free(t);
    }
    return caps;
}

static json_t *details_json(const ll_model_details *d, bool lengths) {
    json_t *fam = json_null();
    if (d->families) {
        fam = json_array();
        for (size_t i = 0; i < d->n_families; i++) json_array_append_new(fam, json_string(d->families[i]));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}",
                          "parent_model", d->parent_model ? d->parent_model : "",
                          "format", d->format ? d->format : "",
                          "family", d->family ? d->family : "",
                          "families", fam,
                          "parameter_size", d->parameter_size ? d->parameter_size : "",
                          "quantization_level", d->quantization_level ? d->quantization_level : "");
    if (lengths && d->context_length) json_object_set_new(o, "context_length", json_integer(d->context_length));
    if (lengths && d->embedding_length) json_object_set_new(o, "embedding_length", json_integer(d->embedding_length));
    return o;
}

static json_t *time_local(struct timespec ts) {
    char buf[48];
    size_t n = ll_json_fmt_time(buf, sizeof buf, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, false);
    return json_stringn(buf, n);
}

/* Status of a store or model error (fault-cases.md mapping). */
static int status_of(const ll_error *e) {
    if (ll_store_err_is_nospace(e)) return 507;
    switch (e->code) {
    case LL_ERR_ARG: case LL_ERR_FORMAT: case LL_ERR_UNSUPPORTED: case LL_ERR_LIMIT: return 400;
    default: return 500;
    }
}

/* ---- GET /api/tags ------------------------------------------------------------------------- */

static void api_tags(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_error err = { 0 };
    ll_model_info *list = NULL;
    size_t n = 0;
    if (ll_store_list(ctx->store, &list, &n, &err) != LL_OK) {
        ll_http_resp_error(resp, 500, "%s", err.msg);
        return;
    }
    json_t *models = json_array();
    for (size_t i = 0; i < n; i++) {
        ll_model_info *mi = &list[i];
        json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:s, s:o}", "name", mi->name, "model", mi->name,
                              "modified_at", time_local(mi->modified_at), "size", (json_int_t)mi->size,
                              "digest", mi->digest, "details", details_json(&mi->details, true));
        api_model m;
        bool found = false;
        ll_error e2 = { 0 };
        char full[LL_NAME_FULL_MAX];
        ll_name_full(&mi->parsed, full, sizeof full);
        if (api_model_open(ctx, full, &m, &found, &e2) == LL_OK && found) {
            json_object_set_new(o, "capabilities", model_capabilities(&m));
            api_model_close(&m);
        }
        json_array_append_new(models, o);
    }
    ll_model_info_free(list, n);
    ll_http_resp_json(resp, 200, json_pack("{s:o}", "models", models));
}

/* ---- POST /api/show ------------------------------------------------------------------------ */

static json_t *kv_value(const ll_gguf_kv *kv, bool verbose) {
    switch (kv->type) {
    case LL_GGUF_TYPE_UINT8: case LL_GGUF_TYPE_UINT16: case LL_GGUF_TYPE_UINT32: case LL_GGUF_TYPE_UINT64:
        return json_integer((json_int_t)kv->v.u);
    case LL_GGUF_TYPE_INT8: case LL_GGUF_TYPE_INT16: case LL_GGUF_TYPE_INT32: case LL_GGUF_TYPE_INT64:
        return json_integer((json_int_t)kv->v.i);
    case LL_GGUF_TYPE_FLOAT32: case LL_GGUF_TYPE_FLOAT64: return json_real(kv->v.f);
    case LL_GGUF_TYPE_BOOL: return json_boolean(kv->v.u != 0);
    case LL_GGUF_TYPE_STRING: return json_stringn_nocheck(kv->v.s.p, kv->v.s.n);
    case LL_GGUF_TYPE_ARRAY: break;
    default: return json_null();
    }
    json_t *a = json_array();
    if (kv->v.arr.n > 5 && !verbose) return a;     /* §4.7.2 */
    for (uint64_t i = 0; i < kv->v.arr.n; i++) {
        const unsigned char *d = kv->v.arr.data;
        json_t *e;
        switch (kv->v.arr.type) {
        case LL_GGUF_TYPE_UINT8:  e = json_integer(d[i]); break;
        case LL_GGUF_TYPE_INT8:   e = json_integer((int8_t)d[i]); break;
        case LL_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, d + 2 * i, 2); e = json_integer(v); break; }
        case LL_GGUF_TYPE_INT16:  { int16_t v; memcpy(&v, d + 2 * i, 2); e = json_integer(v); break; }
        case LL_GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, d + 4 * i, 4); e = json_integer(v); break; }
        case LL_GGUF_TYPE_INT32:  { int32_t v; memcpy(&v, d + 4 * i, 4); e = json_integer(v); break; }
        case LL_GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, d + 8 * i, 8); e = json_integer((json_int_t)v); break; }
        case LL_GGUF_TYPE_INT64:  { int64_t v; memcpy(&v, d + 8 * i, 8); e = json_integer(v); break; }
        case LL_GGUF_TYPE_FLOAT32:{ float v; memcpy(&v, d + 4 * i, 4); e = json_real(v); break; }
        case LL_GGUF_TYPE_FLOAT64:{ double v; memcpy(&v, d + 8 * i, 8); e = json_real(v); break; }
        case LL_GGUF_TYPE_BOOL:   e = json_boolean(d[i] != 0); break;
        case LL_GGUF_TYPE_STRING: e = json_stringn(kv->v.arr.strs[i].p, kv->v.arr.strs[i].n); break;
        default: e = json_null();
        }
        json_array_append_new(a, e ? e : json_string("\xef\xbf\xbd"));
    }
    return a;
}

static int kv_cmp(const void *a, const void *b) {
    const ll_gguf_kv *x = *(const ll_gguf_kv *const *)a, *y = *(const ll_gguf_kv *const *)b;
    size_t n = x->key.n < y->key.n ? x->key.n : y->key.n;
    int c = memcmp(x->key.p, y->key.p, n);
    return c ? c : (x->key.n > y->key.n) - (x->key.n < y->key.n);
}

/* model_info (§4.7.2) and tensors (§4.7.6) of the model blob. */
static void show_gguf(const char *path, bool verbose, json_t *info, json_t **tensors) {
    ll_gguf *g = NULL;
    ll_error e = { 0 };
    *tensors = NULL;
    if (ll_gguf_open(&g, path, &e) != LL_OK) return;
    size_t n = ll_gguf_n_kv(g);
    const ll_gguf_kv **kvs = ll_malloc_array(n ? n : 1, sizeof *kvs);
    if (!kvs) { ll_gguf_close(g); return; }
    for (size_t i = 0; i < n; i++) kvs[i] = ll_gguf_kv_at(g, i);
    qsort(kvs, n, sizeof *kvs, kv_cmp);
    uint64_t n_params = 0;
    json_t *ts = json_array();
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        uint64_t ne = 1;
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++) {
            ne *= (uint64_t)t->ne[d];
            json_array_append_new(shape, json_integer(t->ne[d]));
        }
        n_params += ne;
        const ll_type_traits *tt = ll_type_traits_of(t->type);
        json_array_append_new(ts, json_pack("{s:s%, s:s, s:o}", "name", t->name.p, t->name.n,
                                            "type", tt ? tt->name : "unknown", "shape", shape));
    }
    bool wrote_pc = false;
    for (size_t i = 0; i < n; i++) {
        ll_str k = kvs[i]->key;
        if (ll_str_eq_c(k, "general.name") || ll_str_eq_c(k, "tokenizer.chat_template")) continue;
        char key[512];
        if (k.n >= sizeof key) continue;
        memcpy(key, k.p, k.n);
        key[k.n] = 0;
        if (!wrote_pc && strcmp(key, "general.parameter_count") > 0) {
            json_object_set_new(info, "general.parameter_count", json_integer((json_int_t)n_params));
            wrote_pc = true;
        }
        if (!strcmp(key, "general.parameter_count")) {
            json_object_set_new(info, key, json_integer((json_int_t)n_params));
            wrote_pc = true;
            continue;
        }
        json_t *v = kv_value(kvs[i], verbose);
        json_object_set_new(info, key, v ? v : json_null());
    }
    if (!wrote_pc) json_object_set_new(info, "general.parameter_count", json_integer((json_int_t)n_params));
    ll_free(kvs);
    ll_gguf_close(g);
    *tensors = ts;
}

static void api_show(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_error err = { 0 };
    json_t *body;
    if (ll_http_req_json(req, resp, &body) != LL_OK) return;
    char *model = NULL;
    api_model m;
    bool found = false, verbose = false;
    ll_str sys = { NULL, 0 };
    bool has_sys = false;
    json_t *opts = NULL;
    if (api_body_model(body, true, &model, &err) != LL_OK ||
        ll_json_get_bool(body, "verbose", &verbose, NULL, &err) != LL_OK ||
        ll_json_get_str(body, "system", &sys, &has_sys, &err) != LL_OK ||
        ll_json_get_object(body, "options", &opts, &err) != LL_OK) {
        ll_http_resp_error(resp, 400, "%s", err.msg);
        goto out;
    }
    if (!*model) { ll_http_resp_error(resp, 400, "model is required"); goto out; }
    if (api_model_open(ctx, model, &m, &found, &err) != LL_OK) {
        if (!api_model_refused(resp, &err, true))
            ll_http_resp_error(resp, err.code == LL_ERR_ARG ? 400 : status_of(&err), "%s",
                               err.code == LL_ERR_ARG ? "invalid model name" : err.msg);
        goto out;
    }
    if (!found) {
        ll_model_name n;
        char disp[LL_NAME_FULL_MAX];
        ll_name_parse(&n, model, &err);
        ll_name_display(&n, disp, sizeof disp);
        ll_http_resp_error(resp, 404, "model '%s' not found", disp);
        goto out;
    }
    if (has_sys && sys.n) {
        ll_free(m.mf->system);
        m.mf->system = ll_str_dup(sys);
    }
    if (opts) {
        if (!m.mf->params) m.mf->params = json_object();
        json_object_update(m.mf->params, opts);
    }
    json_t *o = json_object();
    if (m.mf->n_licenses) {
        size_t len = 0;
        for (size_t i = 0; i < m.mf->n_licenses; i++) len += strlen(m.mf->licenses[i]) + 1;
        char *lic = ll_malloc(len + 1), *p = lic;
        for (size_t i = 0; lic && i < m.mf->n_licenses; i++) {
            if (i) *p++ = '\n';
            size_t k = strlen(m.mf->licenses[i]);
            memcpy(p, m.mf->licenses[i], k);
            p += k;
        }
        if (lic) { *p = 0; json_object_set_new(o, "license", json_string(lic)); }
        ll_free(lic);
    }
    /* The generated Modelfile shows the template in effect (an autodetected one included). */
    char *saved = m.mf->template_text;
    if (!saved || !*saved) m.mf->template_text = (char *)m.template_text;
    char *mft = ll_modelfile_render(m.mf, m.display);
    m.mf->template_text = saved;
    if (mft) json_object_set_new(o, "modelfile", json_string(mft));
    ll_free(mft);
    char *params = ll_modelfile_render_parameters(m.mf->params);
    if (params && *params) json_object_set_new(o, "parameters", json_string(params));
    ll_free(params);
    json_object_set_new(o, "template", json_string(m.template_text));
    if (m.mf->system && *m.mf->system) json_object_set_new(o, "system", json_string(m.mf->system));
    ll_model_details d;
    memset(&d, 0, sizeof d);
    if (ll_store_details(ctx->store, m.manifest, &d, &err) == LL_OK) {
        json_object_set_new(o, "details", details_json(&d, false));
        ll_model_details_clear(&d);
    } else {
        json_object_set_new(o, "details", json_object());
    }
    if (m.mf->n_messages) {
        json_t *msgs = json_array();
        for (size_t i = 0; i < m.mf->n_messages; i++)
            json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", m.mf->messages[i].role,
                                                  "content", m.mf->messages[i].content));
        json_object_set_new(o, "messages", msgs);
    }
    json_t *info = json_object(), *tensors = NULL;
    show_gguf(m.mf->from[0], verbose, info, &tensors);
    const char *ua = ll_http_req_header(req, "User-Agent");
    if (ua && !strncmp(ua, "GitHubCopilotChat/", 18)) json_object_set_new(info, "general.basename", json_string(model));
    json_object_set_new(o, "model_info", info);
    if (tensors) json_object_set_new(o, "tensors", tensors);
    json_object_set_new(o, "capabilities", model_capabilities(&m));
    json_object_set_new(o, "modified_at", time_local(m.manifest->mtime));
    ll_http_resp_json(resp, 200, o);
    api_model_close(&m);
out:
    ll_free(model);
    json_decref(body);
}

/* ---- GET /api/ps --------------------------------------------------------------------------- */

static void api_ps(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_runner_info info[64];
    size_t n = ll_runners_list(ctx->runners, info, 64);
    if (n > 64) n = 64;
    json_t *models = json_array();
    int64_t now = ll_time_unix_ns();
    for (size_t i = 0; i < n; i++) {
        api_model m;
        bool found = false;
        ll_error e = { 0 };
        if (api_model_open(ctx, info[i].key, &m, &found, &e) != LL_OK || !found) continue;
        ll_model_details d;
        memset(&d, 0, sizeof d);
        json_t *det = NULL;
        if (ll_store_details(ctx->store, m.manifest, &d, &e) == LL_OK) {
            free(d.parent_model);
            d.parent_model = NULL;           /* §1.7: parent_model is always "" here */
            det = details_json(&d, false);
            ll_model_details_clear(&d);
        }
        /* In use: now + the default keep-alive (Ollama shows the pending expiry). Forever is
         * capped at the largest time an int64 of nanoseconds holds (year 2262, not 2318). */
        int64_t exp = info[i].expires_at_ns;
        if (exp == 0) exp = ctx->keep_alive_ns < 0 ? INT64_MAX : now + ctx->keep_alive_ns;
        char buf[48];
        size_t k = ll_json_fmt_time(buf, sizeof buf, exp, false);
        json_array_append_new(models, json_pack("{s:s, s:s, s:I, s:s, s:o, s:s%, s:i, s:i}",
            "name", m.display, "model", m.display, "size", (json_int_t)info[i].size_bytes,
            "digest", m.manifest->digest, "details", det ? det : json_object(),
            "expires_at", buf, k, "size_vram", 0, "context_length", (int)info[i].n_ctx));
        api_model_close(&m);
    }
    ll_http_resp_json(resp, 200, json_pack("{s:o}", "models", models));
}

/* ---- POST /api/create ---------------------------------------------------------------------- */

/* Progress of one create (§1.8). The stream is opened lazily at the first status: every check
 * before it answers with a real status code, every failure after it is an inline
 * {"error":…} line under 200, as Ollama's stream does. */
/* A create runs on a worker thread (api_job.c): create_run opens the stream at its first
 * status line and releases the connection's thread then. */
typedef struct {
    ll_http_resp   *resp;
    ll_http_stream *s;          /* NULL until the first line when streaming */
    bool            stream;
    bool            parsed;     /* "parsing GGUF" said: the store's own one is dropped */
    bool            succeeded;  /* "success" said */
    api_job        *job;
} create_progress;

static void create_on_progress(void *user, const char *status) {
    create_progress *p = user;
    if (!strcmp(status, "parsing GGUF")) {
        if (p->parsed) return;
        p->parsed = true;
    }
    if (!strcmp(status, "success")) {
        if (p->succeeded) return;
        p->succeeded = true;
    }
    if (!p->stream) return;
    if (!p->s) {
        if (!(p->s = ll_http_resp_stream(p->resp, LL_STREAM_NDJSON))) return;   /* the producer's */
        api_job_release(p->job);           /* from here on the lines go out as they come */
    }
    json_t *o = json_pack("{s:s}", "status", status);
    if (o) ll_http_stream_ndjson(p->s, o, 0);
    json_decref(o);
}

/* Quantization types a create request may name (§1.8), canonical spelling; q4_K is Q4_K_M. */
static const char *quant_canonical(ll_str q) {
    static const char *const known[] = { "F32", "F16", "BF16", "Q4_K_S", "Q4_K_M", "Q8_0" };
    if (q.n == 4 && !strncasecmp(q.p, "q4_k", 4)) return "Q4_K_M";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == q.n && !strncasecmp(q.p, known[i], q.n)) return known[i];
    return NULL;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static bool file_has_gguf_magic(const char *path) {
    char magic[4] = { 0 };
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    return ok;
}

static bool looks_like_path(const char *s) {
    struct stat st;
    return s[0] == '/' || !strncmp(s, "./", 2) || !strncmp(s, "../", 3) || !strncmp(s, "~/", 2) ||
           (strlen(s) > 5 && !strcmp(s + strlen(s) - 5, ".gguf") && stat(s, &st) == 0);
}

static void create_run(api_job *job) {
    ll_api_ctx *ctx = job->ctx;
    ll_http_req *req = job->req;
    ll_http_resp *resp = job->resp;
    ll_error err = { 0 };
    json_t *body;
    if (ll_http_req_json(req, resp, &body) != LL_OK) return;
    char *model = NULL, *from = NULL, *tmpl_auto = NULL;
    ll_modelfile *mf = NULL;
    create_progress prog = { .resp = resp, .job = job };
    ll_str s_from = { "", 0 }, s_tmpl = { NULL, 0 }, s_sys = { NULL, 0 }, s_q = { NULL, 0 };
    bool has_tmpl = false, has_sys = false, has_q = false, stream = true;
    json_t *files = NULL, *params = NULL, *msgs = NULL, *lic = NULL, *adapters = NULL;
    int status = 400;
    if (api_body_model(body, true, &model, &err) != LL_OK ||
        ll_json_get_str(body, "from", &s_from, NULL, &err) != LL_OK ||
        ll_json_get_object(body, "files", &files, &err) != LL_OK ||
        ll_json_get_object(body, "adapters", &adapters, &err) != LL_OK ||
        ll_json_get_str(body, "template", &s_tmpl, &has_tmpl, &err) != LL_OK ||
        ll_json_get_str(body, "system", &s_sys, &has_sys, &err) != LL_OK ||
        ll_json_get_object(body, "parameters", &params, &err) != LL_OK ||
        ll_json_get_array(body, "messages", &msgs, &err) != LL_OK ||
        ll_json_get_bool(body, "stream", &stream, NULL, &err) != LL_OK)
        goto fail;
    prog.stream = stream;
    if (ll_json_get_str(body, "quantize", &s_q, &has_q, &err) != LL_OK) goto fail;
    if (!has_q && ll_json_get_str(body, "quantization", &s_q, &has_q, &err) != LL_OK) goto fail;
    lic = ll_json_field(body, "license");
    ll_model_name name;
    if (ll_name_parse(&name, model, &err) != LL_OK) { snprintf(err.msg, sizeof err.msg, "invalid model name"); goto fail; }
    const char *quant = NULL;
    if (has_q && s_q.n && !(quant = quant_canonical(s_q))) {
        snprintf(err.msg, sizeof err.msg, "unsupported quantization type %.*s - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0",
                 (int)(s_q.n > 40 ? 40 : s_q.n), s_q.p);
        goto fail;
    }
    if (adapters && json_object_size(adapters)) { snprintf(err.msg, sizeof err.msg, "adapters are not supported: LoRA adapters cannot be applied yet"); goto fail; }
    bool has_files = files && json_object_size(files) > 0;
    if ((s_from.n == 0) == !has_files) {
        snprintf(err.msg, sizeof err.msg, s_from.n ? "specify either 'from' or 'files', not both"
                                                   : "neither 'from' or 'files' was specified");
        goto fail;
    }
    if (!(mf = ll_modelfile_new())) { status = 500; snprintf(err.msg, sizeof err.msg, "out of memory"); goto fail; }
    if (has_tmpl && s_tmpl.n) {
        ll_tmpl *t = NULL;
        if (ll_tmpl_parse(&t, s_tmpl.p, s_tmpl.n, &err) != LL_OK) {
            char m2[300];
            snprintf(m2, sizeof m2, "template error: %.250s", err.msg);
            memcpy(err.msg, m2, sizeof err.msg - 1); err.msg[sizeof err.msg - 1] = 0;
            goto fail;
        }
        ll_tmpl_free(t);
        mf->template_text = ll_str_dup(s_tmpl);
    }
    if (has_sys && s_sys.n) mf->system = ll_str_dup(s_sys);
    /* recorded in the config blob (§1.8, §4.4) */
    static const char *const cfg_keys[] = { "renderer", "parser", "requires" };
    char **cfg_dst[] = { &mf->renderer, &mf->parser, &mf->requires };
    for (size_t i = 0; i < 3; i++) {
        ll_str v = { NULL, 0 };
        bool has = false;
        if (ll_json_get_str(body, cfg_keys[i], &v, &has, &err) != LL_OK) goto fail;
        if (has && v.n && !(*cfg_dst[i] = ll_str_dup(v))) { status = 500; snprintf(err.msg, sizeof err.msg, "out of memory"); goto fail; }
    }
    if (params) mf->params = json_deep_copy(params);
    if (lic) {
        size_t nl = json_is_array(lic) ? json_array_size(lic) : 1;
        mf->licenses = ll_calloc(nl ? nl : 1, sizeof *mf->licenses);
        for (size_t i = 0; mf->licenses && i < nl; i++) {
            json_t *v = json_is_array(lic) ? json_array_get(lic, i) : lic;
            if (!json_is_string(v)) { snprintf(err.msg, sizeof err.msg, "license must be a string or an array of strings"); goto fail; }
            mf->licenses[mf->n_licenses++] = ll_str_dup(ll_json_str(v));
        }
    }
    if (msgs && json_array_size(msgs)) {
        size_t nm = json_array_size(msgs);
        mf->messages = ll_calloc(nm, sizeof *mf->messages);
        for (size_t i = 0; mf->messages && i < nm; i++) {
            json_t *mm = json_array_get(msgs, i);
            ll_str r = { "", 0 }, c = { "", 0 };
            if (!json_is_object(mm)) { snprintf(err.msg, sizeof err.msg, "messages must be objects with a role and a content"); goto fail; }
            if (ll_json_get_str(mm, "role", &r, NULL, &err) != LL_OK || ll_json_get_str(mm, "content", &c, NULL, &err) != LL_OK) goto fail;
            mf->messages[i].role = ll_str_dup(r);
            mf->messages[i].content = ll_str_dup(c);
            mf->n_messages++;
        }
    }
    ll_create_opts co = { .mf = mf, .progress = create_on_progress, .progress_user = &prog };
    ll_digest blob;
    ll_model_name base;
    char gguf_for_detect[1100] = "", src_type[32] = "", quant_tmp[1200] = "", base_gguf[1100] = "";
    if (has_files) {
        const char *key, *first = NULL;
        json_t *v, *pick = NULL;
        json_object_foreach(files, key, v) {
            if (key[0] == '/' || strstr(key, "..")) { snprintf(err.msg, sizeof err.msg, "file path must be relative"); goto fail; }
            if (!json_is_string(v) || ll_digest_parse(&blob, json_string_value(v), &err) != LL_OK) {
                snprintf(err.msg, sizeof err.msg, "invalid digest format");
                goto fail;
            }
            if (!pick || (strlen(key) > 5 && !strcmp(key + strlen(key) - 5, ".gguf"))) { pick = v; first = key; }
        }
        ll_digest_parse(&blob, json_string_value(pick), &err);
        if (!ll_store_blob_exists(ctx->store, &blob, NULL)) {
            snprintf(err.msg, sizeof err.msg, "blob sha256:%s for '%s' not found; upload it with POST /api/blobs first", blob.hex, first);
            goto fail;
        }
        co.gguf_blob = &blob;
        co.parent = NULL;
        ll_store_blob_path(ctx->store, &blob, gguf_for_detect, sizeof gguf_for_detect);
        /* §1.8 type detection: a .gguf name or the GGUF magic; safetensors is not imported */
        if (!has_suffix(first, ".gguf") && !file_has_gguf_magic(gguf_for_detect)) {
            snprintf(err.msg, sizeof err.msg, "unknown type");
            goto fail;
        }
    } else {
        from = ll_str_dup(s_from);
        if (looks_like_path(from)) {
            co.gguf_path = from;
            snprintf(gguf_for_detect, sizeof gguf_for_detect, "%s", from);
        } else {
            api_model bm;
            bool found = false;
            if (api_model_open(ctx, from, &bm, &found, &err) != LL_OK) {
                if (err.code == LL_ERR_ARG) snprintf(err.msg, sizeof err.msg, "invalid model name");
                else status = status_of(&err);
                goto fail;
            }
            if (!found) { status = 404; snprintf(err.msg, sizeof err.msg, "model '%s' not found", from); goto fail; }
            base = bm.name;
            if (quant) {
                ll_model_details d;
                memset(&d, 0, sizeof d);
                ll_error e2 = { 0 };
                if (ll_store_details(ctx->store, bm.manifest, &d, &e2) == LL_OK && d.quantization_level)
                    snprintf(src_type, sizeof src_type, "%s", d.quantization_level);
                ll_model_details_clear(&d);
                snprintf(base_gguf, sizeof base_gguf, "%s", bm.mf->from[0]);   /* its model blob */
            }
            api_model_close(&bm);
            co.from_model = &base;
            co.parent = from;
        }
    }
    /* No quantizer yet: a create may only "quantize" to the type the source already has. */
    if (quant && gguf_for_detect[0]) {
        ll_error e2 = { 0 };
        if (ll_store_gguf_file_type(gguf_for_detect, src_type, sizeof src_type, &e2) != LL_OK) {
            status = status_of(&e2);
            snprintf(err.msg, sizeof err.msg, "%s", e2.msg);
            goto fail;
        }
    }
    if (quant && strcasecmp(src_type, quant)) {
        /* §1.8: only a float source is quantized, with the engine's own quantizer (issue 10:
         * the bytes llama-quantize writes), into a file beside the blobs that the create then
         * takes as its model layer. */
        if (strcasecmp(src_type, "F16") && strcasecmp(src_type, "BF16") && strcasecmp(src_type, "F32")) {
            snprintf(err.msg, sizeof err.msg, "quantization is only supported for F16, BF16 and F32 models");
            goto fail;
        }
        const char *qsrc = gguf_for_detect[0] ? gguf_for_detect : base_gguf;
        if (!qsrc[0]) { snprintf(err.msg, sizeof err.msg, "the model to quantize has no model layer"); goto fail; }
        const ll_ftype_info *ft = ll_ftype_find(quant);
        if (!ft) { snprintf(err.msg, sizeof err.msg, "unsupported quantization type %s", quant); goto fail; }
        create_on_progress(&prog, "parsing GGUF");
        char line[96];
        snprintf(line, sizeof line, "quantizing %s model to %s", src_type, quant);
        create_on_progress(&prog, line);
        snprintf(quant_tmp, sizeof quant_tmp, "%s/blobs/quantize-%llx-%s.gguf", ll_store_root(ctx->store),
                 (unsigned long long)ll_time_ns(), quant);
        ll_quantize_params qp;
        ll_quantize_params_default(&qp);
        qp.ftype = ft->ftype;
        qp.cancel = prog.s ? ll_http_stream_cancel_flag(prog.s) : ll_http_req_cancel_flag(req);
        ll_quantize_result qr;
        if (ll_quantize_file(qsrc, quant_tmp, &qp, &qr, &err) != LL_OK) {
            status = err.code == LL_ERR_NOMEM || err.code == LL_ERR_IO ? 500 : 400;
            quant_tmp[0] = 0;
            goto fail;
        }
        if (co.from_model) {
            co.model_path = quant_tmp;          /* the base's other layers are inherited */
        } else {
            co.gguf_blob = NULL;
            co.gguf_path = quant_tmp;
            snprintf(gguf_for_detect, sizeof gguf_for_detect, "%.*s", (int)sizeof gguf_for_detect - 1, quant_tmp);
        }
    }
    /* From here on the client sees progress; failures become inline error lines. */
    if (gguf_for_detect[0]) create_on_progress(&prog, "parsing GGUF");
    /* A bare GGUF without a TEMPLATE gets its family's template (§10). */
    if (gguf_for_detect[0] && !mf->template_text) {
        ll_gguf *g = NULL;
        ll_error e2 = { 0 };
        if (ll_gguf_open(&g, gguf_for_detect, &e2) == LL_OK) {
            ll_str ct; bool found = false;
            if (ll_gguf_get_str(g, "tokenizer.chat_template", &ct, &found, &e2) == LL_OK && found) {
                char *cts = ll_str_dup(ct);
                const char *tname = NULL; const char *const *stops = NULL;
                tmpl_auto = cts ? api_template_for_gguf(cts, &tname, &stops) : NULL;
                ll_free(cts);
                if (tmpl_auto) {
                    char line[128];
                    snprintf(line, sizeof line, "using autodetected template %s", tname);
                    create_on_progress(&prog, line);
                    mf->template_text = tmpl_auto;
                    tmpl_auto = NULL;
                    if (!mf->params) mf->params = json_object();
                    if (!json_object_get(mf->params, "stop")) {
                        json_t *sl = json_array();
                        for (size_t i = 0; stops[i]; i++) json_array_append_new(sl, json_string(stops[i]));
                        json_object_set_new(mf->params, "stop", sl);
                    }
                }
            }
            ll_gguf_close(g);
        } else {
            status = e2.code == LL_ERR_IO ? 500 : 400;
            snprintf(err.msg, sizeof err.msg, "%s", e2.msg);
            goto fail;
        }
    }
    if (mf->params && json_object_size(mf->params) == 0) { json_decref(mf->params); mf->params = NULL; }
    if (ll_store_create(ctx->store, &name, &co, &err) != LL_OK) { status = status_of(&err); goto fail; }
    /* The model changed: a loaded instance of the old one must not serve it any more. */
    char full[LL_NAME_FULL_MAX];
    ll_name_full(&name, full, sizeof full);
    ll_runners_unload(ctx->runners, full);
    create_on_progress(&prog, "success");
    if (prog.s) { ll_http_stream_end(prog.s); prog.s = NULL; }
    else if (stream) ll_http_resp_error(resp, 500, "create ended without a response stream");
    else ll_http_resp_json(resp, 200, json_pack("{s:s}", "status", "success"));
    goto out;
fail:
    if (prog.s) {                       /* §0.6.2: after the first line, errors are inline */
        ll_http_stream_error(prog.s, err.msg);
        ll_http_stream_end(prog.s);
        prog.s = NULL;
    } else {
        ll_http_resp_error(resp, status, "%s", err.msg);
    }
out:
    if (quant_tmp[0]) unlink(quant_tmp);    /* copied into its blob by the create, or failed */
    ll_modelfile_free(mf);
    ll_free(tmpl_auto);
    ll_free(from);
    ll_free(model);
    json_decref(body);
}

static void api_create(ll_http_req *req, ll_http_resp *resp, void *arg) {
    api_job_run(arg, req, resp, create_run, NULL);
}

void ll_api_ollama_drain(ll_api_ctx *ctx) {
    while (atomic_load(&ctx->n_background) > 0) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* ---- POST /api/copy, DELETE /api/delete -------------------------------------------------- */

static void api_copy(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_error err = { 0 };
    json_t *body;
    if (ll_http_req_json(req, resp, &body) != LL_OK) return;
    ll_str src = { "", 0 }, dst = { "", 0 };
    char *s = NULL, *d = NULL;
    if (ll_json_get_str(body, "source", &src, NULL, &err) != LL_OK ||
        ll_json_get_str(body, "destination", &dst, NULL, &err) != LL_OK) {
        ll_http_resp_error(resp, 400, "%s", err.msg);
        goto out;
    }
    s = ll_str_dup(src);
    d = ll_str_dup(dst);
    ll_model_name ns, nd;
    bool found = false;
    if (ll_name_parse(&ns, s, &err) != LL_OK) { ll_http_resp_error(resp, 400, "source \"%s\" is invalid", s); goto out; }
    if (ll_name_parse(&nd, d, &err) != LL_OK) { ll_http_resp_error(resp, 400, "destination \"%s\" is invalid", d); goto out; }
    if (ll_store_copy(ctx->store, &ns, &nd, &found, &err) != LL_OK) { ll_http_resp_error(resp, status_of(&err), "%s", err.msg); goto out; }
    if (!found) { ll_http_resp_error(resp, 404, "model \"%s\" not found", s); goto out; }
    ll_http_resp_empty(resp, 200);
out:
    ll_free(s);
    ll_free(d);
    json_decref(body);
}

static void api_delete(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_error err = { 0 };
    json_t *body;
    if (ll_http_req_json(req, resp, &body) != LL_OK) return;
    char *model = NULL;
    if (api_body_model(body, true, &model, &err) != LL_OK) { ll_http_resp_error(resp, 400, "%s", err.msg); goto out; }
    if (!*model) { ll_http_resp_error(resp, 400, "model is required"); goto out; }
    ll_model_name n, r;
    bool found = false;
    if (ll_name_parse(&n, model, &err) != LL_OK) { ll_http_resp_error(resp, 400, "name \"%s\" is invalid", model); goto out; }
    if (ll_store_resolve(ctx->store, &n, &r, &found, &err) != LL_OK) { ll_http_resp_error(resp, 500, "%s", err.msg); goto out; }
    if (found && ll_store_delete(ctx->store, &r, &found, &err) != LL_OK) { ll_http_resp_error(resp, status_of(&err), "%s", err.msg); goto out; }
    if (!found) { ll_http_resp_error(resp, 404, "model '%s' not found", model); goto out; }
    char full[LL_NAME_FULL_MAX];
    ll_name_full(&r, full, sizeof full);
    ll_runners_unload(ctx->runners, full);       /* §1.10: SHOULD unload */
    ll_http_resp_empty(resp, 200);
out:
    ll_free(model);
    json_decref(body);
}

/* ---- HEAD/POST /api/blobs/:digest ------------------------------------------------------------ */

static bool req_digest(ll_http_req *req, ll_digest *d) {
    ll_error e = { 0 };
    char buf[128];
    ll_str p = ll_http_req_param(req);
    if (p.n >= sizeof buf) return false;
    memcpy(buf, p.p, p.n);
    buf[p.n] = 0;
    return ll_digest_parse(d, buf, &e) == LL_OK;
}

static void api_blob_head(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_digest d;
    if (!req_digest(req, &d)) { ll_http_resp_error(resp, 400, "invalid digest format"); return; }
    if (!ll_store_blob_exists(ctx->store, &d, NULL)) {
        ll_str p = ll_http_req_param(req);
        ll_http_resp_error(resp, 404, "blob \"%.*s\" not found", LL_STR(p));
        return;
    }
    ll_http_resp_empty(resp, 200);
}

typedef struct {
    ll_blob_writer *w;
    ll_digest       d;
    bool            existed;
} blob_upload;

static void blob_upload_free(void *p) {
    blob_upload *u = p;
    if (u) ll_blob_writer_abort(u->w);
    ll_free(u);
}

/* The sink gets the route's context, as handlers do. */
static bool api_blob_sink(ll_http_req *req, ll_http_resp *resp, const char *data, size_t n, void *arg) {
    ll_api_ctx *blob_ctx = arg;
    ll_error err = { 0 };
    blob_upload *u = ll_http_req_user(req);
    if (!data && !u) {
        ll_digest d;
        if (!req_digest(req, &d)) { ll_http_resp_error(resp, 400, "invalid digest format"); return false; }
        if (!(u = ll_calloc(1, sizeof *u))) { ll_http_resp_error(resp, 500, "out of memory"); return false; }
        u->d = d;
        ll_http_req_set_user(req, u, blob_upload_free);
        if (ll_store_blob_exists(blob_ctx->store, &d, NULL)) { u->existed = true; ll_http_resp_empty(resp, 200); return false; }
        if (ll_blob_writer_open(&u->w, blob_ctx->store, 0, &err) != LL_OK) {
            ll_http_resp_error(resp, status_of(&err), "%s", err.msg);
            return false;
        }
        return true;
    }
    if (!u || !u->w || n == 0) return true;
    if (ll_blob_writer_write(u->w, data, n, &err) != LL_OK) {
        ll_http_resp_error(resp, status_of(&err), "%s", err.msg);
        return false;
    }
    return true;
}

static void api_blob_post(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_error err = { 0 };
    blob_upload *u = ll_http_req_user(req);
    if (!u) { ll_http_resp_error(resp, 400, "invalid digest format"); return; }
    if (u->existed) { ll_http_resp_empty(resp, 200); return; }
    if (!u->w) { ll_http_resp_error(resp, 500, "upload failed"); return; }
    ll_blob_writer *w = u->w;
    u->w = NULL;
    bool existed = false;
    if (ll_blob_writer_commit(w, &u->d, NULL, NULL, &existed, &err) != LL_OK) {
        ll_http_resp_error(resp, status_of(&err), "%s", err.msg);
        return;
    }
    ll_http_resp_empty(resp, existed ? 200 : 201);
}

ll_status api_models_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    if (ll_router_set_handler(r, "GET", "/api/tags", api_tags, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/api/show", api_show, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "GET", "/api/ps", api_ps, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/api/create", api_create, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/api/copy", api_copy, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "DELETE", "/api/delete", api_delete, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "HEAD", "/api/blobs/:digest", api_blob_head, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/api/blobs/:digest", api_blob_post, ctx, err) != LL_OK ||
        ll_router_set_body_sink(r, "POST", "/api/blobs/:digest", api_blob_sink, err) != LL_OK)
        return err->code;
    return LL_OK;
}
