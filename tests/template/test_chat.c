/* Tests for src/template/chat: SmolLM2's reference prompts and the Llama 3.2 examples of the
 * prompt-format spec byte for byte (both read from ../shared at run time), family detection,
 * each family's format, hostile templates, and allocation-failure injection. */
#include "core/core.h"
#include "gguf/gguf.h"
#include "template/chat.h"
#include "../test.h"

/* ---- a small JSON reader, enough for reference.json ------------------------------------- */

typedef struct jv {
    char type;                 /* 'o' object, 'a' array, 's' string, 'n' number, 'b', 'z' null */
    char *str;                 /* string value, or the key when inside an object */
    size_t len;
    struct jv *kids, *next;    /* children (object members / array items) */
    char *key;
} jv;

typedef struct { const char *p, *end; int bad; } jcur;

static void jws(jcur *c) { while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++; }

static void put_utf8(char *o, size_t *n, unsigned cp) {
    if (cp < 0x80) o[(*n)++] = (char)cp;
    else if (cp < 0x800) { o[(*n)++] = (char)(0xC0 | cp >> 6); o[(*n)++] = (char)(0x80 | (cp & 63)); }
    else if (cp < 0x10000) { o[(*n)++] = (char)(0xE0 | cp >> 12); o[(*n)++] = (char)(0x80 | (cp >> 6 & 63)); o[(*n)++] = (char)(0x80 | (cp & 63)); }
    else { o[(*n)++] = (char)(0xF0 | cp >> 18); o[(*n)++] = (char)(0x80 | (cp >> 12 & 63)); o[(*n)++] = (char)(0x80 | (cp >> 6 & 63)); o[(*n)++] = (char)(0x80 | (cp & 63)); }
}

static unsigned hex4(jcur *c) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        if (c->p >= c->end) { c->bad = 1; return 0; }
        char h = *c->p++;
        v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : (c->bad = 1, 0));
    }
    return v;
}

/* Decode a JSON string at c->p (which points at the opening quote). */
static char *jstr(jcur *c, size_t *len) {
    c->p++;
    char *o = malloc((size_t)(c->end - c->p) + 1);
    size_t n = 0;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if (ch != '\\') { o[n++] = ch; continue; }
        if (c->p >= c->end) break;
        char e = *c->p++;
        switch (e) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'u': {
            unsigned cp = hex4(c);
            if (cp >= 0xD800 && cp < 0xDC00 && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
                c->p += 2;
                unsigned lo = hex4(c);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(o, &n, cp);
            break;
        }
        default: o[n++] = e;
        }
    }
    if (c->p >= c->end) c->bad = 1; else c->p++;
    o[n] = 0;
    *len = n;
    return o;
}

static jv *jparse(jcur *c) {
    jws(c);
    if (c->p >= c->end) { c->bad = 1; return NULL; }
    jv *v = calloc(1, sizeof *v);
    char ch = *c->p;
    if (ch == '{' || ch == '[') {
        v->type = ch == '{' ? 'o' : 'a';
        c->p++;
        jv **tail = &v->kids;
        for (;;) {
            jws(c);
            if (c->p < c->end && *c->p == (ch == '{' ? '}' : ']')) { c->p++; break; }
            char *key = NULL;
            if (ch == '{') {
                size_t kl;
                if (c->p >= c->end || *c->p != '"') { c->bad = 1; break; }
                key = jstr(c, &kl);
                jws(c);
                if (c->p >= c->end || *c->p != ':') { free(key); c->bad = 1; break; }
                c->p++;
            }
            jv *k = jparse(c);
            if (!k) { free(key); break; }
            k->key = key;
            *tail = k;
            tail = &k->next;
            jws(c);
            if (c->p < c->end && *c->p == ',') c->p++;
            if (c->bad) break;
        }
    } else if (ch == '"') {
        v->type = 's';
        v->str = jstr(c, &v->len);
    } else {
        v->type = ch == 't' || ch == 'f' ? 'b' : ch == 'n' ? 'z' : 'n';
        const char *s = c->p;
        while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' && *c->p != '\n') c->p++;
        v->len = (size_t)(c->p - s);
        v->str = malloc(v->len + 1);
        memcpy(v->str, s, v->len);
        v->str[v->len] = 0;
    }
    return v;
}

