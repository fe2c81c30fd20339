/* Unit tests for the /v1/messages output adapter (src/server/api_anthropic.c, ollama-api.md
 * §3.3, §3.4): native objects are fed to the adapter as api_gen_run would feed them, and the
 * Message or the SSE events it writes into a real stream (read back from its queue) are checked.
 * This covers what the loopback tests in tests/py/test_api_anthropic.py cannot reach yet: native
 * tool calls (§1.2.5) in non-final chunks (path A) and in the final chunk (path B), and the
 * stop_sequence report of §5 D20. */
#include "server/api_internal.h"
#include "server/http_internal.h"

#include "core/core.h"

#include "../test.h"

#include <stdlib.h>
#include <string.h>

static json_t *js(const char *text) {
    json_t *v = NULL;
    ll_error e = { 0 };
    if (ll_json_parse(text, strlen(text), &v, &e) != LL_OK) { fprintf(stderr, "bad test JSON: %s\n", e.msg); exit(1); }
    return v;
}

static char *dump(const json_t *v) {
    char *s = NULL;
    size_t n = 0;
    if (ll_json_dump(v, 0, &s, &n, NULL) != LL_OK) return NULL;
    return s;
}

#define CALL_A "{\"id\":\"call_k3v9x0qa\",\"function\":{\"index\":0,\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"unit\":\"C\"}}}"
#define CALL_B "{\"id\":\"call_00000002\",\"function\":{\"index\":1,\"name\":\"get_time\",\"arguments\":{}}}"

/* ---- tool_use blocks ---- */

static void test_tool_use_block(void) {
    json_t *c = js(CALL_A), *b = api_anthropic_tool_use(c);
    char *s = dump(b);
    /* the native id is kept, the arguments keep the model's key order */
    CHECK_MSG(s && !strcmp(s, "{\"type\":\"tool_use\",\"id\":\"call_k3v9x0qa\",\"name\":\"get_weather\","
                              "\"input\":{\"city\":\"Paris\",\"unit\":\"C\"}}"), "%s", s ? s : "(null)");
    ll_free(s);
    json_decref(b);
    json_decref(c);

    /* arguments as a JSON string are parsed; no id: toolu_ + 24 hex */
    c = js("{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":[1,2]}\"}}");
    b = api_anthropic_tool_use(c);
    const char *id = json_string_value(json_object_get(b, "id"));
    CHECK(id && strlen(id) == 6 + 24 && !strncmp(id, "toolu_", 6) && strspn(id + 6, "0123456789abcdef") == 24);
    s = dump(json_object_get(b, "input"));
    CHECK_MSG(s && !strcmp(s, "{\"a\":[1,2]}"), "%s", s ? s : "(null)");
    ll_free(s);
    json_decref(b);
    json_decref(c);

    /* no or unusable arguments: an empty input object, never a crash */
    c = js("{\"id\":\"x\",\"function\":{\"name\":\"f\",\"arguments\":\"not json\"}}");
    b = api_anthropic_tool_use(c);
    CHECK(json_is_object(json_object_get(b, "input")) && json_object_size(json_object_get(b, "input")) == 0);
    json_decref(b);
    json_decref(c);
    c = js("{}");
    b = api_anthropic_tool_use(c);
    CHECK(b && !strcmp(json_string_value(json_object_get(b, "name")), ""));
    json_decref(b);
    json_decref(c);
}

/* ---- non-streamed Message (§3.3) ---- */

static json_t *respond(const char *native_final, const char *stops) {
    json_t *body = js("{\"model\":\"qwen3\",\"stream\":false}"), *st = stops ? js(stops) : NULL;
    api_adapter *a = api_anthropic_adapter_new(body, st, 7);
    ll_http_resp resp;
    memset(&resp, 0, sizeof resp);
    a->respond(a, &resp, js(native_final));
    a->free(a);
    json_decref(body);
    json_decref(st);
    json_t *out = NULL;
    CHECK_EQ_INT(resp.status, 200);
    if (resp.body) out = js(resp.body);
    ll_http_resp_release(&resp);
    return out;
}

