/* server/api_anthropic: POST /v1/messages, Anthropic's Messages API (ollama-api.md §3).
 *
 * Like the /v1 OpenAI routes (api_openai.c) this is a thin adapter: the Messages request is
 * turned into a native /api/chat body and run by api_gen_run, and the native objects that come
 * back are turned into a Message (non-streamed) or into Anthropic's SSE event sequence
 * (message_start, content blocks, message_delta, message_stop). Every check of §1 therefore
 * applies unchanged (unknown model 404, images to a text model 400, tools capability, context
 * limits), and errors come out in the §3.5 shape because the router marks /v1/messages as the
 * Anthropic family; a stream that fails after its first event ends with `event: error` (§5 D7,
 * written by ll_http_stream_error).
 *
 * Where we differ from Ollama (§3, §5): "content" is [] rather than null when empty; the
 * stop reason is "stop_sequence" with the matched string when one of the request's
 * stop_sequences ended the answer (D20: the native final object names the stop string that
 * matched, see ANTH_STOP_KEY); a requested `thinking` is dropped for a model that cannot
 * think (§3.1 last paragraph); tool results also carry the tool's name, looked up from the
 * assistant's tool_use with the same id, so templates that print it can. */
#include "server/api_internal.h"
#include "server/thinking.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Where the native final object of an adapter run names the stop string that ended generation
 * (api_gen_run; absent when the end-of-turn token or the length limit ended it). */
#define ANTH_STOP_KEY "_stop_sequence"

/* ---- small helpers --------------------------------------------------------------------------- */

