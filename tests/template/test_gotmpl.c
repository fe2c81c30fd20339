/* Tests of the Go-template engine (src/template/gotmpl*): the 66 Ollama 0.33 renders of
 * ../shared/templates/rendering.jsonl byte for byte, each construct, and the T rows of
 * ../shared/spec/fault-cases.md that concern the engine. */
#include "template/gotmpl.h"
#include "../test.h"

/* ---- helpers ---- */

/* render src over data (JSON text, NULL = {}); returns the output (free) or NULL with err */
static __attribute__((unused)) char *render(const char *src, const char *data_json, ll_error *err) {
    ll_tmpl *t;
    if (ll_tmpl_parse(&t, src, strlen(src), err) != LL_OK) return NULL;
    json_error_t je;
    json_t *data = json_loads(data_json ? data_json : "{}", 0, &je);
    if (!data) { fprintf(stderr, "bad test JSON: %s\n", je.text); ll_tmpl_free(t); return NULL; }
    char *out = NULL;
    size_t n;
    ll_tmpl_render(t, data, NULL, &out, &n, err);
    json_decref(data);
    ll_tmpl_free(t);
    return out;
}

/* expect src over data to render exactly want */
#define CHECK_RENDER(src, data, want) do { ll_error _e = { 0 }; char *_o = render((src), (data), &_e); \
    CHECK_MSG(_o && strcmp(_o, (want)) == 0, "%s -> '%s' (want '%s') %s", (src), _o ? _o : "(null)", (want), _e.msg); \
    ll_free(_o); } while (0)

/* expect an error whose message contains needle */
#define CHECK_RENDER_ERR(src, data, code, needle) do { ll_error _e = { 0 }; char *_o = render((src), (data), &_e); \
    CHECK_MSG(!_o && _e.code == (code) && strstr(_e.msg, (needle)), "%s -> '%s' err %d '%s' (want %d '%s')", \
              (src), _o ? _o : "(null)", _e.code, _e.msg, (code), (needle)); ll_free(_o); } while (0)

/* ---- rendering.jsonl: Ollama 0.33's own renders ---- */

static void test_rendering_jsonl(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/templates/rendering.jsonl", LL_SHARED_DIR);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, ok = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *rec = json_loads(line, 0, &je);
        CHECK(rec != NULL);
        if (!rec) continue;
        n++;
        const char *tid = json_string_value(json_object_get(rec, "template_id"));
        const char *rid = json_string_value(json_object_get(rec, "request_id"));
        const char *endpoint = json_string_value(json_object_get(rec, "endpoint"));
        json_t *tmpl_src = json_object_get(rec, "template");
        json_t *body = json_object_get(rec, "body");
        int status = (int)json_integer_value(json_object_get(rec, "status"));
        ll_error err = { 0 };
        ll_tmpl *t = NULL;
        ll_status st = ll_tmpl_parse(&t, json_string_value(tmpl_src), json_string_length(tmpl_src), &err);
        CHECK_MSG(st == LL_OK, "%s: parse: %s", tid, err.msg);
        if (st != LL_OK) { json_decref(rec); continue; }
        char name[128];
        snprintf(name, sizeof name, "registry.ollama.ai/library/tmpl-%s:latest", tid);
        st = ll_tmpl_check_request(t, body, endpoint, name, &err);
        if (status == 400) {
            const char *want = json_string_value(json_object_get(rec, "error"));
            bool good = st == LL_ERR_UNSUPPORTED && want && strcmp(err.msg, want) == 0;
            CHECK_MSG(good, "%s/%s: want 400 '%s', got %d '%s'", tid, rid, want ? want : "", st, err.msg);
            ok += good;
        } else {
            CHECK_MSG(st == LL_OK, "%s/%s: check: %s", tid, rid, err.msg);
            json_t *values = NULL;
            st = ll_tmpl_values_from_request(&values, body, endpoint, NULL, &err);
            CHECK_MSG(st == LL_OK && values, "%s/%s: values: %s", tid, rid, err.msg);
            char *out = NULL;
            size_t out_n = 0;
            if (values) st = ll_tmpl_execute(t, values, NULL, &out, &out_n, &err);
            json_t *want = json_object_get(rec, "rendered");
            bool good = out && out_n == json_string_length(want) &&
                        memcmp(out, json_string_value(want), out_n) == 0;
            if (!good) {
                json_t *got = out ? json_stringn(out, out_n) : NULL;
                char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
                char *w = json_dumps(want, JSON_ENCODE_ANY);
                CHECK_MSG(good, "%s/%s: err '%s'\n  got  %s\n  want %s", tid, rid, err.msg, g ? g : "(null)", w);
                free(g); free(w); json_decref(got);
            }
            ok += good;
            ll_free(out);
            json_decref(values);
        }
        ll_tmpl_free(t);
        json_decref(rec);
    }
    free(line);
    fclose(f);
    printf("rendering.jsonl: %d of %d records match\n", ok, n);
    CHECK_EQ_INT(n, 66);
    CHECK_EQ_INT(ok, n);
}

int main(void) {
    RUN(test_rendering_jsonl);
    return test_summary();
}
