/* server/api_openai: the OpenAI-compatible endpoints (ollama-api.md §2, issue 9):
 * POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/{model},
 * POST /v1/embeddings.
 *
 * The routes are thin adapters, as in Ollama: the OpenAI request is translated into a native
 * body, run by the native handler (api_gen_run, api_embed_run), and the native output is
 * translated back by an api_adapter (api_internal.h) this file supplies. So every check,
 * option, stop string and streaming rule of §1 applies unchanged, and errors come out in the
 * §2.0.3 shape because the router knows these routes are /v1.
 *
 * Where we differ from Ollama (§5): sampling fields are mapped only when the request sets them
 * (D1), max_completion_tokens is honoured and an `options` object is merged last (D2),
 * `developer` messages become `system` (D19), reasoning is accepted as `reasoning_content`
 * too (D3), ids carry 24 random characters (D16), and a stream that fails after its first
 * event ends with an error event rather than silently (D7, done by ll_http_stream_error). */
#include "server/api_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* ---- small helpers --------------------------------------------------------------------------- */

/* prefix + 24 random [A-Za-z0-9] (§2.0.2, D16). cap must hold strlen(prefix) + 25. */
static void make_id(char *buf, size_t cap, const char *prefix) {
    static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)ll_time_unix_ns() ^ (uintptr_t)buf;
        for (size_t i = 0; i < sizeof r; i++) { x = x * 6364136223846793005ULL + 1442695040888963407ULL; r[i] = (unsigned char)(x >> 33); }
    }
    size_t n = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof r && n + 1 < cap; i++) buf[n++] = ALNUM[r[i] % 62];
    buf[n] = 0;
}