/* prefix + n random lowercase hex digits (§3.3: ids are msg_ + 24 hex). */
static void make_hex_id(char *buf, size_t cap, const char *prefix, size_t n) {
    static const char HEX[] = "0123456789abcdef";
    unsigned char r[32];
    if (n > 2 * sizeof r) n = 2 * sizeof r;
    if (getrandom(r, (n + 1) / 2, 0) != (ssize_t)((n + 1) / 2)) {
        uint64_t x = (uint64_t)ll_time_unix_ns() ^ (uintptr_t)buf;
        for (size_t i = 0; i < sizeof r; i++) { x = x * 6364136223846793005ULL + 1442695040888963407ULL; r[i] = (unsigned char)(x >> 33); }
    }
    size_t k = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < n && k + 1 < cap; i++) buf[k++] = HEX[(r[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    buf[k] = 0;
}

static json_int_t int_field(const json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Bytes of v as compact JSON, for the input token estimate. */
static size_t json_len(const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t n = s ? strlen(s) : 0;
    free(s);
    return n;
}

/* Check standard base64 the way Go's StdEncoding decodes it (CR and LF skipped, padding
 * required); on failure *bad is the offset Go would report. */
static bool base64_valid(const char *s, size_t n, size_t *bad) {
    size_t k = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n') continue;
        if (c == '=') {
            /* padding may only fill the last one or two places of a quantum */
            if (k % 4 < 2 || pad == 2) { *bad = i; return false; }
            pad++;
        } else if (pad || !(isalnum(c) || c == '+' || c == '/')) {
            *bad = i;
            return false;
        }
        k++;
    }
    if (k % 4 != 0) { *bad = n; return false; }
    return true;
}

/* ---- request mapping (§3.1, §3.2) ------------------------------------------------------------ */

/* State of one request's conversion. */
typedef struct {
    json_t *msgs;        /* the native messages being built */
    size_t  est_chars;   /* characters counted for the input token estimate (§3.4) */
} anth_req;

/* A growable text buffer for blocks whose texts are concatenated. */
typedef struct { char *p; size_t n, cap; } sbuf;

static bool sbuf_add(sbuf *b, const char *s, size_t k) {
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + k + 1) cap *= 2;
        char *p = ll_realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (k) memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
    return true;
}

static bool sbuf_add_json(sbuf *b, const json_t *s) {
    return !json_is_string(s) || sbuf_add(b, json_string_value(s), json_string_length(s));
}

/* An image block's base64 payload (§3.2), checked; borrowed. Only base64 sources exist for us:
 * fetching URLs is not something a local server should do on a client's behalf. */
static ll_status image_data(const json_t *block, json_t **out, ll_error *err) {
    json_t *src = ll_json_field(block, "source");
    if (!json_is_object(src)) return ll_fail(err, LL_ERR_ARG, "invalid image source");
    const char *ty = json_string_value(ll_json_field(src, "type"));
    if (!ty || strcmp(ty, "base64"))
        return ll_fail(err, LL_ERR_ARG, "invalid image source type: %s. Only base64 images are supported.", ty ? ty : "");
    json_t *d = ll_json_field(src, "data");
    size_t bad = 0;
    if (!json_is_string(d) || json_string_length(d) == 0)
        return ll_fail(err, LL_ERR_ARG, "invalid base64 image data: no data");
    if (!base64_valid(json_string_value(d), json_string_length(d), &bad))
        return ll_fail(err, LL_ERR_ARG, "invalid base64 image data: illegal base64 data at input byte %zu", bad);
    *out = d;
    return LL_OK;
}

/* A tool_result block → a native tool message (§3.2): content a string or text/image blocks. */
static ll_status tool_result_message(const anth_req *r, const json_t *block, json_t **out, ll_error *err) {
    json_t *c = ll_json_field(block, "content"), *images = json_array(), *id = ll_json_field(block, "tool_use_id");
    sbuf text = { 0 };
    ll_status st = LL_OK;
    if (!images) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (json_is_string(c)) {
        if (!sbuf_add_json(&text, c)) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
    } else if (json_is_array(c)) {
        for (size_t i = 0; i < json_array_size(c) && st == LL_OK; i++) {
            json_t *b = json_array_get(c, i), *img = NULL;
            const char *ty = json_string_value(ll_json_field(b, "type"));
            if (!ty) continue;
            if (!strcmp(ty, "text")) {
                if (!sbuf_add_json(&text, ll_json_field(b, "text"))) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            } else if (!strcmp(ty, "image")) {
                if ((st = image_data(b, &img, err)) == LL_OK) json_array_append(images, img);
            }
        }
    }
    if (st != LL_OK) { ll_free(text.p); json_decref(images); return st; }
    json_t *m = json_pack("{s:s, s:s%}", "role", "tool", "content", text.p ? text.p : "", text.n);
    ll_free(text.p);
    if (!m) { json_decref(images); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
    if (json_array_size(images)) json_object_set(m, "images", images);
    json_decref(images);
    if (json_is_string(id)) {
        json_object_set(m, "tool_call_id", id);
        /* the name of the latest assistant call with that id, for templates that print it */
        for (size_t i = json_array_size(r->msgs); i-- > 0;) {
            json_t *calls = json_object_get(json_array_get(r->msgs, i), "tool_calls"), *name = NULL;
            for (size_t k = 0; k < json_array_size(calls) && !name; k++)
                if (json_equal(json_object_get(json_array_get(calls, k), "id"), id))
                    name = json_object_get(json_object_get(json_array_get(calls, k), "function"), "name");
            if (name) { json_object_set(m, "tool_name", name); break; }
        }
    }
    *out = m;
    return LL_OK;
}

/* One Anthropic message → native messages appended to r->msgs (§3.2). Texts are joined with
 * no separator; tool results become their own "tool" messages, placed before the rest of a
 * user turn (they answer the previous assistant turn) and after the rest of any other. */
static ll_status map_message(anth_req *r, const json_t *m, size_t idx, ll_error *err) {
    if (!json_is_object(m)) return ll_fail(err, LL_ERR_ARG, "messages[%zu] must be an object", idx);
    json_t *rv = ll_json_field(m, "role"), *content = ll_json_field(m, "content");
    if (rv && !json_is_string(rv)) return ll_fail(err, LL_ERR_ARG, "messages[%zu].role must be a string", idx);
    char role[32];
    snprintf(role, sizeof role, "%s", rv ? json_string_value(rv) : "");
    for (char *p = role; *p; p++) *p = (char)tolower((unsigned char)*p);
    r->est_chars += strlen(role);
    if (content && !json_is_string(content) && !json_is_array(content))
        return ll_fail(err, LL_ERR_ARG, "messages[%zu].content must be a string or an array of content blocks", idx);

    sbuf text = { 0 };
    json_t *images = json_array(), *calls = json_array(), *results = json_array(), *thinking = NULL;
    ll_status st = LL_OK;
    if (!images || !calls || !results) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
    if (json_is_string(content)) {
        if (!sbuf_add_json(&text, content)) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        r->est_chars += json_string_length(content);
    }
    for (size_t i = 0; json_is_array(content) && i < json_array_size(content) && st == LL_OK; i++) {
        json_t *b = json_array_get(content, i), *v = NULL;
        if (!json_is_object(b)) { st = ll_fail(err, LL_ERR_ARG, "messages[%zu].content[%zu] must be an object", idx, i); break; }
        const char *ty = json_string_value(ll_json_field(b, "type"));
        if (!ty) ty = "";
        if (!strcmp(ty, "text")) {
            v = ll_json_field(b, "text");
            if (v && !json_is_string(v)) { st = ll_fail(err, LL_ERR_ARG, "messages[%zu].content[%zu].text must be a string", idx, i); break; }
            if (!sbuf_add_json(&text, v)) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            r->est_chars += json_string_length(v);
        } else if (!strcmp(ty, "image")) {
            if ((st = image_data(b, &v, err)) == LL_OK) json_array_append(images, v);
        } else if (!strcmp(ty, "tool_use")) {
            json_t *id = ll_json_field(b, "id"), *name = ll_json_field(b, "name"), *input = ll_json_field(b, "input");
            if (!json_is_string(id) || !json_string_length(id)) { st = ll_fail(err, LL_ERR_ARG, "tool_use block missing required 'id' field"); break; }
            if (!json_is_string(name) || !json_string_length(name)) { st = ll_fail(err, LL_ERR_ARG, "tool_use block missing required 'name' field"); break; }
            if (input && !json_is_object(input)) { st = ll_fail(err, LL_ERR_ARG, "tool_use block 'input' must be an object"); break; }
            json_t *call = json_pack("{s:O, s:{s:O, s:o}}", "id", id, "function", "name", name,
                                     "arguments", input ? json_incref(input) : json_object());
            if (!call || json_array_append_new(calls, call)) st = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            r->est_chars += json_len(b);
        } else if (!strcmp(ty, "tool_result")) {
            json_t *tm = NULL;
            if ((st = tool_result_message(r, b, &tm, err)) == LL_OK) json_array_append_new(results, tm);
            r->est_chars += json_len(b);
        } else if (!strcmp(ty, "thinking")) {
            v = ll_json_field(b, "thinking");
            if (json_is_string(v)) { thinking = v; r->est_chars += json_string_length(v); }
        }
        /* redacted_thinking, document and anything newer: ignored (§3.2) */
    }
    if (st != LL_OK) goto out;

    bool user = !strcmp(role, "user");
    if (user) json_array_extend(r->msgs, results);
    if (text.n || json_array_size(images) || json_array_size(calls) || json_string_length(thinking)) {
        json_t *nm = json_pack("{s:s, s:s%}", "role", role, "content", text.p ? text.p : "", text.n);
        if (!nm) { st = ll_fail(err, LL_ERR_NOMEM, "out of memory"); goto out; }
        if (json_string_length(thinking)) json_object_set(nm, "thinking", thinking);
        if (json_array_size(images)) json_object_set(nm, "images", images);
        if (json_array_size(calls)) json_object_set(nm, "tool_calls", calls);
        json_array_append_new(r->msgs, nm);
    }
    if (!user) json_array_extend(r->msgs, results);
out:
    ll_free(text.p);
    json_decref(images);
    json_decref(calls);
    json_decref(results);
    return st;
}

/* system: a string, or text blocks joined with no separator (§3.1). "" when absent. */
static ll_status map_system(const json_t *body, sbuf *out, ll_error *err) {
    json_t *sys = ll_json_field(body, "system");
    if (!sys) return LL_OK;
    if (json_is_string(sys)) return sbuf_add_json(out, sys) ? LL_OK : ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (!json_is_array(sys)) return ll_fail(err, LL_ERR_ARG, "system must be a string or an array of text blocks");
    for (size_t i = 0; i < json_array_size(sys); i++) {
        json_t *b = json_array_get(sys, i);
        const char *ty = json_string_value(ll_json_field(b, "type"));
        if (ty && !strcmp(ty, "text") && !sbuf_add_json(out, ll_json_field(b, "text")))
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    return LL_OK;
}

/* tools (§3.1): {name, description, input_schema} → native function tools, the schema passed
 * through unchanged (§5 D10). Server tools (web_search_*) run in Ollama's cloud; we have none.
 * Issue 11 (not in Ollama, which ignores both): "strict": true on a tool → its name in the
 * internal "_strict_tools" (input must follow input_schema exactly); tool_choice {"type":"any"}
 * → "_tool_choice": "required", {"type":"tool","name":N} → {"name":N}, {"type":"none"} → no
 * tools offered, {"type":"auto"} → nothing. */
static ll_status map_tools(const json_t *body, json_t *native, anth_req *r, ll_error *err) {
    json_t *tools = ll_json_field(body, "tools"), *choice = ll_json_field(body, "tool_choice");
    const char *ct = json_string_value(ll_json_field(choice, "type"));
    if (choice && (!json_is_object(choice) || !ct || (strcmp(ct, "auto") && strcmp(ct, "any") && strcmp(ct, "tool") && strcmp(ct, "none"))))
        return ll_fail(err, LL_ERR_ARG, "tool_choice: type must be one of 'auto', 'any', 'tool' or 'none'");
    if (ct && !strcmp(ct, "tool") && !json_is_string(ll_json_field(choice, "name")))
        return ll_fail(err, LL_ERR_ARG, "tool_choice.name: Field required");
    if (ct && (!strcmp(ct, "any") || !strcmp(ct, "tool")) && json_array_size(tools) == 0)
        return ll_fail(err, LL_ERR_ARG, "tool_choice: a tool use is required, but no tools were given");
    if (!tools || (ct && !strcmp(ct, "none"))) return LL_OK;
    if (!json_is_array(tools)) return ll_fail(err, LL_ERR_ARG, "tools must be an array");
    json_t *out = json_array();
    if (!out) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        if (!json_is_object(t)) { json_decref(out); return ll_fail(err, LL_ERR_ARG, "tools[%zu] must be an object", i); }
        const char *ty = json_string_value(ll_json_field(t, "type"));
        json_t *name = ll_json_field(t, "name"), *desc = ll_json_field(t, "description"), *schema = ll_json_field(t, "input_schema");
        if (ty && !strncmp(ty, "web_search", 10)) {
            LL_WARN("/v1/messages: dropping server tool '%s': web search is not available locally", ty);
            continue;
        }
        if (!json_is_string(name) || !json_string_length(name)) { json_decref(out); return ll_fail(err, LL_ERR_ARG, "tools[%zu].name is required", i); }
        if (schema && !json_is_object(schema)) {
            json_decref(out);
            return ll_fail(err, LL_ERR_ARG, "invalid input_schema for tool \"%s\": must be a JSON object", json_string_value(name));
        }
        json_t *fn = json_pack("{s:O}", "name", name);
        if (json_is_string(desc)) json_object_set(fn, "description", desc);
        if (schema) json_object_set(fn, "parameters", schema);
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
        r->est_chars += json_string_length(name) + json_string_length(desc) + (schema ? json_len(schema) : 0);
    }
    if (json_array_size(out)) json_object_set(native, "tools", out);
    json_decref(out);
    json_t *strict = json_array();
    for (size_t i = 0; strict && i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        if (json_is_true(ll_json_field(t, "strict"))) json_array_append(strict, ll_json_field(t, "name"));
    }
    if (json_array_size(strict)) json_object_set(native, "_strict_tools", strict);
    json_decref(strict);
    if (ct && !strcmp(ct, "any")) json_object_set_new(native, "_tool_choice", json_string("required"));
    if (ct && !strcmp(ct, "tool")) json_object_set_new(native, "_tool_choice", json_pack("{s:O}", "name", ll_json_field(choice, "name")));
    return LL_OK;
}

/* The native options: max_tokens → num_predict, sampling fields only when given, stop_sequences
 * → stop. *stops gets the request's list (a new reference, NULL when none) for §5 D20. */
static ll_status map_options(const json_t *body, int64_t max_tokens, json_t *native, json_t **stops, ll_error *err) {
    json_t *o = json_pack("{s:I}", "num_predict", (json_int_t)max_tokens);
    double d;
    int64_t k;
    bool has = false;
    if (!o) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    json_object_set_new(native, "options", o);
    static const char *const NUM[] = { "temperature", "top_p" };
    for (size_t i = 0; i < 2; i++) {
        if (ll_json_get_num(body, NUM[i], &d, &has, err) != LL_OK) return err->code;
        if (has) json_object_set_new(o, NUM[i], json_real(d));
    }
    if (ll_json_get_int(body, "top_k", INT32_MIN, INT32_MAX, &k, &has, err) != LL_OK) return err->code;
    if (has) json_object_set_new(o, "top_k", json_integer(k));
    json_t *ss = ll_json_field(body, "stop_sequences");
    if (ss) {
        if (!json_is_array(ss)) return ll_fail(err, LL_ERR_ARG, "stop_sequences must be an array of strings");
        for (size_t i = 0; i < json_array_size(ss); i++)
            if (!json_is_string(json_array_get(ss, i))) return ll_fail(err, LL_ERR_ARG, "stop_sequences must be an array of strings");
        if (json_array_size(ss)) {
            json_object_set(o, "stop", ss);
            *stops = json_incref(ss);
        }
    }
    return LL_OK;
}

/* Whether the model can think (§4.7.1 step 5): its template puts a tag pair around .Thinking,
 * the same test api_gen_run applies to think. A model that does not exist answers false;
 * api_gen_run then reports it. */
static bool model_can_think(ll_api_ctx *ctx, ll_str model) {
    char *name = ll_str_dup(model);
    api_model m;
    bool found = false, yes = false;
    ll_error e = { 0 };
    if (name && api_model_open(ctx, name, &m, &found, &e) == LL_OK && found) {
        ll_tmpl *t = NULL;
        char *open = NULL, *close = NULL;
        if (ll_tmpl_parse(&t, m.template_text, strlen(m.template_text), &e) == LL_OK) yes = ll_think_tags(t, &open, &close);
        ll_free(open);
        ll_free(close);
        ll_tmpl_free(t);
        api_model_close(&m);
    }
    ll_free(name);
    return yes;
}

/* thinking (§3.1): {"type":"enabled"} → think:true, {"type":"disabled"} → think:false
 * (budget_tokens ignored); without it, output_config.effort low/medium/high/max → that level
 * (xhigh → high). A think request to a model that cannot think is dropped rather than
 * refused with the 400 of §1.0.5; false is always passed on. */
static ll_status map_think(ll_api_ctx *ctx, const json_t *body, ll_str model, json_t *native, ll_error *err) {
    json_t *th = ll_json_field(body, "thinking"), *think = NULL;
    if (th && !json_is_object(th)) return ll_fail(err, LL_ERR_ARG, "thinking must be an object");
    const char *tt = json_string_value(ll_json_field(th, "type"));
    if (tt && !strcmp(tt, "disabled")) {
        json_object_set_new(native, "think", json_false());
        return LL_OK;
    }
    if (tt && !strcmp(tt, "enabled")) {
        think = json_true();
    } else {
        const char *e = json_string_value(ll_json_field(ll_json_field(body, "output_config"), "effort"));
        char lv[16] = "";
        for (size_t i = 0; e && *e && i + 1 < sizeof lv; e++)
            if (!isspace((unsigned char)*e)) lv[i++] = (char)tolower((unsigned char)*e);
        if (!strcmp(lv, "xhigh")) strcpy(lv, "high");
        if (!strcmp(lv, "low") || !strcmp(lv, "medium") || !strcmp(lv, "high") || !strcmp(lv, "max")) think = json_string(lv);
    }
    if (think && model_can_think(ctx, model)) json_object_set(native, "think", think);
    json_decref(think);
    return LL_OK;
}

/* The whole request → a native /api/chat body (§3.1). *est: the input token estimate. */
static ll_status map_request(ll_api_ctx *ctx, const json_t *body, json_t **out, json_t **stops, json_int_t *est, ll_error *err) {
    ll_str model = { "", 0 };
    int64_t max_tokens = 0;
    bool stream = false, has_max = false;
    json_t *msgs = NULL;
    sbuf sys = { 0 };
    anth_req r = { 0 };
    *out = NULL;
    *stops = NULL;
    if (ll_json_get_str(body, "model", &model, NULL, err) != LL_OK) return err->code;
    if (model.n == 0) return ll_fail(err, LL_ERR_ARG, "model is required");
    if (ll_json_get_int(body, "max_tokens", INT64_MIN, INT64_MAX, &max_tokens, &has_max, err) != LL_OK) return err->code;
    if (!has_max || max_tokens <= 0) return ll_fail(err, LL_ERR_ARG, "max_tokens is required and must be positive");
    if (ll_json_get_array(body, "messages", &msgs, err) != LL_OK) return err->code;
    if (json_array_size(msgs) == 0) return ll_fail(err, LL_ERR_ARG, "messages is required");
    if (ll_json_get_bool(body, "stream", &stream, NULL, err) != LL_OK) return err->code;

    json_t *native = json_pack("{s:s%, s:[], s:b}", "model", model.p, model.n, "messages", "stream", stream);
    if (!native) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    r.msgs = json_object_get(native, "messages");
    if (map_system(body, &sys, err) != LL_OK) goto fail;
    r.est_chars += sys.n;
    if (sys.n) json_array_append_new(r.msgs, json_pack("{s:s, s:s%}", "role", "system", "content", sys.p, sys.n));
    for (size_t i = 0; i < json_array_size(msgs); i++)
        if (map_message(&r, json_array_get(msgs, i), i, err) != LL_OK) goto fail;
    if (map_options(body, max_tokens, native, stops, err) != LL_OK) goto fail;
    if (map_tools(body, native, &r, err) != LL_OK) goto fail;

    if (map_think(ctx, body, model, native, err) != LL_OK) goto fail;
    json_t *ka = ll_json_field(body, "keep_alive");     /* not Anthropic's, but as on /v1 */
    if (ka) json_object_set(native, "keep_alive", ka);
    /* metadata, container, mcp_servers, service_tier: ignored (§3.1); tool_choice: map_tools */
    ll_free(sys.p);
    *out = native;
    *est = (json_int_t)(r.est_chars / 4 ? r.est_chars / 4 : 1);
    return LL_OK;
fail:
    ll_free(sys.p);
    json_decref(native);
    json_decref(*stops);
    *stops = NULL;
    return err->code;
}

/* ---- output adapter (§3.3, §3.4) ------------------------------------------------------------- */

typedef struct {
    api_adapter base;
    bool        streamed;    /* the request asked for SSE */
    bool        started;     /* message_start went out */
    int         open;        /* the open content block: 0 none, 1 text, 2 thinking */
    int         index;       /* index of the open block, else of the next one */
    json_t     *tool_ids;    /* ids of the tool_use blocks sent (each call is sent once) */
    json_t     *stops;       /* the request's stop_sequences, NULL when none (D20) */
    json_int_t  est_input;   /* message_start's input_tokens (§3.4: an estimate) */
    char        id[32];      /* msg_ + 24 hex */
    char       *model;       /* the request's model string, verbatim */
} anth_out;

static void anth_free(api_adapter *ad) {
    anth_out *a = (anth_out *)ad;
    json_decref(a->tool_ids);
    json_decref(a->stops);
    ll_free(a->model);
    ll_free(a);
}

/* A native tool call {"id","function":{"index","name","arguments"}} (§1.2.5) → a tool_use
 * block (§3.3). The id is kept (Anthropic clients only echo it back in tool_result); a call
 * without one gets toolu_ + 24 hex. Arguments given as a JSON string are parsed. */
json_t *api_anthropic_tool_use(const json_t *call) {
    json_t *fn = json_object_get(call, "function"), *id = json_object_get(call, "id");
    json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments"), *input = NULL;
    if (json_is_object(args)) {
        input = json_incref(args);
    } else if (json_is_string(args)) {
        ll_error e = { 0 };
        if (ll_json_parse(json_string_value(args), json_string_length(args), &input, &e) != LL_OK || !json_is_object(input)) {
            json_decref(input);
            input = NULL;
        }
    }
    if (!input) input = json_object();
    char gen[32];
    if (!json_is_string(id) || !json_string_length(id)) make_hex_id(gen, sizeof gen, "toolu_", 24);
    return json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use",
                     "id", json_is_string(id) && json_string_length(id) ? json_string_value(id) : gen,
                     "name", json_is_string(name) ? json_string_value(name) : "", "input", input);
}

/* The native final object → stop_reason (§3.3) and, for D20, the matched stop sequence. */
static const char *stop_reason(const anth_out *a, const json_t *native, bool tools, const char **seq) {
    *seq = NULL;
    if (tools) return "tool_use";
    const char *r = json_string_value(json_object_get(native, "done_reason"));
    if (!r || !*r || !strcmp(r, "load") || !strcmp(r, "unload")) return "end_turn";
    if (!strcmp(r, "length")) return "max_tokens";
    if (strcmp(r, "stop")) return "stop_sequence";
    /* A stop string ended it: only one of the request's counts as a stop sequence; the model's
     * own stop strings (its end-of-turn text) are an ordinary end_turn. */
    json_t *m = json_object_get(native, ANTH_STOP_KEY);
    for (size_t i = 0; json_is_string(m) && i < json_array_size(a->stops); i++)
        if (json_equal(json_array_get(a->stops, i), m)) { *seq = json_string_value(m); return "stop_sequence"; }
    return "end_turn";
}

static json_t *usage_obj(const json_t *native) {
    return json_pack("{s:I, s:I}", "input_tokens", int_field(native, "prompt_eval_count"),
                     "output_tokens", int_field(native, "eval_count"));
}

static ll_status anth_stream(api_adapter *ad, ll_http_stream *s, const json_t *native);

/* A streamed request answered at once (the load reply when no message is left after
 * conversion, §1.2.9) still gets the SSE event sequence. Takes native. */
static bool respond_as_stream(anth_out *a, ll_http_resp *resp, json_t *native) {
    if (!a->streamed) return false;
    ll_http_stream *s = ll_http_resp_stream(resp, LL_STREAM_SSE);
    if (s) {
        anth_stream(&a->base, s, native);
        ll_http_stream_end(s);
    }
    json_decref(native);
    return true;
}

static void anth_respond(api_adapter *ad, ll_http_resp *resp, json_t *native) {
    anth_out *a = (anth_out *)ad;
    if (respond_as_stream(a, resp, native)) return;
    json_t *msg = json_object_get(native, "message"), *content = json_array();
    json_t *thinking = json_object_get(msg, "thinking"), *text = json_object_get(msg, "content");
    json_t *calls = json_object_get(msg, "tool_calls");
    /* blocks in the order thinking, text, tool_use; empty ones left out (§3.3) */
    if (json_string_length(thinking))
        json_array_append_new(content, json_pack("{s:s, s:O}", "type", "thinking", "thinking", thinking));
    if (json_string_length(text))
        json_array_append_new(content, json_pack("{s:s, s:O}", "type", "text", "text", text));
    for (size_t i = 0; i < json_array_size(calls); i++)
        json_array_append_new(content, api_anthropic_tool_use(json_array_get(calls, i)));
    const char *seq = NULL;
    const char *why = stop_reason(a, native, json_array_size(calls) > 0, &seq);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "id", a->id, "type", "message", "role", "assistant",
                          "model", a->model, "content", content, "stop_reason", why);
    if (!r) { json_decref(native); ll_http_resp_error(resp, 500, "out of memory"); return; }
    if (seq) json_object_set_new(r, "stop_sequence", json_string(seq));
    json_object_set_new(r, "usage", usage_obj(native));
    json_decref(native);
    ll_http_resp_json_flags(resp, 200, r, LL_JSON_NEWLINE);
}