static void test_message_with_tool_calls(void) {
    json_t *m = respond("{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"Let me check.\","
                        "\"thinking\":\"weather tool\",\"tool_calls\":[" CALL_A "," CALL_B "]},\"done\":true,"
                        "\"done_reason\":\"stop\",\"prompt_eval_count\":152,\"eval_count\":41}", NULL);
    if (!m) return;
    const char *id = json_string_value(json_object_get(m, "id"));
    CHECK(id && strlen(id) == 28 && !strncmp(id, "msg_", 4));
    json_object_del(m, "id");
    char *s = dump(m);
    CHECK_MSG(s && !strcmp(s, "{\"type\":\"message\",\"role\":\"assistant\",\"model\":\"qwen3\",\"content\":["
                              "{\"type\":\"thinking\",\"thinking\":\"weather tool\"},"
                              "{\"type\":\"text\",\"text\":\"Let me check.\"},"
                              "{\"type\":\"tool_use\",\"id\":\"call_k3v9x0qa\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\",\"unit\":\"C\"}},"
                              "{\"type\":\"tool_use\",\"id\":\"call_00000002\",\"name\":\"get_time\",\"input\":{}}],"
                              "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":152,\"output_tokens\":41}}"),
              "%s", s ? s : "(null)");
    ll_free(s);
    json_decref(m);
}

static const char *reason_of(const char *native_final, const char *stops, const char **seq) {
    static char r[32], q[32];
    json_t *m = respond(native_final, stops);
    snprintf(r, sizeof r, "%s", m ? json_string_value(json_object_get(m, "stop_reason")) : "?");
    json_t *sq = json_object_get(m, "stop_sequence");
    snprintf(q, sizeof q, "%s", json_is_string(sq) ? json_string_value(sq) : "");
    *seq = sq ? q : NULL;
    if (m) CHECK(json_is_array(json_object_get(m, "content")));   /* [] rather than null when empty */
    json_decref(m);
    return r;
}

static void test_stop_reasons(void) {
    const char *seq;
    CHECK(!strcmp(reason_of("{\"message\":{\"content\":\"a\"},\"done\":true,\"done_reason\":\"stop\"}", NULL, &seq), "end_turn") && !seq);
    CHECK(!strcmp(reason_of("{\"message\":{\"content\":\"a\"},\"done\":true,\"done_reason\":\"length\"}", NULL, &seq), "max_tokens") && !seq);
    CHECK(!strcmp(reason_of("{\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"load\"}", NULL, &seq), "end_turn"));
    /* D20: the stop string that ended generation is one of the request's */
    CHECK(!strcmp(reason_of("{\"message\":{\"content\":\"a\"},\"done\":true,\"done_reason\":\"stop\",\"_stop_sequence\":\"##\"}",
                            "[\"END\",\"##\"]", &seq), "stop_sequence") && seq && !strcmp(seq, "##"));
    /* ... or the model's own (its end-of-turn text): an ordinary end_turn */
    CHECK(!strcmp(reason_of("{\"message\":{\"content\":\"a\"},\"done\":true,\"done_reason\":\"stop\",\"_stop_sequence\":\"<|eot|>\"}",
                            "[\"END\"]", &seq), "end_turn") && !seq);
}

/* ---- streamed events (§3.4) ---- */

/* Feed the native objects to a streaming adapter and return the event names, space-separated,
 * with the parsed data of every event in *datas. */
static char *run_stream(const char *const *natives, size_t n, json_t **datas) {
    json_t *body = js("{\"model\":\"qwen3\",\"stream\":true}");
    api_adapter *a = api_anthropic_adapter_new(body, NULL, 9);
    ll_http_stream *s = ll_http_stream_new(LL_API_ANTHROPIC, 1 << 20);
    s->streaming = true;
    for (size_t i = 0; i < n; i++) {
        json_t *v = js(natives[i]);
        CHECK(a->stream(a, s, v) == LL_OK);
        json_decref(v);
    }
    a->free(a);
    json_decref(body);
    static char raw[16384];
    bool eof = false;
    long got = ll_http_stream_read(s, raw, sizeof raw - 1, &eof);
    ll_http_stream_unref(s);
    raw[got > 0 ? got : 0] = 0;
    char *names = calloc(1, 4096);
    *datas = json_array();
    /* every event: "event: NAME\ndata: JSON\n\n", data.type == NAME */
    for (char *p = raw; *p;) {
        char *nl = strchr(p, '\n');
        CHECK(!strncmp(p, "event: ", 7) && nl);
        if (!nl || strncmp(p, "event: ", 7)) break;
        strncat(names, p + 7, (size_t)(nl - p - 7));
        strcat(names, " ");
        char *d = nl + 1, *end = strstr(d, "\n\n");
        CHECK(!strncmp(d, "data: ", 6) && end);
        if (!end) break;
        *end = 0;
        json_t *v = js(d + 6);
        CHECK(!strncmp(json_string_value(json_object_get(v, "type")), p + 7, (size_t)(nl - p - 7)));
        json_array_append_new(*datas, v);
        p = end + 2;
    }
    return names;
}