static void jfree(jv *v) {
    while (v) {
        jv *n = v->next;
        jfree(v->kids);
        free(v->str);
        free(v->key);
        free(v);
        v = n;
    }
}

static jv *jget(const jv *o, const char *key) {
    for (jv *k = o ? o->kids : NULL; k; k = k->next) if (k->key && strcmp(k->key, key) == 0) return k;
    return NULL;
}

static jv *jload(const char *path) {
    size_t n;
    unsigned char *buf = test_read_file(path, &n);
    if (!buf) return NULL;
    jcur c = { (const char *)buf, (const char *)buf + n, 0 };
    jv *v = jparse(&c);
    free(buf);
    if (c.bad) { jfree(v); return NULL; }
    return v;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char *render(ll_str tmpl, const ll_chat_msg *m, size_t n, ll_chat_style style, bool gen,
                    size_t *len) {
    ll_chat_opts o = { .add_generation_prompt = gen, .style = style };
    ll_error err = {0};
    char *out = NULL;
    ll_status st = ll_chat_render_ex(tmpl, m, n, &o, &out, len, &err);
    CHECK_MSG(st == LL_OK, "render: %s", err.msg);
    return out;
}

/* Compare and show the first differing byte on failure. */
#define CHECK_BYTES(got, got_len, want, want_len) do { \
    size_t _gl = (got_len), _wl = (want_len), _i = 0; const char *_g = (got), *_w = (want); \
    if (!_g) { CHECK_MSG(0, "no output"); break; } \
    while (_i < _gl && _i < _wl && _g[_i] == _w[_i]) _i++; \
    CHECK_MSG(_gl == _wl && _i == _wl, "lengths %zu vs %zu, first difference at byte %zu: got \"%.40s\" want \"%.40s\"", \
              _gl, _wl, _i, _g + (_i < _gl ? _i : _gl), _w + (_i < _wl ? _i : _wl)); } while (0)