/* Standard base64 with padding; ll_malloc'ed, NUL-terminated. */
static char *base64_encode(const unsigned char *p, size_t n) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = ll_malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = T[v >> 18]; *o++ = T[(v >> 12) & 63]; *o++ = T[(v >> 6) & 63]; *o++ = T[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = T[v >> 18]; *o++ = T[(v >> 12) & 63];
        *o++ = i + 1 < n ? T[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

static json_int_t int_field(const json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static json_t *usage_json(const json_t *native, bool completion) {
    json_int_t p = int_field(native, "prompt_eval_count"), c = int_field(native, "eval_count");
    if (completion) return json_pack("{s:I, s:I, s:I}", "prompt_tokens", p, "completion_tokens", c, "total_tokens", p + c);
    return json_pack("{s:I, s:I}", "prompt_tokens", p, "total_tokens", p);
}

/* The native done_reason as a finish_reason: absent → null (non-streamed), "stop" (streamed). */
static json_t *finish_reason(const json_t *native, bool stream) {
    const char *r = json_string_value(json_object_get(native, "done_reason"));
    if (!r || !*r) return stream ? json_string("stop") : json_null();
    return json_string(r);
}

/* ---- request mapping (§2.1.1, §2.2) ---------------------------------------------------------- */

/* Copy body[key] to opts[name] when present and not null (D1: nothing is injected). */
static void map_opt(json_t *opts, const json_t *body, const char *key, const char *name) {
    json_t *v = ll_json_field(body, key);
    if (v) json_object_set(opts, name, v);
}

/* The native options of a chat or text completion request. strict_stop: /v1/completions
 * refuses non-string stop elements; chat skips them. */
static ll_status map_options(const json_t *body, bool completions, json_t **out, ll_error *err) {
    json_t *o = json_object();
    map_opt(o, body, "max_tokens", "num_predict");
    map_opt(o, body, "max_completion_tokens", "num_predict");   /* D2: wins over max_tokens */
    map_opt(o, body, "temperature", "temperature");
    json_t *tp = ll_json_field(body, "top_p");
    if (tp && !(completions && json_is_number(tp) && json_number_value(tp) == 0)) json_object_set(o, "top_p", tp);
    map_opt(o, body, "frequency_penalty", "frequency_penalty");
    map_opt(o, body, "presence_penalty", "presence_penalty");
    map_opt(o, body, "seed", "seed");
    json_t *stop = ll_json_field(body, "stop");
    if (json_is_string(stop)) {
        json_object_set_new(o, "stop", json_pack("[O]", stop));
    } else if (json_is_array(stop)) {
        json_t *a = json_array();
        for (size_t i = 0; i < json_array_size(stop); i++) {
            json_t *v = json_array_get(stop, i);
            if (json_is_string(v)) { json_array_append(a, v); continue; }
            if (completions) {
                json_decref(a);
                json_decref(o);
                const char *ty = json_is_number(v) ? "float64" : json_is_boolean(v) ? "bool" : json_is_null(v) ? "<nil>"
                               : json_is_array(v) ? "[]interface {}" : "map[string]interface {}";
                return ll_fail(err, LL_ERR_ARG, "invalid type for 'stop' field: %s", ty);
            }
        }
        json_object_set_new(o, "stop", a);
    } else if (stop && completions) {
        json_decref(o);
        return ll_fail(err, LL_ERR_ARG, "invalid type for 'stop' field: %s", json_is_number(stop) ? "float64" : "bool");
    }
    json_t *extra = ll_json_field(body, "options");         /* D2: native options, merged last */
    if (json_is_object(extra)) json_object_update(o, extra);
    *out = o;
    return LL_OK;
}

/* Common native fields: model, stream, options, and keep_alive when a client passes it. */
static ll_status map_common(const json_t *body, bool completions, json_t *native, bool *stream, bool *usage, ll_error *err) {
    ll_str model = { "", 0 };
    json_t *so = NULL, *opts = NULL;
    *stream = false;
    *usage = false;
    if (ll_json_get_str(body, "model", &model, NULL, err) != LL_OK ||
        ll_json_get_bool(body, "stream", stream, NULL, err) != LL_OK ||
        ll_json_get_object(body, "stream_options", &so, err) != LL_OK ||
        (so && ll_json_get_bool(so, "include_usage", usage, NULL, err) != LL_OK))
        return err->code;
    if (map_options(body, completions, &opts, err) != LL_OK) return err->code;
    json_object_set_new(native, "model", json_stringn(model.p, model.n));
    json_object_set_new(native, "stream", json_boolean(*stream));
    json_object_set_new(native, "options", opts);
    json_t *ka = ll_json_field(body, "keep_alive");
    if (ka) json_object_set(native, "keep_alive", ka);
    return LL_OK;
}

/* tools and tool_choice (issue 11; Ollama passes tools and ignores the rest, §2.1.1): a
 * function's "strict": true puts its name in the internal "_strict_tools" (its arguments must
 * follow its parameters exactly; the flag itself is not passed to the template);
 * tool_choice "none" offers no tools, "required" → "_tool_choice": "required", a named
 * function → {"name": N}, "auto" → nothing. */
static ll_status map_tools(const json_t *body, json_t *native, ll_error *err) {
    json_t *tools = ll_json_field(body, "tools"), *choice = ll_json_field(body, "tool_choice");
    bool have = json_is_array(tools) && json_array_size(tools);
    json_t *forced = NULL;
    if (json_is_string(choice)) {
        const char *c = json_string_value(choice);
        if (strcmp(c, "none") && strcmp(c, "auto") && strcmp(c, "required"))
            return ll_fail(err, LL_ERR_ARG, "Invalid value for 'tool_choice': '%s'. Supported values are: 'none', 'auto' and 'required'.", c);
        if (!strcmp(c, "none")) return LL_OK;
        if (!strcmp(c, "required")) forced = json_string("required");
    } else if (json_is_object(choice)) {
        json_t *name = ll_json_field(ll_json_field(choice, "function"), "name");
        if (!json_is_string(name)) return ll_fail(err, LL_ERR_ARG, "Missing required parameter: 'tool_choice.function.name'.");
        forced = json_pack("{s:O}", "name", name);
    } else if (choice && !json_is_null(choice)) {
        return ll_fail(err, LL_ERR_ARG, "Invalid type for 'tool_choice': expected a string or an object.");
    }
    if (forced && !have) {
        json_decref(forced);
        return ll_fail(err, LL_ERR_ARG, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
    }
    if (!have) return LL_OK;
    json_t *copy = json_deep_copy(tools), *strict = json_array();
    if (!copy || !strict) { json_decref(copy); json_decref(strict); json_decref(forced); return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }
    size_t i;
    json_t *t;
    json_array_foreach(copy, i, t) {
        json_t *fn = ll_json_field(t, "function");
        if (!json_is_object(fn)) continue;
        if (json_is_true(json_object_get(fn, "strict"))) json_array_append(strict, json_object_get(fn, "name"));
        json_object_del(fn, "strict");
    }
    json_object_set_new(native, "tools", copy);
    if (json_array_size(strict)) json_object_set(native, "_strict_tools", strict);
    json_decref(strict);
    if (forced) json_object_set_new(native, "_tool_choice", forced);
    return LL_OK;
}

/* response_format → format (§2.1.1). */
static ll_status map_format(const json_t *body, json_t *native, ll_error *err) {
    json_t *rf = ll_json_field(body, "response_format");
    if (!rf) return LL_OK;
    if (!json_is_object(rf)) return ll_fail(err, LL_ERR_ARG, "invalid response_format");
    const char *ty = json_string_value(ll_json_field(rf, "type"));
    if (!ty) return LL_OK;
    while (isspace((unsigned char)*ty)) ty++;
    size_t n = strlen(ty);
    while (n && isspace((unsigned char)ty[n - 1])) n--;
    if (n == 11 && !strncasecmp(ty, "json_object", n)) json_object_set_new(native, "format", json_string("json"));
    else if (n == 11 && !strncasecmp(ty, "json_schema", n)) {
        json_t *s = ll_json_field(ll_json_field(rf, "json_schema"), "schema");
        if (s) json_object_set(native, "format", s);
    }
    return LL_OK;
}

/* reasoning.effort / reasoning_effort → think. */
static ll_status map_think(const json_t *body, json_t *native, ll_error *err) {
    const char *e = json_string_value(ll_json_field(ll_json_field(body, "reasoning"), "effort"));
    if (!e) e = json_string_value(ll_json_field(body, "reasoning_effort"));
    if (!e || !*e) return LL_OK;
    if (!strcmp(e, "none")) json_object_set_new(native, "think", json_false());
    else if (!strcmp(e, "minimal")) json_object_set_new(native, "think", json_string("low"));
    else if (!strcmp(e, "low") || !strcmp(e, "medium") || !strcmp(e, "high") || !strcmp(e, "max"))
        json_object_set_new(native, "think", json_string(e));
    else if (!strcmp(e, "xhigh") || !strcmp(e, "ultra")) json_object_set_new(native, "think", json_string("max"));
    else return ll_fail(err, LL_ERR_ARG, "invalid reasoning value: \"%s\" (must be \"minimal\", \"low\", \"medium\", "
                                         "\"high\", \"xhigh\", \"ultra\", \"max\", or \"none\")", e);
    return LL_OK;
}

/* An image_url part → the base64 payload of its data URI (§2.1.2). */
static ll_status image_b64(const json_t *part, json_t **out, ll_error *err) {
    json_t *iu = ll_json_field(part, "image_url");
    const char *url = json_is_string(iu) ? json_string_value(iu) : json_string_value(ll_json_field(iu, "url"));
    if (!url) return ll_fail(err, LL_ERR_ARG, "invalid message format");
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        return ll_fail(err, LL_ERR_ARG, "image URLs are not currently supported, please use base64 encoded data instead");
    static const char *const PFX[] = { "data:image/jpeg;base64,", "data:image/jpg;base64,", "data:image/png;base64,",
                                       "data:image/webp;base64,", "data:image/gif;base64,", "data:;base64,", NULL };
    for (size_t i = 0; PFX[i]; i++)
        if (!strncmp(url, PFX[i], strlen(PFX[i]))) { *out = json_string(url + strlen(PFX[i])); return LL_OK; }
    return ll_fail(err, LL_ERR_ARG, "invalid image input");
}

/* One OpenAI message → native messages appended to out (§2.1.2). */
static ll_status map_message(const json_t *m, json_t *all, json_t *out, ll_error *err) {
    if (!json_is_object(m)) return ll_fail(err, LL_ERR_ARG, "invalid message format");
    char role[32] = "";
    const char *r = json_string_value(ll_json_field(m, "role"));
    snprintf(role, sizeof role, "%s", r ? r : "");
    for (char *p = role; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (!strcmp(role, "developer")) strcpy(role, "system");        /* D19 */
    json_t *content = ll_json_field(m, "content"), *calls = ll_json_field(m, "tool_calls");
    json_t *base = json_pack("{s:s}", "role", role);
    json_t *thinking = ll_json_field(m, "reasoning");
    if (!thinking) thinking = ll_json_field(m, "reasoning_content");  /* D3 */
    if (json_is_string(thinking)) json_object_set(base, "thinking", thinking);
    if (json_is_array(calls) && json_array_size(calls)) {
        json_t *nc = json_array();
        for (size_t i = 0; i < json_array_size(calls); i++) {
            json_t *c = json_array_get(calls, i), *fn = ll_json_field(c, "function");
            json_t *args = ll_json_field(fn, "arguments"), *parsed = NULL;
            if (json_is_string(args)) {
                ll_error e2 = { 0 };
                if (ll_json_parse(json_string_value(args), json_string_length(args), &parsed, &e2) != LL_OK) {
                    json_decref(nc);
                    json_decref(base);
                    return ll_fail(err, LL_ERR_ARG, "invalid tool call arguments");
                }
            } else {
                parsed = args ? json_incref(args) : json_object();
            }
            json_t *f = json_pack("{s:O?, s:o}", "name", ll_json_field(fn, "name"), "arguments", parsed);
            json_t *id = ll_json_field(c, "id");
            json_t *t = json_object();
            if (id) json_object_set(t, "id", id);
            json_object_set_new(t, "function", f);
            json_array_append_new(nc, t);
        }
        json_object_set_new(base, "tool_calls", nc);
    }
    if (!strcmp(role, "tool")) {
        json_t *id = ll_json_field(m, "tool_call_id"), *name = ll_json_field(m, "name");
        if (id) json_object_set(base, "tool_call_id", id);
        if (!name && json_is_string(id)) {   /* the latest assistant call with that id */
            for (size_t i = json_array_size(all); i-- > 0 && !name;) {
                json_t *cs = ll_json_field(json_array_get(all, i), "tool_calls");
                for (size_t k = 0; k < json_array_size(cs); k++)
                    if (json_equal(ll_json_field(json_array_get(cs, k), "id"), id))
                        name = ll_json_field(ll_json_field(json_array_get(cs, k), "function"), "name");
            }
        }
        if (name) json_object_set(base, "tool_name", name);
    }
    ll_status st = LL_OK;
    if (json_is_string(content)) {
        json_object_set(base, "content", content);
        json_array_append(out, base);
    } else if (json_is_array(content)) {
        for (size_t i = 0; i < json_array_size(content) && st == LL_OK; i++) {
            json_t *part = json_array_get(content, i), *one = json_deep_copy(base);
            const char *ty = json_string_value(ll_json_field(part, "type"));
            json_t *img = NULL;
            if (ty && !strcmp(ty, "text") && json_is_string(ll_json_field(part, "text"))) {
                json_object_set(one, "content", ll_json_field(part, "text"));
            } else if (ty && !strcmp(ty, "image_url")) {
                if ((st = image_b64(part, &img, err)) == LL_OK) {
                    json_object_set_new(one, "content", json_string(""));
                    json_object_set_new(one, "images", json_pack("[o]", img));
                }
            } else {
                st = ll_fail(err, LL_ERR_ARG, "invalid message format");
            }
            if (st == LL_OK) json_array_append(out, one);
            json_decref(one);
        }
    } else if (!content && json_object_get(base, "tool_calls")) {
        json_object_set_new(base, "content", json_string(""));
        json_array_append(out, base);
    } else if (!content) {
        st = ll_fail(err, LL_ERR_ARG, "invalid message content type: <nil>");
    } else {
        st = ll_fail(err, LL_ERR_ARG, "invalid message format");
    }
    json_decref(base);
    return st;
}

/* ---- output adapters ------------------------------------------------------------------------- */

typedef struct {
    api_adapter base;
    bool        chat;
    bool        include_usage;
    bool        streamed;        /* the request asked for SSE */
    bool        sent;            /* a content event went out (the role chunk is first) */
    bool        sent_tools;      /* a tool-call delta went out: finish_reason "tool_calls" */
    json_int_t  text_offset;     /* /v1/completions logprobs: bytes of text before the next token */
    char        id[64];
    char       *model;           /* the request's model string, verbatim (§2.0.2) */
    json_int_t  created;
} oai_out;

static void oai_free(api_adapter *a) {
    oai_out *o = (oai_out *)a;
    ll_free(o->model);
    ll_free(o);
}

/* {"id","object","created","model","system_fingerprint"} for a chat response or chunk. */
static json_t *chat_head(const oai_out *o, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", o->id, "object", object, "created", o->created,
                     "model", o->model, "system_fingerprint", "fp_ollama");
}

static bool respond_as_stream(api_adapter *a, ll_http_resp *resp, json_t *native);

/* Native tool calls (§1.2.5) as OpenAI's (§2.1.3): {"id","index","type":"function",
 * "function":{"name","arguments":<JSON text>}}, the arguments serialised as Go would. */
static json_t *oai_tool_calls(const json_t *calls) {
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(calls); i++) {
        json_t *c = json_array_get(calls, i), *fn = json_object_get(c, "function");
        char *args = NULL;
        size_t n = 0;
        ll_error e = { 0 };
        json_t *a = json_object_get(fn, "arguments");
        if (!a || ll_json_dump(a, 0, &args, &n, &e) != LL_OK) { ll_free(args); args = NULL; n = 0; }
        json_t *id = json_object_get(c, "id"), *idx = json_object_get(fn, "index");
        json_array_append_new(out, json_pack("{s:O?, s:I, s:s, s:{s:O?, s:s%}}", "id", id,
                                             "index", json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)i,
                                             "type", "function", "function", "name", json_object_get(fn, "name"),
                                             "arguments", args ? args : "{}", args ? n : (size_t)2));
        ll_free(args);
    }
    return out;
}

/* Native logprob objects (§1.0.3) as the content list of a chat choice's "logprobs". OpenAI's
 * objects always carry top_logprobs, so an empty list is written when there were none. */
static json_t *oai_chat_logprobs(const json_t *lp) {
    json_t *content = json_array();
    for (size_t i = 0; i < json_array_size(lp); i++) {
        json_t *c = json_deep_copy(json_array_get(lp, i));
        if (!json_object_get(c, "top_logprobs")) json_object_set_new(c, "top_logprobs", json_array());
        json_array_append_new(content, c);
    }
    return json_pack("{s:o}", "content", content);
}

/* finish_reason of a chat answer: "stop" becomes "tool_calls" when calls were made. */
static json_t *chat_finish(const json_t *native, bool stream, bool tools) {
    json_t *f = finish_reason(native, stream);
    if (tools && json_is_string(f) && !strcmp(json_string_value(f), "stop")) {
        json_decref(f);
        return json_string("tool_calls");
    }
    return f;
}

static void chat_respond(api_adapter *a, ll_http_resp *resp, json_t *native) {
    oai_out *o = (oai_out *)a;
    if (respond_as_stream(a, resp, native)) return;
    json_t *msg = json_object_get(native, "message");
    json_t *content = json_object_get(msg, "content");
    json_t *calls = json_object_get(msg, "tool_calls"), *lp = json_object_get(native, "logprobs");
    json_t *r = chat_head(o, "chat.completion");
    json_t *m = json_pack("{s:s, s:s%}", "role", "assistant", "content", json_string_value(content) ? json_string_value(content) : "",
                          json_string_length(content));
    json_t *thinking = json_object_get(msg, "thinking");
    if (json_string_length(thinking)) {                     /* D3: under both names */
        json_object_set(m, "reasoning", thinking);
        json_object_set(m, "reasoning_content", thinking);
    }
    if (json_array_size(calls)) json_object_set_new(m, "tool_calls", oai_tool_calls(calls));
    json_t *choice = json_pack("{s:i, s:o}", "index", 0, "message", m);
    if (json_array_size(lp)) json_object_set_new(choice, "logprobs", oai_chat_logprobs(lp));
    json_object_set_new(choice, "finish_reason", chat_finish(native, false, json_array_size(calls) > 0));
    json_object_set_new(r, "choices", json_pack("[o]", choice));
    json_object_set_new(r, "usage", usage_json(native, true));
    json_decref(native);
    ll_http_resp_json_flags(resp, 200, r, LL_JSON_NEWLINE);
}

static ll_status chat_event(oai_out *o, ll_http_stream *s, json_t *delta, json_t *finish, const json_t *lp) {
    json_t *c = chat_head(o, "chat.completion.chunk");
    json_t *choice = json_pack("{s:i, s:o}", "index", 0, "delta", delta);
    if (json_array_size(lp)) json_object_set_new(choice, "logprobs", oai_chat_logprobs(lp));
    json_object_set_new(choice, "finish_reason", finish);
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    ll_status st = ll_http_stream_sse(s, NULL, c, 0);
    json_decref(c);
    return st;
}

/* The end of a stream (§2.1.4 steps 6-8, §2.2): the usage chunk and [DONE]. */
static ll_status stream_tail(oai_out *o, ll_http_stream *s, const json_t *native) {
    if (o->include_usage) {
        json_t *u = chat_head(o, o->chat ? "chat.completion.chunk" : "text_completion");
        json_object_set_new(u, "choices", json_array());
        json_object_set_new(u, "usage", usage_json(native, true));
        ll_status st = ll_http_stream_sse(s, NULL, u, 0);
        json_decref(u);
        if (st != LL_OK) return st;
    }
    return ll_http_stream_sse_done(s);
}

static ll_status chat_stream(api_adapter *a, ll_http_stream *s, const json_t *native) {
    oai_out *o = (oai_out *)a;
    json_t *msg = json_object_get(native, "message");
    json_t *content = json_object_get(msg, "content"), *calls = json_object_get(msg, "tool_calls");
    json_t *lp = json_object_get(native, "logprobs"), *thinking = json_object_get(msg, "thinking");
    bool done = json_is_true(json_object_get(native, "done"));
    ll_status st = LL_OK;
    if (json_string_length(thinking)) {
        /* §2.1.4 step 3: a thinking piece; alone it carries "content":"", next to content or
         * calls it goes first in its own event without the content key. D3: both names. */
        bool more = json_string_length(content) || json_array_size(calls);
        json_t *d = o->sent ? json_object() : json_pack("{s:s}", "role", "assistant");
        if (!more) json_object_set_new(d, "content", json_string(""));
        json_object_set(d, "reasoning", thinking);
        json_object_set(d, "reasoning_content", thinking);
        o->sent = true;
        if ((st = chat_event(o, s, d, json_null(), more ? NULL : lp)) != LL_OK) return st;
        if (!more) lp = NULL;
    }
    if (json_string_length(content) || json_array_size(calls) || json_array_size(lp) || (done && !o->sent)) {
        json_t *d = o->sent ? json_object() : json_pack("{s:s}", "role", "assistant");
        json_object_set_new(d, "content", json_stringn(json_string_value(content) ? json_string_value(content) : "",
                                                      json_string_length(content)));
        /* §2.1.4 step 4: each call whole, arguments never split across chunks. */
        if (json_array_size(calls)) {
            json_object_set_new(d, "tool_calls", oai_tool_calls(calls));
            o->sent_tools = true;
        }
        o->sent = true;
        if ((st = chat_event(o, s, d, json_null(), lp)) != LL_OK) return st;
    }
    if (!done) return LL_OK;
    if ((st = chat_event(o, s, json_object(), chat_finish(native, true, o->sent_tools), NULL)) != LL_OK) return st;
    return stream_tail(o, s, native);
}

/* Native logprobs as a text completion's {"tokens","token_logprobs","top_logprobs",
 * "text_offset"} (OpenAI's legacy shape; §2.2 says locallama SHOULD return them). NULL when
 * there are none. */
static json_t *cmpl_logprobs(oai_out *o, const json_t *lp) {
    if (!json_array_size(lp)) return NULL;
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (size_t i = 0; i < json_array_size(lp); i++) {
        json_t *e = json_array_get(lp, i), *tok = json_object_get(e, "token");
        json_array_append_new(toks, tok ? json_incref(tok) : json_string(""));
        json_array_append(lps, json_object_get(e, "logprob"));
        json_t *alt = json_object(), *tl = json_object_get(e, "top_logprobs");
        for (size_t k = 0; k < json_array_size(tl); k++) {
            json_t *t = json_array_get(tl, k);
            const char *ts = json_string_value(json_object_get(t, "token"));
            if (ts && !json_object_get(alt, ts)) json_object_set(alt, ts, json_object_get(t, "logprob"));
        }
        json_array_append_new(tops, alt);
        json_array_append_new(offs, json_integer(o->text_offset));
        o->text_offset += (json_int_t)json_string_length(tok);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops, "text_offset", offs);
}

/* Text completion objects: note `choices` before `model` in chunks (§2.2). */
static json_t *cmpl_obj(oai_out *o, const char *text, size_t n, json_t *finish, bool chunk, const json_t *lp) {
    json_int_t created = chunk ? (json_int_t)time(NULL) : o->created;
    json_t *choice = json_pack("{s:s%, s:i}", "text", text, n, "index", 0);
    json_t *l = cmpl_logprobs(o, lp);
    if (l) json_object_set_new(choice, "logprobs", l);
    json_object_set_new(choice, "finish_reason", finish);
    json_t *choices = json_pack("[o]", choice);
    if (chunk)
        return json_pack("{s:s, s:s, s:I, s:o, s:s, s:s}", "id", o->id, "object", "text_completion", "created", created,
                         "choices", choices, "model", o->model, "system_fingerprint", "fp_ollama");
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", o->id, "object", "text_completion", "created", created,
                     "model", o->model, "system_fingerprint", "fp_ollama", "choices", choices);
}

static void cmpl_respond(api_adapter *a, ll_http_resp *resp, json_t *native) {
    oai_out *o = (oai_out *)a;
    if (respond_as_stream(a, resp, native)) return;
    json_t *t = json_object_get(native, "response");
    json_t *r = cmpl_obj(o, json_string_value(t) ? json_string_value(t) : "", json_string_length(t), finish_reason(native, false), false,
                         json_object_get(native, "logprobs"));
    json_object_set_new(r, "usage", usage_json(native, true));
    json_decref(native);
    ll_http_resp_json_flags(resp, 200, r, LL_JSON_NEWLINE);
}

static ll_status cmpl_stream(api_adapter *a, ll_http_stream *s, const json_t *native) {
    oai_out *o = (oai_out *)a;
    json_t *t = json_object_get(native, "response");
    bool done = json_is_true(json_object_get(native, "done"));
    json_t *lp = json_object_get(native, "logprobs");
    if (!done && !json_string_length(t) && !json_array_size(lp)) return LL_OK;
    json_t *c = cmpl_obj(o, json_string_value(t) ? json_string_value(t) : "", json_string_length(t),
                         done ? finish_reason(native, true) : json_null(), true, lp);
    if (o->include_usage) json_object_set_new(c, "usage", json_null());
    ll_status st = ll_http_stream_sse(s, NULL, c, 0);
    json_decref(c);
    if (st != LL_OK || !done) return st;
    return stream_tail(o, s, native);
}

/* A streamed request answered at once (the native load/unload reply of an empty prompt,
 * §1.1.5) still gets SSE: its one native object becomes the whole event sequence. Takes native. */
static bool respond_as_stream(api_adapter *a, ll_http_resp *resp, json_t *native) {
    if (!((oai_out *)a)->streamed) return false;
    ll_http_stream *s = ll_http_resp_stream(resp, LL_STREAM_SSE);
    if (s) {
        a->stream(a, s, native);
        ll_http_stream_end(s);
    }
    json_decref(native);
    return true;
}

static oai_out *oai_new(bool chat, const json_t *native, bool include_usage) {
    oai_out *o = ll_calloc(1, sizeof *o);
    if (!o) return NULL;
    o->base.stream = chat ? chat_stream : cmpl_stream;
    o->base.respond = chat ? chat_respond : cmpl_respond;
    o->base.free = oai_free;
    o->chat = chat;
    o->include_usage = include_usage;
    o->streamed = json_is_true(json_object_get(native, "stream"));
    o->created = (json_int_t)time(NULL);
    make_id(o->id, sizeof o->id, chat ? "chatcmpl-" : "cmpl-");
    ll_str m = ll_json_str(json_object_get(native, "model"));
    if (!(o->model = ll_str_dup(m))) { ll_free(o); return NULL; }
    return o;
}

/* ---- POST /v1/chat/completions, /v1/completions ---------------------------------------------- */

static void v1_generate(ll_http_req *req, ll_http_resp *resp, ll_api_ctx *ctx, bool chat) {
    ll_error err = { 0 };
    json_t *body = NULL, *native = json_object();
    bool stream = false, usage = false;
    if (ll_http_req_json(req, resp, &body) != LL_OK) { json_decref(native); return; }
    if (map_common(body, !chat, native, &stream, &usage, &err) != LL_OK) goto bad;
    if (chat) {
        json_t *msgs = NULL;
        if (ll_json_get_array(body, "messages", &msgs, &err) != LL_OK) goto bad;
        if (json_array_size(msgs) == 0) { ll_fail(&err, LL_ERR_ARG, "[] is too short - 'messages'"); goto bad; }
        json_t *nm = json_array();
        json_object_set_new(native, "messages", nm);
        for (size_t i = 0; i < json_array_size(msgs); i++)
            if (map_message(json_array_get(msgs, i), nm, nm, &err) != LL_OK) goto bad;
        if (map_tools(body, native, &err) != LL_OK) goto bad;
        if (map_think(body, native, &err) != LL_OK) goto bad;
        json_t *lp = ll_json_field(body, "logprobs"), *top = ll_json_field(body, "top_logprobs");
        if (lp) json_object_set(native, "logprobs", lp);       /* §2.1.1: same-named fields */
        if (top) json_object_set(native, "top_logprobs", top);
    } else {
        json_t *p = ll_json_field(body, "prompt"), *sfx = ll_json_field(body, "suffix");
        if (p && !json_is_string(p)) { ll_fail(&err, LL_ERR_ARG, "invalid type for 'prompt' field: must be a string"); goto bad; }
        if (sfx && !json_is_string(sfx)) { ll_fail(&err, LL_ERR_ARG, "invalid type for 'suffix' field: must be a string"); goto bad; }
        json_object_set_new(native, "prompt", p ? json_incref(p) : json_string(""));
        if (sfx) json_object_set(native, "suffix", sfx);
        /* §2.2: logprobs n > 0 asks for the chosen tokens' logprobs and n alternatives. */
        json_t *lp = ll_json_field(body, "logprobs");
        if (lp && !json_is_integer(lp)) { ll_fail(&err, LL_ERR_ARG, "invalid type for 'logprobs' field: must be an integer"); goto bad; }
        if (lp && json_integer_value(lp) > 0) {
            json_object_set_new(native, "logprobs", json_true());
            json_object_set(native, "top_logprobs", lp);
        }
    }
    if (map_format(body, native, &err) != LL_OK) goto bad;
    oai_out *o = oai_new(chat, native, usage);
    if (!o) { ll_http_resp_error(resp, 500, "out of memory"); goto out; }
    api_gen_run(req, resp, ctx, chat, native, &o->base);
    native = NULL;
    goto out;
bad:
    ll_http_resp_error(resp, 400, "%s", err.msg);
out:
    json_decref(native);
    json_decref(body);
}

static void v1_chat(ll_http_req *req, ll_http_resp *resp, void *ctx) { v1_generate(req, resp, ctx, true); }
static void v1_completions(ll_http_req *req, ll_http_resp *resp, void *ctx) { v1_generate(req, resp, ctx, false); }

/* ---- GET /v1/models, /v1/models/{model} ------------------------------------------------------- */

static json_t *model_obj(const char *id, const ll_model_info *mi, const char *ns) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)(mi ? mi->modified_at.tv_sec : 0), "owned_by", ns);
}