static void test_stream_text_then_calls_in_chunks(void) {
    /* path A: calls arrive in their own non-final chunks, and the final chunk repeats them
     * (as a non-streamed aggregate would); each call is sent once */
    const char *const natives[] = {
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"Let me\"},\"done\":false}",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\" check.\"},\"done\":false}",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[" CALL_A "]},\"done\":false}",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[" CALL_B "]},\"done\":false}",
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[" CALL_A "," CALL_B "]},"
        "\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":152,\"eval_count\":41}",
    };
    json_t *d = NULL;
    char *names = run_stream(natives, 5, &d);
    CHECK_MSG(!strcmp(names, "message_start content_block_start content_block_delta content_block_delta content_block_stop "
                             "content_block_start content_block_delta content_block_stop "
                             "content_block_start content_block_delta content_block_stop message_delta message_stop "),
              "%s", names);
    if (json_array_size(d) == 13) {
        char *s = dump(json_object_get(json_array_get(d, 0), "message"));
        CHECK_MSG(s && strstr(s, "\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":0}}"), "%s", s);
        ll_free(s);
        static const char *const want[] = {
            NULL,
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me\"}}",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" check.\"}}",
            "{\"type\":\"content_block_stop\",\"index\":0}",
            "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_k3v9x0qa\",\"name\":\"get_weather\",\"input\":{}}}",
            "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Paris\\\",\\\"unit\\\":\\\"C\\\"}\"}}",
            "{\"type\":\"content_block_stop\",\"index\":1}",
            "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_00000002\",\"name\":\"get_time\",\"input\":{}}}",
            "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}",
            "{\"type\":\"content_block_stop\",\"index\":2}",
            "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"input_tokens\":152,\"output_tokens\":41}}",
            "{\"type\":\"message_stop\"}",
        };
        for (size_t i = 1; i < 13; i++) {
            s = dump(json_array_get(d, i));
            CHECK_MSG(s && !strcmp(s, want[i]), "event %zu: %s", i, s ? s : "(null)");
            ll_free(s);
        }
    }
    free(names);
    json_decref(d);
}

static void test_stream_calls_in_final_chunk_only(void) {
    /* path B: nothing streamed before the final chunk, which carries the calls; blocks count
     * from 0 and the only event before them is message_start */
    const char *const natives[] = {
        "{\"model\":\"qwen3\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[" CALL_B "]},"
        "\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":3,\"eval_count\":2}",
    };
    json_t *d = NULL;
    char *names = run_stream(natives, 1, &d);
    CHECK_MSG(!strcmp(names, "message_start content_block_start content_block_delta content_block_stop message_delta message_stop "),
              "%s", names);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(d, 1), "index")), 0);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(json_array_get(d, 4), "delta"), "stop_reason")), "tool_use"));
    free(names);
    json_decref(d);
}

static void test_stream_thinking_then_text(void) {
    const char *const natives[] = {
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\"},\"done\":false}",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"Yes.\"},\"done\":false}",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":1,\"eval_count\":2}",
    };
    json_t *d = NULL;
    char *names = run_stream(natives, 3, &d);
    CHECK_MSG(!strcmp(names, "message_start content_block_start content_block_delta content_block_stop "
                             "content_block_start content_block_delta content_block_stop message_delta message_stop "),
              "%s", names);
    char *s = dump(json_array_get(d, 1));
    CHECK_MSG(s && !strcmp(s, "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}"), "%s", s);
    ll_free(s);
    s = dump(json_array_get(d, 2));
    CHECK_MSG(s && !strcmp(s, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}"), "%s", s);
    ll_free(s);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(d, 4), "index")), 1);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(json_array_get(d, 7), "delta"), "stop_reason")), "max_tokens"));
    free(names);
    json_decref(d);
}

static void test_stream_empty_answer(void) {
    /* nothing generated: no content block at all, still a complete message */
    const char *const natives[] = {
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":1,\"eval_count\":0}",
    };
    json_t *d = NULL;
    char *names = run_stream(natives, 1, &d);
    CHECK_MSG(!strcmp(names, "message_start message_delta message_stop "), "%s", names);
    free(names);
    json_decref(d);
}

int main(void) {
    RUN(test_tool_use_block);
    RUN(test_message_with_tool_calls);
    RUN(test_stop_reasons);
    RUN(test_stream_text_then_calls_in_chunks);
    RUN(test_stream_calls_in_final_chunk_only);
    RUN(test_stream_thinking_then_text);
    RUN(test_stream_empty_answer);
    return test_summary();
}
