/* libFuzzer target for the chat-template matcher and renderer (src/template/chat.c).
 *
 * The input is split at its first two 0xFF bytes into a template text, a system message and a
 * user message (missing parts are empty); the template is matched as a Jinja text would be and
 * the conversation rendered in both styles, with and without the generation prompt, then with
 * a fixed Llama 3.2 and ChatML template over the fuzzed message contents. Checks: no crash,
 * LL_OK or LL_ERR_UNSUPPORTED only, the output is NUL-terminated at the reported length and
 * contains the user message (when one is given: every family writes its contents). */
#include "template/chat.h"

#include <stdlib.h>
#include <string.h>

static const char *next_part(const unsigned char **p, const unsigned char *end, size_t *n) {
    const unsigned char *start = *p, *q = start;
    while (q < end && *q != 0xFF) q++;
    *n = (size_t)(q - start);
    *p = q < end ? q + 1 : q;
    return (const char *)start;
}

static char *dup_cstr(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) abort();
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

static int is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void render_all(ll_str tmpl, const char *sys, const char *user) {
    ll_chat_msg msgs[3] = { { "system", sys }, { "user", user }, { "assistant", user } };
    for (int style = 0; style < 2; style++)
        for (int gen = 0; gen < 2; gen++)
            for (size_t n = 1; n <= 3; n++) {
                ll_chat_opts o = { .add_generation_prompt = gen, .style = (ll_chat_style)style };
                char *out = NULL;
                size_t len = 0;
                ll_error err = { 0 };
                ll_status st = ll_chat_render_ex(tmpl, msgs, n, &o, &out, &len, &err);
                if (st == LL_ERR_UNSUPPORTED || st == LL_ERR_NOMEM) { if (out) abort(); continue; }
                if (st != LL_OK || !out || strlen(out) != len) abort();
                /* Contents with NUL cut short are still C strings; each must appear (trimmed
                 * families strip ASCII whitespace, so look for a non-space core). */
                const char *core = user;
                while (*core && is_ascii_space(*core)) core++;
                size_t cl = strlen(core);
                while (cl && is_ascii_space(core[cl - 1])) cl--;
                if (n >= 2 && cl && cl < 64 && !memmem(out, len, core, cl)) abort();
                ll_free(out);
            }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > 1 << 16) return 0;
    const unsigned char *p = data, *end = data + size;
    size_t nt, ns, nu;
    const char *t = next_part(&p, end, &nt);
    const char *s = next_part(&p, end, &ns);
    const char *u = next_part(&p, end, &nu);
    char *sys = dup_cstr(s, ns), *user = dup_cstr(u, nu);
    ll_str tmpl = { t, nt };
    (void)ll_chat_detect(tmpl);
    render_all(tmpl, sys, user);
    static const char *fixed[] = {
        "{{- bos_token }}<|start_header_id|>system<|end_header_id|>Cutting Knowledge Date: "
        "{{ strftime_now(\"%d %b %Y\") }}<|eot_id|>",
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
        "<|im_end|>\n{% endfor %}",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        render_all(ll_str_c(fixed[i]), sys, user);
    free(sys);
    free(user);
    return 0;
}