static void v1_models(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_error err = { 0 };
    ll_model_info *list = NULL;
    size_t n = 0;
    if (ll_store_list(ctx->store, &list, &n, &err) != LL_OK) { ll_http_resp_error(resp, 500, "%s", err.msg); return; }
    json_t *data = json_array();      /* [] rather than Ollama's null when empty (D16) */
    for (size_t i = 0; i < n; i++) json_array_append_new(data, model_obj(list[i].name, &list[i], list[i].parsed.ns));
    ll_model_info_free(list, n);
    ll_http_resp_json_flags(resp, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), LL_JSON_NEWLINE);
}

static void v1_model(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_api_ctx *ctx = arg;
    ll_error err = { 0 };
    char *name = ll_str_dup(ll_http_req_param(req));   /* the whole rest of the path (D11) */
    if (!name) { ll_http_resp_error(resp, 500, "out of memory"); return; }
    api_model m;
    bool found = false;
    if (api_model_open(ctx, name, &m, &found, &err) != LL_OK || !found) {
        if (err.code != LL_OK && err.code != LL_ERR_ARG) ll_http_resp_error(resp, 500, "%s", err.msg);
        else {
            ll_model_name pn;
            ll_error e2 = { 0 };
            char disp[LL_NAME_FULL_MAX];
            if (ll_name_parse(&pn, name, &e2) == LL_OK) ll_name_display(&pn, disp, sizeof disp);
            else snprintf(disp, sizeof disp, "%s", name);
            ll_http_resp_error(resp, 404, "model '%s' not found", disp);
        }
        ll_free(name);
        return;
    }
    ll_model_info *list = NULL, *mi = NULL;
    size_t n = 0;
    if (ll_store_list(ctx->store, &list, &n, &err) == LL_OK) {
        for (size_t i = 0; i < n && !mi; i++) {
            char full[LL_NAME_FULL_MAX];
            ll_name_full(&list[i].parsed, full, sizeof full);
            if (!strcmp(full, m.full)) mi = &list[i];
        }
    }
    ll_http_resp_json_flags(resp, 200, model_obj(name, mi, m.name.ns), LL_JSON_NEWLINE);
    ll_model_info_free(list, n);
    api_model_close(&m);
    ll_free(name);
}