/* One SSE event; takes data. */
static ll_status emit(ll_http_stream *s, const char *event, json_t *data) {
    if (!data) return LL_ERR_NOMEM;
    ll_status st = ll_http_stream_sse(s, event, data, 0);
    json_decref(data);
    return st;
}

static ll_status block_start(anth_out *a, ll_http_stream *s, json_t *block) {
    return emit(s, "content_block_start", json_pack("{s:s, s:i, s:o}", "type", "content_block_start",
                                                    "index", a->index, "content_block", block));
}

static ll_status block_delta(anth_out *a, ll_http_stream *s, json_t *delta) {
    return emit(s, "content_block_delta", json_pack("{s:s, s:i, s:o}", "type", "content_block_delta",
                                                    "index", a->index, "delta", delta));
}

static ll_status block_stop(anth_out *a, ll_http_stream *s) {
    ll_status st = emit(s, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index", a->index));
    a->index++;
    a->open = 0;
    return st;
}

/* Text or thinking: open a block of that kind when another (or none) is open, then a delta. */
static ll_status piece(anth_out *a, ll_http_stream *s, int kind, const json_t *v) {
    ll_status st = LL_OK;
    const char *field = kind == 1 ? "text" : "thinking";
    if (a->open != kind) {
        if (a->open && (st = block_stop(a, s)) != LL_OK) return st;
        if ((st = block_start(a, s, json_pack("{s:s, s:s}", "type", field, field, ""))) != LL_OK) return st;
        a->open = kind;
    }
    return block_delta(a, s, json_pack("{s:s, s:O}", "type", kind == 1 ? "text_delta" : "thinking_delta", field, v));
}

/* One tool call: start, its whole arguments as one input_json_delta, stop (§3.4 step 4). */
static ll_status tool_block(anth_out *a, ll_http_stream *s, const json_t *call) {
    json_t *tu = api_anthropic_tool_use(call);
    if (!tu) return LL_ERR_NOMEM;
    json_t *id = json_object_get(tu, "id");
    for (size_t i = 0; i < json_array_size(a->tool_ids); i++)
        if (json_equal(json_array_get(a->tool_ids, i), id)) { json_decref(tu); return LL_OK; }
    json_array_append(a->tool_ids, id);
    char *args = NULL;
    size_t n = 0;
    ll_status st = LL_OK;
    if (ll_json_dump(json_object_get(tu, "input"), 0, &args, &n, NULL) != LL_OK) { json_decref(tu); return LL_ERR_NOMEM; }
    if (a->open) st = block_stop(a, s);
    if (st == LL_OK) {
        json_object_set_new(tu, "input", json_object());
        st = block_start(a, s, json_incref(tu));
    }
    if (st == LL_OK) st = block_delta(a, s, json_pack("{s:s, s:s%}", "type", "input_json_delta", "partial_json", args, n));
    if (st == LL_OK) st = block_stop(a, s);
    ll_free(args);
    json_decref(tu);
    return st;
}

static ll_status anth_stream(api_adapter *ad, ll_http_stream *s, const json_t *native) {
    anth_out *a = (anth_out *)ad;
    ll_status st = LL_OK;
    if (!a->started) {
        a->started = true;
        json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:[], s:{s:I, s:i}}", "id", a->id, "type", "message",
                              "role", "assistant", "model", a->model, "content", "usage",
                              "input_tokens", a->est_input, "output_tokens", 0);
        if ((st = emit(s, "message_start", json_pack("{s:s, s:o}", "type", "message_start", "message", m))) != LL_OK) return st;
    }
    json_t *msg = json_object_get(native, "message");
    json_t *thinking = json_object_get(msg, "thinking"), *text = json_object_get(msg, "content");
    json_t *calls = json_object_get(msg, "tool_calls");
    if (json_string_length(thinking) && (st = piece(a, s, 2, thinking)) != LL_OK) return st;
    if (json_string_length(text) && (st = piece(a, s, 1, text)) != LL_OK) return st;
    for (size_t i = 0; i < json_array_size(calls); i++)
        if ((st = tool_block(a, s, json_array_get(calls, i))) != LL_OK) return st;
    if (!json_is_true(json_object_get(native, "done"))) return LL_OK;

    if (a->open && (st = block_stop(a, s)) != LL_OK) return st;
    const char *seq = NULL;
    const char *why = stop_reason(a, native, json_array_size(a->tool_ids) > 0, &seq);
    json_t *delta = json_pack("{s:s}", "stop_reason", why);
    if (delta && seq) json_object_set_new(delta, "stop_sequence", json_string(seq));
    json_t *md = delta ? json_pack("{s:s, s:o, s:o}", "type", "message_delta", "delta", delta, "usage", usage_obj(native)) : NULL;
    if ((st = emit(s, "message_delta", md)) != LL_OK) return st;
    return emit(s, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

api_adapter *api_anthropic_adapter_new(const json_t *native, const json_t *stops, json_int_t est_input) {
    anth_out *a = ll_calloc(1, sizeof *a);
    if (!a) return NULL;
    a->base.stream = anth_stream;
    a->base.respond = anth_respond;
    a->base.free = anth_free;
    a->streamed = json_is_true(json_object_get(native, "stream"));
    a->est_input = est_input;
    a->stops = stops ? json_incref((json_t *)stops) : NULL;
    make_hex_id(a->id, sizeof a->id, "msg_", 24);
    if (!(a->tool_ids = json_array()) || !(a->model = ll_str_dup(ll_json_str(json_object_get(native, "model"))))) {
        anth_free(&a->base);
        return NULL;
    }
    return &a->base;
}

/* ---- POST /v1/messages ------------------------------------------------------------------------ */

static void v1_messages(ll_http_req *req, ll_http_resp *resp, void *ctx) {
    ll_error err = { 0 };
    json_t *body = NULL, *native = NULL, *stops = NULL;
    json_int_t est = 1;
    if (ll_http_req_json(req, resp, &body) != LL_OK) return;
    if (map_request(ctx, body, &native, &stops, &est, &err) != LL_OK) {
        ll_http_resp_error(resp, err.code == LL_ERR_NOMEM ? 500 : 400, "%s", err.msg);
        goto out;
    }
    api_adapter *a = api_anthropic_adapter_new(native, stops, est);
    if (!a) { ll_http_resp_error(resp, 500, "out of memory"); goto out; }
    api_gen_run(req, resp, ctx, true, native, a);
    native = NULL;
out:
    json_decref(stops);
    json_decref(native);
    json_decref(body);
}

ll_status api_anthropic_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    return ll_router_set_handler(r, "POST", "/v1/messages", v1_messages, ctx, err);
}
