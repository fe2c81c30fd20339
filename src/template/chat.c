/* chat: chat-template family detection and rendering (see chat.h for every format). */
#include "template/chat.h"

#include <string.h>

#define CHAT_MAX_OUT ((size_t)1 << 30)   /* 1 GiB: far beyond any context window */

/* ---- output buffer ---------------------------------------------------------------------- */

typedef struct {
    char     *p;
    size_t    n, cap;
    ll_status st;       /* first failure; appends become no-ops after it */
} chat_buf;

static void buf_put(chat_buf *b, const char *s, size_t n) {
    if (b->st != LL_OK || n == 0) return;
    size_t need;
    if (!ll_add_size(b->n, n + 1, &need) || need > CHAT_MAX_OUT) { b->st = LL_ERR_LIMIT; return; }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;            /* need <= 1 GiB, so this cannot overflow */
        char *q = ll_realloc(b->p, cap);
        if (!q) { b->st = LL_ERR_NOMEM; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_puts(chat_buf *b, const char *s) { if (s) buf_put(b, s, strlen(s)); }

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Jinja's `| trim` / Python's str.strip() on ASCII whitespace. */
static void buf_put_trimmed(chat_buf *b, const char *s) {
    if (!s) return;
    size_t n = strlen(s), i = 0;
    while (i < n && is_ws(s[i])) i++;
    while (n > i && is_ws(s[n - 1])) n--;
    buf_put(b, s + i, n - i);
}

/* Strip whitespace from b->p[from..n) in place (a whole composed string, as Llama 2's
 * content.strip() sees it). */
static void buf_strip_from(chat_buf *b, size_t from) {
    if (b->st != LL_OK || b->n <= from) return;
    size_t i = from;
    while (i < b->n && is_ws(b->p[i])) i++;
    memmove(b->p + from, b->p + i, b->n - i);
    b->n -= i - from;
    while (b->n > from && is_ws(b->p[b->n - 1])) b->n--;
    if (b->p) b->p[b->n] = 0;
}

/* ---- detection --------------------------------------------------------------------------- */

static int has(ll_str t, const char *needle) {
    size_t k = strlen(needle);
    return t.p && k <= t.n && memmem(t.p, t.n, needle, k) != NULL;
}

ll_chat_family ll_chat_detect(ll_str t) {
    if (!t.p || t.n == 0) return LL_CHAT_NONE;
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) {
        if (has(t, "strftime_now")) return LL_CHAT_LLAMA32;
        if (has(t, "Cutting Knowledge Date")) return LL_CHAT_LLAMA31;
        return LL_CHAT_LLAMA3;
    }
    if (has(t, "<|im_start|>")) return LL_CHAT_CHATML;
    if (has(t, "<start_of_turn>")) return LL_CHAT_GEMMA;
    if (has(t, "[INST]")) {
        if (has(t, "<<SYS>>")) return LL_CHAT_LLAMA2;
        if (has(t, "[AVAILABLE_TOOLS]") || has(t, "[SYSTEM_PROMPT]")) return LL_CHAT_NONE;
        if (has(t, "[INST] ") && has(t, " [/INST]")) return LL_CHAT_MISTRAL;
        return LL_CHAT_NONE;
    }
    if (has(t, "<|user|>") && has(t, "<|assistant|>"))
        return has(t, "<|end|>") ? LL_CHAT_PHI3 : LL_CHAT_ZEPHYR;
    return LL_CHAT_NONE;
}

const char *ll_chat_family_str(ll_chat_family f) {
    switch (f) {
    case LL_CHAT_NONE: return "none";
    case LL_CHAT_CHATML: return "chatml";
    case LL_CHAT_LLAMA3: return "llama3";
    case LL_CHAT_LLAMA31: return "llama3.1";
    case LL_CHAT_LLAMA32: return "llama3.2";
    case LL_CHAT_LLAMA2: return "llama2";
    case LL_CHAT_MISTRAL: return "mistral";
    case LL_CHAT_ZEPHYR: return "zephyr";
    case LL_CHAT_GEMMA: return "gemma";
    case LL_CHAT_PHI3: return "phi3";
    }
    return "none";
}

const char *ll_chat_family_name(ll_str tmpl) { return ll_chat_family_str(ll_chat_detect(tmpl)); }

/* ChatML default system message: a string literal in the template that spells
 * "<|im_start|>system" + newline + TEXT + "<|im_end|>" where TEXT is plain text (no quote,
 * brace, '+' or '<', so not an expression such as `+ messages[0]['content'] +`). The newline is
 * a real one (SmolLM2) or the escape \n (Qwen). Appends TEXT with \n, \t, \', \" and \\
 * decoded; returns 0 when the template has no such literal. Linear in the template size: each
 * candidate's scan stops at the next '<', and every candidate starts with one. */
static int chatml_default_system(ll_str t, chat_buf *out) {
    static const char open[] = "<|im_start|>system";
    static const char close[] = "<|im_end|>";
    const char *p = t.p, *end = t.p + t.n;
    while ((size_t)(end - p) >= sizeof open - 1) {
        const char *hit = memmem(p, (size_t)(end - p), open, sizeof open - 1);
        if (!hit) return 0;
        const char *q = hit + sizeof open - 1;
        p = q;
        if (q < end && *q == '\n') q++;
        else if (end - q >= 2 && q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *c = q;
        for (; c < end; c++) {
            if (*c == '<' || *c == '{' || *c == '}' || *c == '+') break;
            if ((*c == '\'' || *c == '"') && !(c > q && c[-1] == '\\')) break;
        }
        if (c == q || (size_t)(end - c) < sizeof close - 1 || memcmp(c, close, sizeof close - 1) != 0)
            continue;
        for (const char *r = q; r < c; r++) {
            if (*r == '\\' && r + 1 < c) {
                char e = r[1], d = e == 'n' ? '\n' : e == 't' ? '\t' : e;
                if (e == 'n' || e == 't' || e == '\'' || e == '"' || e == '\\') {
                    buf_put(out, &d, 1);
                    r++;
                    continue;
                }
            }
            buf_put(out, r, 1);
        }
        return 1;
    }
    return 0;
}

/* ---- renderers ------------------------------------------------------------------------------ */

static const char *str_or_empty(const char *s) { return s ? s : ""; }
static int role_is(const ll_chat_msg *m, const char *r) { return strcmp(str_or_empty(m->role), r) == 0; }

static void render_chatml(chat_buf *b, ll_str t, const ll_chat_msg *m, size_t n, bool gen) {
    if (n > 0 && !role_is(&m[0], "system")) {
        size_t mark = b->n;
        buf_puts(b, "<|im_start|>system\n");
        size_t body = b->n;
        if (chatml_default_system(t, b) && b->n > body) buf_puts(b, "<|im_end|>\n");
        else b->n = mark;                                   /* no default: take it back */
        if (b->p) b->p[b->n] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, "<|im_start|>");
        buf_puts(b, m[i].role);
        buf_puts(b, "\n");
        buf_puts(b, m[i].content);
        buf_puts(b, "<|im_end|>\n");
    }
    if (gen) buf_puts(b, "<|im_start|>assistant\n");
}

static void llama3_header(chat_buf *b, const char *role) {
    buf_puts(b, "<|start_header_id|>");
    buf_puts(b, role);
    buf_puts(b, "<|end_header_id|>\n\n");
}

/* Meta's Jinja templates. Llama 3: every message framed, contents trimmed. Llama 3.1 / 3.2:
 * an always-present system block with the dates and the (trimmed) leading system message. */
static void render_llama3_jinja(chat_buf *b, ll_chat_family f, const ll_chat_msg *m, size_t n,
                                bool gen) {
    size_t first = 0;
    if (f != LL_CHAT_LLAMA3) {
        llama3_header(b, "system");
        buf_puts(b, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
        if (n > 0 && role_is(&m[0], "system")) { buf_put_trimmed(b, m[0].content); first = 1; }
        buf_puts(b, "<|eot_id|>");
    }
    for (size_t i = first; i < n; i++) {
        int tool = f != LL_CHAT_LLAMA3 && (role_is(&m[i], "tool") || role_is(&m[i], "ipython"));
        llama3_header(b, tool ? "ipython" : str_or_empty(m[i].role));
        if (tool) buf_puts(b, m[i].content);            /* tool results are not trimmed */
        else buf_put_trimmed(b, m[i].content);
        buf_puts(b, "<|eot_id|>");
    }
    if (gen) llama3_header(b, "assistant");
}

/* Ollama's collation (llama3-prompt-format.md §4.1 step 5): runs of one role become one
 * message joined by "\n\n" (tool messages stay apart). Returns the collated messages as
 * (start, count) ranges over m: grp[i] = first index, cnt[i] = run length. */
static size_t collate(const ll_chat_msg *m, size_t n, size_t *grp, size_t *cnt) {
    size_t g = 0;
    for (size_t i = 0; i < n; i++) {
        if (g > 0 && !role_is(&m[i], "tool") &&
            strcmp(str_or_empty(m[grp[g - 1]].role), str_or_empty(m[i].role)) == 0) {
            cnt[g - 1]++;
            continue;
        }
        grp[g] = i;
        cnt[g] = 1;
        g++;
    }
    return g;
}

static void put_group(chat_buf *b, const ll_chat_msg *m, size_t start, size_t count) {
    for (size_t k = 0; k < count; k++) {
        if (k) buf_puts(b, "\n\n");
        buf_puts(b, m[start + k].content);
    }
}

/* Ollama's rendering (spec §3 and §10). llama3-instruct for Llama 3 / 3.1, the registry
 * llama3.2 TEMPLATE for 3.2. Needs two scratch arrays of n size_t. */
static void render_llama3_ollama(chat_buf *b, ll_chat_family f, const ll_chat_msg *m, size_t n,
                                 size_t *grp, size_t *cnt) {
    size_t g = collate(m, n, grp, cnt);
    if (f != LL_CHAT_LLAMA32) {
        for (size_t i = 0; i < g; i++) {
            llama3_header(b, str_or_empty(m[grp[i]].role));
            put_group(b, m, grp[i], cnt[i]);
            buf_puts(b, "<|eot_id|>");
        }
        llama3_header(b, "assistant");
        return;
    }
    llama3_header(b, "system");
    buf_puts(b, "Cutting Knowledge Date: December 2023\n\n");
    int any = 0;                                    /* .System: every system content */
    for (size_t i = 0; i < n; i++)
        if (role_is(&m[i], "system")) {
            if (any++) buf_puts(b, "\n\n");
            buf_puts(b, m[i].content);
        }
    buf_puts(b, "<|eot_id|>");
    for (size_t i = 0; i < g; i++) {
        const ll_chat_msg *msg = &m[grp[i]];
        int last = i + 1 == g;
        if (role_is(msg, "user")) {
            llama3_header(b, "user");
            put_group(b, m, grp[i], cnt[i]);
            buf_puts(b, "<|eot_id|>");
            if (last) llama3_header(b, "assistant");
        } else if (role_is(msg, "assistant")) {
            llama3_header(b, "assistant");
            put_group(b, m, grp[i], cnt[i]);
            if (!last) buf_puts(b, "<|eot_id|>");
        } else if (role_is(msg, "tool")) {
            llama3_header(b, "ipython");
            buf_puts(b, msg->content);
            buf_puts(b, "<|eot_id|>");
            if (last) llama3_header(b, "assistant");
        }                                           /* system and other roles: nothing here */
    }
}

static void render_llama2(chat_buf *b, const ll_chat_msg *m, size_t n, const char *bos,
                          const char *eos) {
    size_t first = 0;
    const char *sys = NULL;
    if (n > 0 && role_is(&m[0], "system")) { sys = str_or_empty(m[0].content); first = 1; }
    for (size_t i = first; i < n; i++) {
        int user = role_is(&m[i], "user"), asst = role_is(&m[i], "assistant");
        if (!user && !asst) continue;
        if (user) {
            if (i > first) buf_puts(b, bos);         /* the leading BOS comes from the tokenizer */
            buf_puts(b, "[INST] ");
        } else {
            buf_puts(b, " ");
        }
        size_t from = b->n;
        if (i == first && sys) {
            buf_puts(b, "<<SYS>>\n");
            buf_puts(b, sys);
            buf_puts(b, "\n<</SYS>>\n\n");
        }
        buf_puts(b, m[i].content);
        buf_strip_from(b, from);
        buf_puts(b, user ? " [/INST]" : " ");
        if (asst) buf_puts(b, eos);
    }
}

static void render_mistral(chat_buf *b, const ll_chat_msg *m, size_t n, const char *eos) {
    int sys_done = 0;
    for (size_t i = 0; i < n; i++) {
        if (role_is(&m[i], "user")) {
            buf_puts(b, "[INST] ");
            if (!sys_done) {
                for (size_t k = 0; k < n; k++)
                    if (role_is(&m[k], "system")) { buf_puts(b, m[k].content); buf_puts(b, "\n\n"); }
                sys_done = 1;
            }
            buf_puts(b, m[i].content);
            buf_puts(b, " [/INST]");
        } else if (role_is(&m[i], "assistant")) {
            buf_puts(b, m[i].content);
            buf_puts(b, eos);
        }
    }
}

static void render_zephyr(chat_buf *b, const ll_chat_msg *m, size_t n, bool gen, const char *eos) {
    for (size_t i = 0; i < n; i++) {
        if (!role_is(&m[i], "user") && !role_is(&m[i], "system") && !role_is(&m[i], "assistant"))
            continue;
        buf_puts(b, "<|");
        buf_puts(b, m[i].role);
        buf_puts(b, "|>\n");
        buf_puts(b, m[i].content);
        buf_puts(b, eos);
        buf_puts(b, "\n");
    }
    if (gen && n > 0) buf_puts(b, "<|assistant|>\n");   /* inside the loop: needs a message */
}

static void render_gemma(chat_buf *b, const ll_chat_msg *m, size_t n, bool gen) {
    size_t first = 0;
    const char *sys = NULL;
    if (n > 0 && role_is(&m[0], "system")) { sys = str_or_empty(m[0].content); first = 1; }
    for (size_t i = first; i < n; i++) {
        buf_puts(b, "<start_of_turn>");
        buf_puts(b, role_is(&m[i], "assistant") ? "model" : str_or_empty(m[i].role));
        buf_puts(b, "\n");
        if (i == first && sys) { buf_puts(b, sys); buf_puts(b, "\n\n"); }
        buf_put_trimmed(b, m[i].content);
        buf_puts(b, "<end_of_turn>\n");
    }
    if (gen) buf_puts(b, "<start_of_turn>model\n");
}

static void render_phi3(chat_buf *b, ll_str t, const ll_chat_msg *m, size_t n, bool gen,
                        const char *eos) {
    /* Phi-3-mini's first template: user turns open the assistant turn themselves, system
     * messages are dropped, and there is no generation-prompt switch. */
    if (has(t, "'<|end|>' + '\\n' + '<|assistant|>'")) {
        for (size_t i = 0; i < n; i++) {
            if (role_is(&m[i], "user")) {
                buf_puts(b, "<|user|>\n");
                buf_puts(b, m[i].content);
                buf_puts(b, "<|end|>\n<|assistant|>\n");
            } else if (role_is(&m[i], "assistant")) {
                buf_puts(b, m[i].content);
                buf_puts(b, "<|end|>\n");
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int sys = role_is(&m[i], "system");
        if (sys && str_or_empty(m[i].content)[0] == 0) continue;
        if (!sys && !role_is(&m[i], "user") && !role_is(&m[i], "assistant")) continue;
        buf_puts(b, "<|");
        buf_puts(b, m[i].role);
        buf_puts(b, "|>\n");
        buf_puts(b, m[i].content);
        buf_puts(b, "<|end|>\n");
    }
    buf_puts(b, gen ? "<|assistant|>\n" : eos);
}

/* ---- API ------------------------------------------------------------------------------------ */

ll_status ll_chat_render_ex(ll_str tmpl, const ll_chat_msg *msgs, size_t n,
                            const ll_chat_opts *opts, char **out, size_t *out_len,
                            ll_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!msgs && n > 0) return ll_fail(err, LL_ERR_ARG, "chat: %zu messages but no array", n);
    ll_chat_opts o = { .add_generation_prompt = true, .style = LL_CHAT_STYLE_OLLAMA };
    if (opts) o = *opts;
    const char *bos = o.bos_text ? o.bos_text : "<s>";
    const char *eos = o.eos_text ? o.eos_text : "</s>";

    ll_chat_family f = ll_chat_detect(tmpl);
    if (f == LL_CHAT_NONE)
        return ll_fail(err, LL_ERR_UNSUPPORTED, tmpl.n ? "chat template not recognised"
                                                       : "no chat template");

    chat_buf b = { 0 };
    size_t *scratch = NULL;
    int llama3 = f == LL_CHAT_LLAMA3 || f == LL_CHAT_LLAMA31 || f == LL_CHAT_LLAMA32;
    if (llama3 && o.style == LL_CHAT_STYLE_OLLAMA) {
        scratch = ll_malloc_array(n ? 2 * n : 1, sizeof *scratch);   /* 2n fits: msgs is n*16 bytes */
        if (!scratch) return ll_fail(err, LL_ERR_NOMEM, "chat: out of memory for %zu messages", n);
        render_llama3_ollama(&b, f, msgs, n, scratch, scratch + n);
    } else if (llama3) {
        render_llama3_jinja(&b, f, msgs, n, o.add_generation_prompt);
    } else {
        switch (f) {
        case LL_CHAT_CHATML: render_chatml(&b, tmpl, msgs, n, o.add_generation_prompt); break;
        case LL_CHAT_LLAMA2: render_llama2(&b, msgs, n, bos, eos); break;
        case LL_CHAT_MISTRAL: render_mistral(&b, msgs, n, eos); break;
        case LL_CHAT_ZEPHYR: render_zephyr(&b, msgs, n, o.add_generation_prompt, eos); break;
        case LL_CHAT_GEMMA: render_gemma(&b, msgs, n, o.add_generation_prompt); break;
        case LL_CHAT_PHI3: render_phi3(&b, tmpl, msgs, n, o.add_generation_prompt, eos); break;
        default: break;
        }
    }
    ll_free(scratch);
    if (b.st == LL_OK && !b.p) {                   /* nothing written: still return a string */
        b.p = ll_calloc(1, 1);
        if (!b.p) b.st = LL_ERR_NOMEM;
    }
    if (b.st == LL_ERR_LIMIT) {
        ll_free(b.p);
        return ll_fail(err, LL_ERR_LIMIT, "chat: rendered prompt over %zu bytes", CHAT_MAX_OUT);
    }
    if (b.st != LL_OK) {
        ll_free(b.p);
        return ll_fail(err, LL_ERR_NOMEM, "chat: out of memory rendering %zu messages", n);
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return LL_OK;
}

ll_status ll_chat_render(ll_str tmpl, const ll_chat_msg *msgs, size_t n,
                         bool add_generation_prompt, char **out, size_t *out_len, ll_error *err) {
    ll_chat_opts o = { .add_generation_prompt = add_generation_prompt,
                       .style = LL_CHAT_STYLE_OLLAMA };
    return ll_chat_render_ex(tmpl, msgs, n, &o, out, out_len, err);
}