/* ---- POST /v1/embeddings ---------------------------------------------------------------------- */

typedef struct {
    api_adapter base;
    bool        b64;
    char       *model;
} emb_out;

static void emb_free(api_adapter *a) {
    emb_out *e = (emb_out *)a;
    ll_free(e->model);
    ll_free(e);
}

static void emb_respond(api_adapter *a, ll_http_resp *resp, json_t *native) {
    emb_out *e = (emb_out *)a;
    json_t *vecs = json_object_get(native, "embeddings"), *data = json_array();
    for (size_t i = 0; i < json_array_size(vecs); i++) {
        json_t *v = json_array_get(vecs, i), *emb;
        if (e->b64) {
            size_t n = json_array_size(v);
            unsigned char *bytes = ll_malloc_array(n ? n : 1, 4);
            if (!bytes) { json_decref(data); json_decref(native); ll_http_resp_error(resp, 500, "out of memory"); return; }
            for (size_t k = 0; k < n; k++) {
                float f = (float)json_number_value(json_array_get(v, k));
                uint32_t u;
                memcpy(&u, &f, 4);
                for (int b = 0; b < 4; b++) bytes[4 * k + (size_t)b] = (unsigned char)(u >> (8 * b));   /* little-endian */
            }
            char *s = base64_encode(bytes, 4 * n);
            ll_free(bytes);
            if (!s) { json_decref(data); json_decref(native); ll_http_resp_error(resp, 500, "out of memory"); return; }
            emb = json_string(s);
            ll_free(s);
        } else {
            emb = json_incref(v);
        }
        json_array_append_new(data, json_pack("{s:s, s:o, s:i}", "object", "embedding", "embedding", emb, "index", (int)i));
    }
    json_t *r = json_pack("{s:s, s:o, s:s, s:o}", "object", "list", "data", data, "model", e->model,
                          "usage", usage_json(native, false));
    json_decref(native);
    ll_http_resp_json_flags(resp, 200, r, LL_JSON_NEWLINE | (e->b64 ? 0 : LL_JSON_F32));
}

