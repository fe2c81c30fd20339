/* gotmpl_data: the Go types Ollama gives its templates, described over our JSON tree, and the
 * request -> Values mapping of Ollama's server/routes.go (GenerateHandler, ChatHandler) and
 * the mode choice of template/template.go (Execute, collate).
 *
 * The type tables mirror Ollama v0.33.0-rc2: template.templateMessage & co. (template.go) and
 * api.ToolProperty (api/types.go). `key` is the name in the API JSON we store, `jkey` the name
 * json.Marshal writes (the json tag, or the Go name for the untagged template structs). */
#include "template/gotmpl_impl.h"

#include <ctype.h>
#include <stdlib.h>

/* ---- Go types ---- */

const tm_type tm_t_any = { TY_ANY, STR_NONE, false, "interface {}", NULL, NULL, NULL, 0 };
const tm_type tm_t_string = { TY_STRING, STR_NONE, false, "string", NULL, NULL, NULL, 0 };
const tm_type tm_t_bool = { TY_BOOL, STR_NONE, false, "bool", NULL, NULL, NULL, 0 };
const tm_type tm_t_int = { TY_INT, STR_NONE, false, "int", NULL, NULL, NULL, 0 };
const tm_type tm_t_float = { TY_FLOAT, STR_NONE, false, "float64", NULL, NULL, NULL, 0 };
const tm_type tm_t_slice_any = { TY_SLICE, STR_NONE, false, "[]interface {}", NULL, &tm_t_any, NULL, 0 };
const tm_type tm_t_map_any = { TY_MAP, STR_NONE, false, "map[string]interface {}", NULL, &tm_t_any, NULL, 0 };
static const tm_type t_strings = { TY_SLICE, STR_NONE, false, "[]string", NULL, &tm_t_string, NULL, 0 };
static const tm_type t_proptype = { TY_PROPTYPE, STR_PROPTYPE, false, "api.PropertyType", NULL, &tm_t_string, NULL, 0 };

extern const tm_type tm_t_property;
static const tm_type t_property_slice = { TY_SLICE, STR_NONE, false, "[]api.ToolProperty", NULL, &tm_t_property, NULL, 0 };
static const tm_type t_propmap = { TY_OMAP, STR_NONE, true, "*api.ToolPropertiesMap", "properties map", &tm_t_property, NULL, 0 };
static const tm_field f_property[] = {
    { "AnyOf", "anyOf", "anyOf", &t_property_slice, true },
    { "Type", "type", "type", &t_proptype, true },
    { "Items", "items", "items", &tm_t_any, true },
    { "Description", "description", "description", &tm_t_string, true },
    { "Enum", "enum", "enum", &tm_t_slice_any, true },
    { "Properties", "properties", "properties", &t_propmap, true },
    { "Required", "required", "required", &t_strings, true },
};
const tm_type tm_t_property = { TY_STRUCT, STR_NONE, false, "api.ToolProperty", "tool property", NULL, f_property, 7 };
static const tm_type t_props = { TY_MAP, STR_JSON_NILOBJ, false, "template.templateProperties", NULL, &tm_t_property, NULL, 0 };
static const tm_field f_params[] = {
    { "Type", "type", "type", &tm_t_string, false },
    { "Defs", "$defs", "$defs", &tm_t_any, true },
    { "Items", "items", "items", &tm_t_any, true },
    { "Required", "required", "required", &t_strings, true },
    { "Properties", "properties", "properties", &t_props, false },
};
/* Fields as Ollama's struct has them, for templates that walk them; marshalled by `json` as
 * the request gave it (gotmpl_exec.c json_val, §5 D10), not through these fields. */
const tm_type tm_t_params = { TY_STRUCT, STR_NONE, false, "template.templateToolFunctionParameters", "tool parameters", NULL, f_params, 5 };
static const tm_field f_toolfunc[] = {
    { "Name", "name", "name", &tm_t_string, false },
    { "Description", "description", "description", &tm_t_string, false },
    { "Parameters", "parameters", "parameters", &tm_t_params, false },
};
static const tm_type t_toolfunc = { TY_STRUCT, STR_NONE, false, "template.templateToolFunction", "tool function", NULL, f_toolfunc, 3 };
static const tm_field f_tool[] = {
    { "Type", "type", "type", &tm_t_string, false },
    { "Items", "items", "items", &tm_t_any, true },
    { "Function", "function", "function", &t_toolfunc, false },
};
static const tm_type t_tool = { TY_STRUCT, STR_JSON, false, "template.templateTool", "tool", NULL, f_tool, 3 };
const tm_type tm_t_tools = { TY_SLICE, STR_JSON, false, "template.templateTools", NULL, &t_tool, NULL, 0 };