static ll_str llama32_template(ll_gguf **g) {
    ll_str t = { NULL, 0 };
    ll_error err = {0};
    bool found = false;
    *g = NULL;
    if (ll_gguf_open(g, LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-F32.gguf", &err) != LL_OK ||
        ll_gguf_get_str(*g, "tokenizer.chat_template", &t, &found, &err) != LL_OK || !found)
        CHECK_MSG(0, "cannot read tokenizer.chat_template: %s", err.msg);
    return t;
}

/* ---- SmolLM2: the four reference prompts ---------------------------------------------------- */

static void test_smollm2_reference_prompts(void) {
    jv *root = jload(LL_SHARED_DIR "/reference/smollm2/reference.json");
    CHECK(root != NULL);
    if (!root) return;
    jv *tm = jget(jget(root, "model"), "chat_template");
    jv *cases = jget(root, "cases");
    CHECK(tm && tm->type == 's' && cases && cases->type == 'a');
    if (!tm || !cases) { jfree(root); return; }
    ll_str tmpl = { tm->str, tm->len };
    CHECK(strcmp(ll_chat_family_name(tmpl), "chatml") == 0);
    int n_cases = 0;
    for (jv *c = cases->kids; c; c = c->next) {
        jv *msgs = jget(c, "messages"), *want = jget(c, "prompt_text");
        CHECK(msgs && want);
        if (!msgs || !want) continue;
        ll_chat_msg m[16];
        size_t n = 0;
        for (jv *x = msgs->kids; x && n < 16; x = x->next, n++) {
            m[n].role = jget(x, "role")->str;
            m[n].content = jget(x, "content")->str;
        }
        for (int style = 0; style < 2; style++) {
            size_t len = 0;
            char *got = render(tmpl, m, n, (ll_chat_style)style, true, &len);
            CHECK_BYTES(got, len, want->str, want->len);
            if (got) CHECK_EQ_INT(strlen(got), len);       /* NUL-terminated */
            ll_free(got);
        }
        n_cases++;
    }
    CHECK_EQ_INT(n_cases, 4);
    jfree(root);
}

/* ---- Llama 3.2: the spec's worked examples (§5), Ollama style --------------------------- */

/* The example text under heading "### <letter>." of llama3-prompt-format.md: the first code
 * block after the heading, either a JSON string literal or the ↵ view. *want_len gets the
 * byte count stated in the heading. Returns malloc'd bytes. */
static char *spec_example(const char *spec, size_t spec_len, char letter, size_t *len, size_t *want_len) {
    char head[8];
    snprintf(head, sizeof head, "### %c.", letter);
    const char *h = memmem(spec, spec_len, head, strlen(head));
    if (!h) return NULL;
    const char *dash = strstr(h, "\xe2\x80\x94 ");                 /* "— N bytes" */
    *want_len = dash ? strtoul(dash + 4, NULL, 10) : 0;
    const char *b = strstr(h, "```\n");
    if (!b) return NULL;
    b += 4;
    const char *e = strstr(b, "\n```");
    if (!e) return NULL;
    if (*b == '"') {
        jcur c = { b, e, 0 };
        char *s = jstr(&c, len);
        return s;
    }
    char *o = malloc((size_t)(e - b) + 2);
    size_t n = 0;
    static const char nl[] = "\xe2\x86\xb5";                      /* ↵ */
    for (const char *p = b; p < e;) {
        if ((size_t)(e - p) >= 3 && memcmp(p, nl, 3) == 0) {
            o[n++] = '\n';
            p += 3;
            if (p < e && *p == '\n') p++;                          /* the view's line break */
        } else {
            o[n++] = *p++;
        }
    }
    o[n] = 0;
    *len = n;
    return o;
}

static void test_llama32_spec_examples_ollama_style(void) {
    size_t spec_len;
    char *spec = (char *)test_read_file(LL_SHARED_DIR "/spec/llama3-prompt-format.md", &spec_len);
    CHECK(spec != NULL);
    if (!spec) return;
    char *spec_z = realloc(spec, spec_len + 1);
    spec = spec_z;
    spec[spec_len] = 0;
    ll_gguf *g;
    ll_str tmpl = llama32_template(&g);
    CHECK(strcmp(ll_chat_family_name(tmpl), "llama3.2") == 0);

    static const ll_chat_msg A[] = { { "user", "Tell me a joke" } };
    static const ll_chat_msg B[] = { { "system", "You are a pirate." }, { "user", "Hello" } };
    static const ll_chat_msg C[] = { { "system", "Be brief." }, { "user", "Hi" },
                                     { "assistant", "Hello! How can I help?" }, { "user", "What is 2+2?" } };
    static const ll_chat_msg I[] = { { "user", "Say hi" }, { "assistant", "Hi" } };
    static const ll_chat_msg J[] = { { "system", "A" }, { "user", "u1" }, { "system", "B" }, { "user", "u2" } };
    static const ll_chat_msg K[] = { { "user", "one" }, { "user", "two" } };
    struct { char letter; const ll_chat_msg *m; size_t n; } ex[] = {
        { 'A', A, 1 }, { 'B', B, 2 }, { 'C', C, 4 }, { 'I', I, 2 }, { 'J', J, 4 }, { 'K', K, 2 },
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        size_t want_len = 0, spec_bytes = 0, len = 0;
        char *want = spec_example(spec, spec_len, ex[i].letter, &want_len, &spec_bytes);
        CHECK_MSG(want != NULL, "example %c not found in the spec", ex[i].letter);
        if (!want) continue;
        CHECK_MSG(want_len == spec_bytes, "example %c: extracted %zu bytes, heading says %zu",
                  ex[i].letter, want_len, spec_bytes);
        char *got = render(tmpl, ex[i].m, ex[i].n, LL_CHAT_STYLE_OLLAMA, true, &len);
        CHECK_BYTES(got, len, want, want_len);
        /* ll_chat_render is the Ollama style. */
        char *got2 = NULL;
        size_t len2 = 0;
        ll_error err = {0};
        CHECK(ll_chat_render(tmpl, ex[i].m, ex[i].n, true, &got2, &len2, &err) == LL_OK);
        CHECK_BYTES(got2, len2, want, want_len);
        ll_free(got);
        ll_free(got2);
        free(want);
    }
    ll_gguf_close(g);
    free(spec);
}

/* The GGUF's own Jinja (Meta's template): date line, trimmed contents, no BOS text. */
static void test_llama32_jinja_style(void) {
    ll_gguf *g;
    ll_str tmpl = llama32_template(&g);
    static const ll_chat_msg B[] = { { "system", " You are a pirate.\n" }, { "user", "  Hello \n" },
                                     { "assistant", "Arr." }, { "user", "Bye" } };
    size_t len = 0;
    char *got = render(tmpl, B, 4, LL_CHAT_STYLE_JINJA, true, &len);
    const char *want =
        "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\nYou are a pirate.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nArr.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK_BYTES(got, len, want, strlen(want));
    ll_free(got);
    /* No system message: the block still appears, empty; no generation prompt when not asked. */
    static const ll_chat_msg A[] = { { "user", "Tell me a joke" } };
    got = render(tmpl, A, 1, LL_CHAT_STYLE_JINJA, false, &len);
    want = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
           "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
           "Tell me a joke<|eot_id|>";
    CHECK_BYTES(got, len, want, strlen(want));
    CHECK(got && strstr(got, "<|begin_of_text|>") == NULL);
    ll_free(got);
    ll_gguf_close(g);
}

/* ---- family detection and formats ------------------------------------------------------------ */

static const char *T_CHATML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char *T_QWEN =
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}...{%- endfor %}";
static const char *T_LLAMA3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
static const char *T_LLAMA31 =
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + \"\\n\\n\" }}...<|eot_id|>";
static const char *T_LLAMA2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
static const char *T_MISTRAL =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";
static const char *T_MISTRAL_V3 =
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message[\"role\"] == \"user\" %}{%- if tools is not none %}{{- \"[AVAILABLE_TOOLS] [\" }}{%- endif %}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}{%- endif %}{%- endfor %}";
static const char *T_ZEPHYR =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
static const char *T_GEMMA =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
static const char *T_PHI3 =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";
static const char *T_PHI3_MINI =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\\n'}}{% endif %}{% endfor %}";

static void test_family_detection(void) {
    struct { const char *t; const char *name; } cases[] = {
        { T_CHATML, "chatml" }, { T_QWEN, "chatml" }, { T_LLAMA3, "llama3" }, { T_LLAMA31, "llama3.1" },
        { T_LLAMA2, "llama2" }, { T_MISTRAL, "mistral" }, { T_MISTRAL_V3, "none" },
        { T_ZEPHYR, "zephyr" }, { T_GEMMA, "gemma" }, { T_PHI3, "phi3" }, { T_PHI3_MINI, "phi3" },
        { "", "none" }, { "{{ prompt }}", "none" }, { "### Instruction:\n{{ content }}\n### Response:", "none" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(strcmp(ll_chat_family_name(ll_str_c(cases[i].t)), cases[i].name) == 0,
                  "case %zu: got %s want %s", i, ll_chat_family_name(ll_str_c(cases[i].t)), cases[i].name);
    ll_str nul = { NULL, 0 };
    CHECK(ll_chat_detect(nul) == LL_CHAT_NONE);
    /* A view is length-delimited: a marker past n does not count. */
    ll_str cut = { T_GEMMA, 40 };
    CHECK(ll_chat_detect(cut) == LL_CHAT_NONE);
}

/* llama.cpp's test conversation (tests/test-chat-template.cpp) and each family's output, as
 * the family's Jinja template renders it. */
static const ll_chat_msg CONV[] = {
    { "system", "You are a helpful assistant" }, { "user", "Hello" }, { "assistant", "Hi there" },
    { "user", "Who are you" }, { "assistant", "   I am an assistant   " }, { "user", "Another question" },
};

static void check_family(const char *tmpl, const ll_chat_msg *m, size_t n, bool gen, const char *want) {
    size_t len = 0;
    char *got = render(ll_str_c(tmpl), m, n, LL_CHAT_STYLE_JINJA, gen, &len);
    CHECK_BYTES(got, len, want, strlen(want));
    ll_free(got);
}

static void test_family_formats(void) {
    check_family(T_CHATML, CONV, 6, true,
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
        "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
        "<|im_start|>assistant\n");
    /* Generic ChatML has no default system message; Qwen's literal one is inserted. */
    check_family(T_CHATML, CONV + 1, 1, false, "<|im_start|>user\nHello<|im_end|>\n");
    check_family(T_QWEN, CONV + 1, 1, true,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
    check_family(T_LLAMA3, CONV, 6, true,
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
    check_family(T_LLAMA2, CONV, 6, true,
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s>"
        "<s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]");
    check_family(T_MISTRAL, CONV + 1, 5, true,
        "[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>"
        "[INST] Another question [/INST]");
    check_family(T_MISTRAL, CONV, 2, true, "[INST] You are a helpful assistant\n\nHello [/INST]");
    check_family(T_ZEPHYR, CONV, 6, true,
        "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n"
        "<|user|>\nWho are you</s>\n<|assistant|>\n   I am an assistant   </s>\n<|user|>\nAnother question</s>\n"
        "<|assistant|>\n");
    check_family(T_GEMMA, CONV, 6, true,
        "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
        "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n"
        "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
    check_family(T_PHI3, CONV, 6, true,
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n"
        "<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n"
        "<|assistant|>\n");
    check_family(T_PHI3, CONV + 1, 2, false, "<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n</s>");
    check_family(T_PHI3_MINI, CONV, 4, true,
        "<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n");
}

/* Ollama style for Llama 3 / 3.1 templates is Ollama's llama3-instruct: roles as given, no
 * trimming, collation, and the generation prompt always (spec §10). */
static void test_llama3_ollama_style(void) {
    static const ll_chat_msg m[] = { { "system", "S" }, { "user", " a" }, { "user", "b" } };
    size_t len = 0;
    char *got = render(ll_str_c(T_LLAMA31), m, 3, LL_CHAT_STYLE_OLLAMA, false, &len);
    const char *want = "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\n a\n\nb<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK_BYTES(got, len, want, strlen(want));
    ll_free(got);
}

static void test_unknown_or_missing_template_is_unsupported(void) {
    ll_chat_msg m[] = { { "user", "hi" } };
    char *out = (char *)1;
    size_t len = 99;
    ll_error err = {0};
    CHECK(ll_chat_render(ll_str_c("{{ .Prompt }}"), m, 1, true, &out, &len, &err) == LL_ERR_UNSUPPORTED);
    CHECK(out == NULL);
    CHECK_EQ_INT(len, 0);
    CHECK_STR_CONTAINS(err.msg, "not recognised");
    ll_error e2 = {0};
    ll_str none = { NULL, 0 };
    CHECK(ll_chat_render(none, m, 1, true, &out, &len, &e2) == LL_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(e2.msg, "no chat template");
    /* NULL array with n > 0 is the caller's error; zero messages render fine. */
    ll_error e3 = {0};
    CHECK(ll_chat_render(ll_str_c(T_CHATML), NULL, 2, true, &out, &len, &e3) == LL_ERR_ARG);
    ll_error e4 = {0};
    CHECK(ll_chat_render(ll_str_c(T_CHATML), NULL, 0, true, &out, &len, &e4) == LL_OK);
    CHECK(out && strcmp(out, "<|im_start|>assistant\n") == 0);
    ll_free(out);
    /* NULL role / content count as "". */
    ll_chat_msg nul[] = { { NULL, NULL } };
    ll_error e5 = {0};
    CHECK(ll_chat_render(ll_str_c(T_CHATML), nul, 1, false, &out, &len, &e5) == LL_OK);
    CHECK(out && strcmp(out, "<|im_start|>\n<|im_end|>\n") == 0);
    ll_free(out);
}

/* ThreadSanitizer's memmem interceptor marks the whole haystack as read on every call, so a
 * linear scan that calls memmem once per marker costs (markers x file) there: the time bound
 * below only means something without TSan (ASan builds keep it). */
#if defined(__SANITIZE_THREAD__)
#define CHAT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHAT_TSAN 1
#endif
#endif
#ifndef CHAT_TSAN
#define CHAT_TSAN 0
#endif

/* Templates are matched, never executed: 32 MiB of junk salted with every marker, truncated
 * markers at the very end, and unterminated literals must neither crash nor be slow. */
static void test_hostile_templates(void) {
    const size_t n = (size_t)32 << 20;
    char *t = malloc(n);
    uint64_t x = 1;
    for (size_t i = 0; i < n; i++) { x = x * 6364136223846793005ull + 1; t[i] = (char)(x >> 56); }
    static const char *salt[] = { "<|im_start|>system\\n", "<|im_start|>system\n{{", "<|start_header_id|>",
                                  "[INST]", "<<SYS>>", "<|user|>", "{%", "{{", "'", "\\" };
    for (size_t k = 0; k < 4096; k++) {
        const char *s = salt[k % 10];
        memcpy(t + (k * 7919) % (n - 32), s, strlen(s));
    }
    static const char tail[] = "<|im_start|>system\\";
    memcpy(t + n - (sizeof tail - 1), tail, sizeof tail - 1);
    ll_str big = { t, n };
    uint64_t t0 = ll_time_ns();
    ll_chat_msg m[] = { { "user", "hi" } };
    char *out = NULL;
    size_t len = 0;
    ll_error err = {0};
    ll_status st = ll_chat_render(big, m, 1, true, &out, &len, &err);
    CHECK(st == LL_OK || st == LL_ERR_UNSUPPORTED);
    ll_free(out);
    if (!CHAT_TSAN)
        CHECK_MSG(ll_time_ns() - t0 < 60000000000ull, "took %.2f s", (double)(ll_time_ns() - t0) / 1e9);   /* hang detector */
    /* Only an unterminated ChatML system literal: no default system message, no over-read. */
    static const char *cuts[] = { "<|im_start|>", "<|im_start|>system", "<|im_start|>system\n",
                                  "<|im_start|>system\\n", "<|im_start|>system\nabc", "<|im_start|>system\n<|im_end|>" };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t l = strlen(cuts[i]);
        char *exact = malloc(l);                 /* no NUL after it: ASan sees any over-read */
        memcpy(exact, cuts[i], l);
        ll_str v = { exact, l };
        ll_error e = {0};
        CHECK(ll_chat_render(v, m, 1, true, &out, &len, &e) == LL_OK);
        CHECK(out && strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0);
        ll_free(out);
        free(exact);
    }
    free(t);
}

static void test_alloc_failure_injection(void) {
    int saw_ok = 0;
    for (long k = 0; k < 64 && !saw_ok; k++) {
        for (int style = 0; style < 2; style++) {
            ll_error err = {0};
            char *out = (char *)1;
            size_t len = 0;
            ll_chat_opts o = { .add_generation_prompt = true, .style = (ll_chat_style)style };
            ll_alloc_fail_after(k);
            ll_status st = ll_chat_render_ex(ll_str_c(T_LLAMA31), CONV, 6, &o, &out, &len, &err);
            ll_alloc_fail_after(-1);
            if (st == LL_OK) { saw_ok = 1; CHECK(out != NULL); ll_free(out); }
            else { CHECK_EQ_INT(st, LL_ERR_NOMEM); CHECK(out == NULL); }
        }
    }
    CHECK(saw_ok);
}

int main(void) {
    RUN(test_smollm2_reference_prompts);
    RUN(test_llama32_spec_examples_ollama_style);
    RUN(test_llama32_jinja_style);
    RUN(test_family_detection);
    RUN(test_family_formats);
    RUN(test_llama3_ollama_style);
    RUN(test_unknown_or_missing_template_is_unsupported);
    RUN(test_hostile_templates);
    RUN(test_alloc_failure_injection);
    return test_summary();
}