static void v1_embeddings(ll_http_req *req, ll_http_resp *resp, void *arg) {
    ll_error err = { 0 };
    json_t *body = NULL, *native = NULL;
    ll_str model = { "", 0 };
    if (ll_http_req_json(req, resp, &body) != LL_OK) return;
    if (ll_json_get_str(body, "model", &model, NULL, &err) != LL_OK) { ll_http_resp_error(resp, 400, "%s", err.msg); goto out; }
    json_t *in = ll_json_field(body, "input"), *inputs = NULL;
    if (json_is_string(in)) {
        inputs = json_pack("[O]", in);               /* "" is [""] */
    } else if (json_is_array(in) && json_array_size(in)) {
        for (size_t i = 0; i < json_array_size(in); i++)
            if (!json_is_string(json_array_get(in, i))) { ll_http_resp_error(resp, 400, "invalid input type"); goto out; }
        inputs = json_incref(in);
    } else if (!in || json_is_array(in)) {
        ll_http_resp_error(resp, 400, "invalid input");
        goto out;
    } else {
        ll_http_resp_error(resp, 400, "invalid input type");
        goto out;
    }
    bool b64 = false;
    json_t *ef = ll_json_field(body, "encoding_format");
    if (ef) {
        const char *f = json_string_value(ef);
        if (f && !strcasecmp(f, "base64")) b64 = true;
        else if (!f || strcasecmp(f, "float")) {
            char *raw = json_dumps(ef, JSON_COMPACT | JSON_ENCODE_ANY);
            ll_http_resp_error(resp, 400, "Invalid value for 'encoding_format' = %s. Supported values: ['float', 'base64'].",
                               f ? f : raw ? raw : "?");
            free(raw);
            json_decref(inputs);
            goto out;
        }
    }
    native = json_pack("{s:s%, s:o, s:b}", "model", model.p, model.n, "input", inputs, "truncate", 1);
    json_t *dims = ll_json_field(body, "dimensions");
    if (dims) json_object_set(native, "dimensions", dims);
    json_t *ka = ll_json_field(body, "keep_alive");
    if (ka) json_object_set(native, "keep_alive", ka);
    emb_out *e = ll_calloc(1, sizeof *e);
    if (!e || !(e->model = ll_str_dup(model))) { ll_free(e); ll_http_resp_error(resp, 500, "out of memory"); goto out; }
    e->base.respond = emb_respond;
    e->base.free = emb_free;
    e->b64 = b64;
    api_embed_run(req, resp, arg, native, &e->base);
    native = NULL;
out:
    json_decref(native);
    json_decref(body);
}

/* ---- registration ------------------------------------------------------------------------------ */

ll_status api_openai_register(ll_router *r, ll_api_ctx *ctx, ll_error *err) {
    if (ll_router_set_handler(r, "POST", "/v1/chat/completions", v1_chat, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/v1/completions", v1_completions, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "GET", "/v1/models", v1_models, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "GET", "/v1/models/{model}", v1_model, ctx, err) != LL_OK ||
        ll_router_set_handler(r, "POST", "/v1/embeddings", v1_embeddings, ctx, err) != LL_OK)
        return err->code;
    return LL_OK;
}