static const tm_type t_args = { TY_MAP, STR_JSON_NILOBJ, false, "template.templateArgs", NULL, &tm_t_any, NULL, 0 };
static const tm_field f_tcfunc[] = {
    { "Index", "index", "Index", &tm_t_int, false },
    { "Name", "name", "Name", &tm_t_string, false },
    { "Arguments", "arguments", "Arguments", &t_args, false },
};
static const tm_type t_tcfunc = { TY_STRUCT, STR_NONE, false, "template.templateToolCallFunction", "tool call function", NULL, f_tcfunc, 3 };
static const tm_field f_toolcall[] = {
    { "ID", "id", "ID", &tm_t_string, false },
    { "Function", "function", "Function", &t_tcfunc, false },
};
static const tm_type t_toolcall = { TY_STRUCT, STR_NONE, false, "template.templateToolCall", "tool call", NULL, f_toolcall, 2 };
static const tm_type t_toolcalls = { TY_SLICE, STR_NONE, false, "[]template.templateToolCall", NULL, &t_toolcall, NULL, 0 };
static const tm_type t_bytes = { TY_BYTES, STR_NONE, false, "api.ImageData", NULL, NULL, NULL, 0 };
static const tm_type t_images = { TY_SLICE, STR_NONE, false, "[]api.ImageData", NULL, &t_bytes, NULL, 0 };
static const tm_field f_message[] = {
    { "Role", "role", "Role", &tm_t_string, false },
    { "Content", "content", "Content", &tm_t_string, false },
    { "Thinking", "thinking", "Thinking", &tm_t_string, false },
    { "Images", "images", "Images", &t_images, false },
    { "ToolCalls", "tool_calls", "ToolCalls", &t_toolcalls, false },
    { "ToolName", "tool_name", "ToolName", &tm_t_string, false },
    { "ToolCallID", "tool_call_id", "ToolCallID", &tm_t_string, false },
};
static const tm_type t_message = { TY_STRUCT, STR_NONE, true, "*template.templateMessage", "message", NULL, f_message, 7 };
const tm_type tm_t_messages = { TY_SLICE, STR_NONE, false, "[]*template.templateMessage", NULL, &t_message, NULL, 0 };
static const tm_field f_root[] = {
    { "Messages", "Messages", "Messages", &tm_t_messages, false },
    { "Tools", "Tools", "Tools", &tm_t_tools, false },
};
const tm_type tm_t_root = { TY_MAP, STR_NONE, false, "map[string]interface {}", NULL, &tm_t_any, f_root, 2 };

/* ---- normalise API JSON the way Go's json.Unmarshal reads it into those types ---- */

#define NORM_MAX_DEPTH 128

static bool b64_ok(const char *s, size_t n) {
    size_t pad = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') continue;          /* Go's StdEncoding skips them */
        if (c == '=') { pad++; k++; continue; }
        if (pad || !(isalnum(c) || c == '+' || c == '/')) return false;
        k++;
    }
    return k % 4 == 0 && pad <= 2;
}

/* *out: a new reference, or NULL for JSON null (the Go zero value) */
static ll_status norm(const json_t *src, const tm_type *t, const char *path, int depth,
                      json_t **out, ll_error *err) {
    *out = NULL;
    if (!src || json_is_null(src)) return LL_OK;
    if (depth > NORM_MAX_DEPTH)
        return ll_fail(err, LL_ERR_FORMAT, "%s: nested deeper than %d", path, NORM_MAX_DEPTH);
    const char *want = NULL;
    switch (t->kind) {
    case TY_ANY: *out = json_incref((json_t *)src); return LL_OK;
    case TY_STRING: if (!json_is_string(src)) want = "string"; break;
    case TY_BOOL: if (!json_is_boolean(src)) want = "bool"; break;
    case TY_INT: if (!json_is_integer(src)) want = "int"; break;
    case TY_FLOAT: if (!json_is_number(src)) want = "number"; break;
    case TY_BYTES:
        if (!json_is_string(src)) { want = "base64 string"; break; }
        if (!b64_ok(json_string_value(src), json_string_length(src)))
            return ll_fail(err, LL_ERR_FORMAT, "%s: illegal base64 data", path);
        break;
    case TY_PROPTYPE:
        if (json_is_string(src)) break;
        if (!json_is_array(src)) { want = "string or array of strings"; break; }
        for (size_t i = 0; i < json_array_size(src); i++)
            if (!json_is_string(json_array_get(src, i))) { want = "string or array of strings"; break; }
        break;
    case TY_SLICE: {
        if (!json_is_array(src)) { want = "array"; break; }
        json_t *a = json_array();
        if (!a) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < json_array_size(src); i++) {
            json_t *v;
            ll_status st = norm(json_array_get(src, i), t->elem, path, depth + 1, &v, err);
            if (st) { json_decref(a); return st; }
            if (json_array_append_new(a, v ? v : json_null())) { json_decref(a); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
        }
        *out = a;
        return LL_OK;
    }
    case TY_MAP: case TY_OMAP: {
        if (!json_is_object(src)) { want = "object"; break; }
        json_t *o = json_object();
        if (!o) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        const char *k; json_t *v;
        json_object_foreach((json_t *)src, k, v) {
            json_t *nv;
            ll_status st = norm(v, t->elem, path, depth + 1, &nv, err);
            if (st) { json_decref(o); return st; }
            if (json_object_set_new(o, k, nv ? nv : json_null())) { json_decref(o); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
        }
        *out = o;
        return LL_OK;
    }
    case TY_STRUCT: {
        if (!json_is_object(src)) { want = "object"; break; }
        json_t *o = json_object();
        if (!o) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        const char *k; json_t *v;
        json_object_foreach((json_t *)src, k, v) {
            /* Go: an exact key match wins, else a case-insensitive one; unknown keys dropped */
            const tm_field *f = NULL;
            for (size_t i = 0; i < t->n_fields && !f; i++) if (!strcmp(t->fields[i].key, k)) f = &t->fields[i];
            for (size_t i = 0; i < t->n_fields && !f; i++) if (!strcasecmp(t->fields[i].key, k)) f = &t->fields[i];
            if (!f) continue;
            char sub[128];
            snprintf(sub, sizeof sub, "%s.%s", path, f->key);
            json_t *nv;
            ll_status st = norm(v, f->t, sub, depth + 1, &nv, err);
            if (st) { json_decref(o); return st; }
            if (!nv) { json_object_del(o, f->key); continue; }
            if (json_object_set_new(o, f->key, nv)) { json_decref(o); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
        }
        *out = o;
        return LL_OK;
    }
    }
    if (want) return ll_fail(err, LL_ERR_FORMAT, "%s: expected %s", path, want);
    *out = json_incref((json_t *)src);
    return LL_OK;
}

static ll_status norm_messages(json_t *dst, const json_t *src, const char *path, ll_error *err) {
    if (!src || json_is_null(src)) return LL_OK;
    if (!json_is_array(src)) return ll_fail(err, LL_ERR_FORMAT, "%s: expected array", path);
    for (size_t i = 0; i < json_array_size(src); i++) {
        json_t *m;
        ll_status st = norm(json_array_get(src, i), &t_message, path, 1, &m, err);
        if (st) return st;
        if (!m) m = json_object();              /* null message: the zero Message */
        if (!m) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        /* api.Message.UnmarshalJSON lower-cases the role */
        json_t *role = json_object_get(m, "role");
        if (role) {
            char *low = ll_str_dup((ll_str){ json_string_value(role), json_string_length(role) });
            if (!low) { json_decref(m); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
            for (char *c = low; *c; c++) *c = (char)tolower((unsigned char)*c);
            json_object_set_new(m, "role", json_stringn(low, json_string_length(role)));
            ll_free(low);
        }
        if (json_array_append_new(dst, m)) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    return LL_OK;
}

static const char *msg_str(const json_t *m, const char *key, size_t *n) {
    const json_t *v = json_object_get(m, key);
    if (!json_is_string(v)) { *n = 0; return ""; }
    *n = json_string_length(v);
    return json_string_value(v);
}

/* api.ThinkValue: true/false or "high"/"medium"/"low"/"max"; null = not set */
static ll_status set_think(json_t *vals, const json_t *think, bool model_thinking, ll_error *err) {
    bool set = think && !json_is_null(think), on = false;
    const char *level = "";
    if (set) {
        if (json_is_boolean(think)) { on = json_is_true(think); level = on ? "medium" : ""; }
        else if (json_is_string(think)) {
            level = json_string_value(think);
            if (strcmp(level, "high") && strcmp(level, "medium") && strcmp(level, "low") && strcmp(level, "max"))
                return ll_fail(err, LL_ERR_FORMAT, "invalid think value: \"%.40s\" (must be \"high\", \"medium\", \"low\", \"max\", true, or false)", level);
            on = true;
        } else return ll_fail(err, LL_ERR_FORMAT, "think must be a boolean or string (\"high\", \"medium\", \"low\", \"max\", true, or false)");
    } else if (model_thinking) { set = on = true; level = "medium"; }
    if (json_object_set_new(vals, "Think", json_boolean(on)) ||
        json_object_set_new(vals, "ThinkLevel", json_string(level)) ||
        json_object_set_new(vals, "IsThinkSet", json_boolean(set)))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    return LL_OK;
}

static const char *body_str(const json_t *body, const char *key) {
    const json_t *v = json_object_get(body, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

ll_status ll_tmpl_values_from_request(json_t **out, const json_t *body, const char *endpoint,
                                      const ll_tmpl_model *model, ll_error *err) {
    *out = NULL;
    static const ll_tmpl_model none = { 0 };
    if (!model) model = &none;
    if (!json_is_object(body)) return ll_fail(err, LL_ERR_FORMAT, "request body is not a JSON object");
    bool chat = endpoint && !strcmp(endpoint, "chat");
    if (!chat && (!endpoint || strcmp(endpoint, "generate")))
        return ll_fail(err, LL_ERR_ARG, "unknown endpoint '%.40s'", endpoint ? endpoint : "(null)");
    static const char *strs[] = { "prompt", "suffix", "system", "template" };
    for (size_t i = 0; !chat && i < 4; i++) {
        const json_t *v = json_object_get(body, strs[i]);
        if (v && !json_is_null(v) && !json_is_string(v))
            return ll_fail(err, LL_ERR_FORMAT, "%s: expected string", strs[i]);
    }
    json_t *vals = json_object(), *msgs = json_array();
    ll_status st = LL_OK;
    if (!vals || !msgs) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto fail; }
    const char *sys_model = model->system ? model->system : "";
    if (chat) {
        const json_t *req = json_object_get(body, "messages");
        json_t *reqn = json_array();
        if (!reqn) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto fail; }
        if ((st = norm_messages(reqn, req, "messages", err)) ||
            (st = norm_messages(msgs, model->messages, "model messages", err))) { json_decref(reqn); goto fail; }
        if (json_array_size(reqn) > 0) {
            size_t n;
            const char *role = msg_str(json_array_get(reqn, 0), "role", &n);
            if (strcmp(role, "system") && sys_model[0]) {
                json_t *s = json_pack("{s:s,s:s}", "role", "system", "content", sys_model);
                if (!s || json_array_insert_new(msgs, 0, s)) { json_decref(reqn); st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto fail; }
            }
        } else json_array_clear(msgs);   /* no messages: a load request, nothing to render */
        if (json_array_extend(msgs, reqn)) { json_decref(reqn); st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto fail; }
        json_decref(reqn);
        json_t *tools;
        if ((st = norm(json_object_get(body, "tools"), &tm_t_tools, "tools", 0, &tools, err))) goto fail;
        json_object_set_new(vals, "Tools", tools ? tools : json_null());
        json_object_set_new(vals, "Messages", msgs); msgs = NULL;
    } else {
        const json_t *ctx = json_object_get(body, "context");
        bool has_ctx = ctx && !json_is_null(ctx);
        if (json_is_true(json_object_get(body, "raw"))) {
            if (body_str(body, "template")[0] || body_str(body, "system")[0] ||
                (has_ctx && (!json_is_array(ctx) || json_array_size(ctx) > 0))) {
                st = ll_fail(err, LL_ERR_ARG, "raw mode does not support template, system, or context");
                goto fail;
            }
            json_decref(vals); json_decref(msgs);
            return LL_OK;                       /* the prompt is used verbatim */
        }
        const char *prompt = body_str(body, "prompt"), *suffix = body_str(body, "suffix");
        if (suffix[0]) {
            json_object_set_new(vals, "Prompt", json_string(prompt));
            json_object_set_new(vals, "Suffix", json_string(suffix));
        } else {
            const char *sys = body_str(body, "system");
            if (!sys[0]) sys = sys_model;
            if (sys[0]) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", sys));
            if (!has_ctx && (st = norm_messages(msgs, model->messages, "model messages", err))) goto fail;
            json_t *user = json_pack("{s:s,s:s}", "role", "user", "content", prompt);
            if (!user) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto fail; }
            json_t *imgs;
            if ((st = norm(json_object_get(body, "images"), &t_images, "images", 0, &imgs, err))) { json_decref(user); goto fail; }
            if (imgs) json_object_set_new(user, "images", imgs);
            json_array_append_new(msgs, user);
            json_object_set_new(vals, "Messages", msgs); msgs = NULL;
            /* the chat-like flow passes []api.Tool{}; a request template runs with nil tools */
            json_object_set_new(vals, "Tools", body_str(body, "template")[0] ? json_null() : json_array());
        }
    }
    if ((st = set_think(vals, json_object_get(body, "think"), model->thinking, err))) goto fail;
    json_decref(msgs);                          /* unused (suffix mode) or NULL */
    *out = vals;
    return LL_OK;
fail:
    json_decref(vals);
    json_decref(msgs);
    return st;
}

ll_status ll_tmpl_check_request(const ll_tmpl *t, const json_t *body, const char *endpoint,
                                const char *model_name, ll_error *err) {
    if (!model_name) model_name = "model";
    if (endpoint && !strcmp(endpoint, "chat")) {
        if (json_array_size(json_object_get(body, "tools")) > 0 && !ll_tmpl_uses(t, "tools"))
            return ll_fail(err, LL_ERR_UNSUPPORTED, "%s does not support tools", model_name);
    } else if (body_str(body, "suffix")[0] && !ll_tmpl_uses(t, "suffix")) {
        return ll_fail(err, LL_ERR_UNSUPPORTED, "%s does not support insert", model_name);
    }
    return LL_OK;
}

/* ---- Ollama's template.Execute ---- */

ll_status tm_exec_run_data(const ll_tmpl *t, const tm_node *root, const json_t *data, void *ex);
void *tm_exec_begin(const ll_tmpl *t, const ll_tmpl_limits *lim, ll_error *err);
ll_status tm_exec_end(void *ex, ll_status st, char **out, size_t *out_len);

static json_t *think_copy(json_t *dst, const json_t *values) {
    const json_t *v;
    json_object_set_new(dst, "Think", json_boolean(json_is_true(json_object_get(values, "Think"))));
    v = json_object_get(values, "ThinkLevel");
    json_object_set_new(dst, "ThinkLevel", json_is_string(v) ? json_incref((json_t *)v) : json_string(""));
    json_object_set_new(dst, "IsThinkSet", json_boolean(json_is_true(json_object_get(values, "IsThinkSet"))));
    return dst;
}

static bool str_append(json_t *s, const char *sep, const char *add, size_t add_n) {
    size_t a = json_string_length(s), b = strlen(sep);
    char *buf = ll_malloc(a + b + add_n + 1);
    if (!buf) return false;
    memcpy(buf, json_string_value(s), a);
    memcpy(buf + a, sep, b);
    memcpy(buf + a + b, add, add_n);
    int r = json_string_setn(s, buf, a + b + add_n);
    ll_free(buf);
    return r == 0;
}

/* collate: all system contents joined with "\n\n"; consecutive same-role messages merged
 * (not tool). Returns the collated array (new) and the system string (new). */
static ll_status collate(const json_t *msgs, json_t **collated, json_t **system, ll_error *err) {
    *collated = json_array();
    *system = json_string("");
    bool any_sys = false;
    if (!*collated || !*system) goto oom;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        size_t rn, cn;
        const char *role = msg_str(m, "role", &rn), *content = msg_str(m, "content", &cn);
        if (!strcmp(role, "system")) {
            if (!str_append(*system, any_sys ? "\n\n" : "", content, cn)) goto oom;
            any_sys = true;
        }
        size_t k = json_array_size(*collated);
        json_t *last = k ? json_array_get(*collated, k - 1) : NULL;
        size_t ln;
        if (last && !strcmp(msg_str(last, "role", &ln), role) && strcmp(role, "tool")) {
            json_t *c = json_object_get(last, "content");
            if (!c) { c = json_string(""); if (!c || json_object_set_new(last, "content", c)) goto oom; }
            if (!str_append(c, "\n\n", content, cn)) goto oom;
        } else {
            json_t *cp = json_is_object(m) ? json_copy((json_t *)m) : json_object();
            if (!cp) goto oom;
            json_t *c = json_object_get(cp, "content");   /* own the string we may extend */
            if (c) json_object_set_new(cp, "content", json_stringn(json_string_value(c), json_string_length(c)));
            if (json_array_append_new(*collated, cp)) goto oom;
        }
    }
    return LL_OK;
oom:
    json_decref(*collated); json_decref(*system);
    *collated = *system = NULL;
    return ll_fail(err, LL_ERR_NOMEM, "out of memory");
}

ll_status ll_tmpl_execute(const ll_tmpl *t, const json_t *values, const ll_tmpl_limits *lim,
                          char **out, size_t *out_len, ll_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return ll_fail(err, LL_ERR_ARG, "no template");
    if (!json_is_object(values)) return ll_fail(err, LL_ERR_ARG, "template values are not an object");
    json_t *collated = NULL, *system = NULL, *data = NULL;
    ll_status st = collate(json_object_get(values, "Messages"), &collated, &system, err);
    if (st) return st;
    void *ex = tm_exec_begin(t, lim, err);
    if (!ex) { json_decref(collated); json_decref(system); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
    const char *prompt = body_str(values, "Prompt"), *suffix = body_str(values, "Suffix");
    if (prompt[0] && suffix[0]) {
        data = json_pack("{s:s,s:s,s:s}", "Prompt", prompt, "Suffix", suffix, "Response", "");
        if (!data) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto done; }
        think_copy(data, values);
        st = tm_exec_run_data(t, t->root, data, ex);
    } else if (ll_tmpl_uses(t, "messages")) {
        data = json_object();
        if (!data) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto done; }
        const json_t *tools = json_object_get(values, "Tools");
        json_object_set(data, "System", system);
        json_object_set(data, "Messages", json_array_size(collated) ? collated : json_null());
        json_object_set_new(data, "Tools", tools ? json_incref((json_t *)tools) : json_null());
        json_object_set_new(data, "Response", json_string(""));
        think_copy(data, values);
        st = tm_exec_run_data(t, t->root, data, ex);
    } else {
        /* legacy: run once per exchange, the last run cut after {{ .Response }} */
        json_t *sys = json_string(""), *pr = json_string(""), *resp = json_string("");
        data = json_object();
        if (!sys || !pr || !resp || !data) {
            json_decref(sys); json_decref(pr); json_decref(resp);
            st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            goto done;
        }
        json_object_set_new(data, "System", sys);
        json_object_set_new(data, "Prompt", pr);
        json_object_set_new(data, "Response", resp);
        think_copy(data, values);
        for (size_t i = 0; i < json_array_size(collated) && !st; i++) {
            const json_t *m = json_array_get(collated, i);
            size_t rn, cn;
            const char *role = msg_str(m, "role", &rn), *content = msg_str(m, "content", &cn);
            bool flush = (!strcmp(role, "system") && (json_string_length(pr) || json_string_length(resp))) ||
                         (!strcmp(role, "user") && json_string_length(resp));
            if (flush) {
                st = tm_exec_run_data(t, t->root, data, ex);
                json_string_set(sys, ""); json_string_set(pr, ""); json_string_set(resp, "");
                if (st) break;
            }
            if (!strcmp(role, "system")) json_string_setn(sys, content, cn);
            else if (!strcmp(role, "user")) json_string_setn(pr, content, cn);
            else if (!strcmp(role, "assistant")) json_string_setn(resp, content, cn);
        }
        if (!st && t->cut_fails)
            st = ll_fail(err, LL_ERR_FORMAT, "template: {{ .Response }} sits in a block with an {{else}}: "
                         "the prompt cannot be cut there (Ollama fails the same way)");
        if (!st) st = tm_exec_run_data(t, t->root_cut, data, ex);
    }
done:
    json_decref(data);
    json_decref(collated);
    json_decref(system);
    return tm_exec_end(ex, st, out, out_len);
}
