/* chat: render a conversation the way a model's chat template would, for `locallama run`.
 *
 * GGUF files carry their chat template as Jinja text (`tokenizer.chat_template`). We do not
 * execute Jinja: the template is only matched against the families below (substring tests on
 * the text, so any template, however large or hostile, costs one scan and cannot crash us), and
 * the family's format is written by our own code. The full Go-template engine for Ollama's
 * TEMPLATE layers is a later issue (src/template/lex.c, parse.c, exec.c).
 *
 *     ll_chat_msg msgs[] = { { "system", "Be brief." }, { "user", "Hi" } };
 *     char *text; size_t len;
 *     ll_status st = ll_chat_render(ll_model_meta_str(m, "tokenizer.chat_template"),
 *                                   msgs, 2, true, &text, &len, &err);
 *     if (st == LL_ERR_UNSUPPORTED) ... no usable template: use the raw prompt ...
 *     ll_tok_encode(vocab, text, len, true, true, ...);   // add_special AND parse_special
 *     ll_free(text);
 *
 * BOS: the rendered text never starts with the BOS text the Jinja template writes first
 * (`{{ bos_token }}`, `<|begin_of_text|>`). The caller tokenizes with add_special = true, so
 * the vocabulary adds BOS exactly when its metadata says so; this is what llama.cpp's chat
 * path does when it strips a leading BOS text for a vocab that adds BOS. BOS/EOS texts that a
 * template writes in the middle (Llama 2's `<s>` before each later turn, Zephyr's `</s>`) are
 * written, and parse_special turns them into the control tokens.
 *
 * Two styles, differing only for the Llama 3 family:
 *   LL_CHAT_STYLE_OLLAMA (default, ll_chat_render): what Ollama renders for a bare GGUF, per
 *     ../shared/spec/llama3-prompt-format.md §10: Llama 3 / 3.1 / 3.3 templates get Ollama's
 *     `llama3-instruct` template, Llama 3.2 gets the registry llama3.2 TEMPLATE of §3 (system
 *     block "Cutting Knowledge Date: December 2023\n\n" + all system prompts joined by "\n\n",
 *     no "Today Date"); messages are collated first as Ollama does (§4.1: consecutive messages
 *     of one role merged with "\n\n", except tool). The template decides the generation prompt
 *     (after a final user/tool message) and add_generation_prompt is not consulted; a final
 *     assistant message is left open (prefill). Matches the §5 examples byte for byte.
 *   LL_CHAT_STYLE_JINJA: what the GGUF's own Jinja template renders (Meta's: contents trimmed,
 *     system block "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" — the
 *     template's default when strftime_now is not provided, which we never provide).
 * Other families render their Jinja template's output in both styles:
 *   ChatML (`<|im_start|>`): "<|im_start|>ROLE\nCONTENT<|im_end|>\n" per message; a default
 *     system message written as a plain literal in the template (SmolLM2's "You are a helpful AI
 *     assistant named SmolLM, trained by Hugging Face", Qwen's) is inserted when the first
 *     message is not a system message; generation prompt "<|im_start|>assistant\n".
 *   Llama 2 (`[INST]` + `<<SYS>>`): "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U2
 *     [/INST]" with stripped contents; no generation prompt.
 *   Mistral (`[INST] ` + ` [/INST]`, v0.1/v0.2): "[INST] U [/INST]A</s>[INST] U2 [/INST]"; the
 *     template rejects system messages, we put their text before the first user message
 *     followed by "\n\n". Mistral v3+/v7 templates ([AVAILABLE_TOOLS], [SYSTEM_PROMPT]) are not
 *     recognised.
 *   Zephyr (`<|user|>`, no `<|end|>`): "<|ROLE|>\nCONTENT</s>\n", generation "<|assistant|>\n".
 *   Gemma (`<start_of_turn>`): "<start_of_turn>ROLE\nTRIMMED<end_of_turn>\n", assistant -> model;
 *     a leading system message becomes "SYSTEM\n\n" before the first user content (Gemma 3's
 *     rule; Gemma 1/2 templates raise instead); generation "<start_of_turn>model\n".
 *   Phi-3 (`<|user|>` + `<|end|>`): "<|ROLE|>\nCONTENT<|end|>\n" (empty system skipped),
 *     generation "<|assistant|>\n", else EOS text; the Phi-3-mini variant that opens the
 *     assistant turn after every user message is rendered as its template does.
 * The Llama 2 / Mistral alternation checks (raise_exception) are not enforced: we render.
 * Roles are written as given (Jinja templates print message['role']); NULL role or content
 * counts as "". Jinja's trim is Python's str.strip; we strip ASCII whitespace only.
 */
#ifndef LL_TEMPLATE_CHAT_H
#define LL_TEMPLATE_CHAT_H

#include "core/core.h"

typedef struct {
    const char *role;      /* "system", "user", "assistant" ("tool" for the Llama 3 family) */
    const char *content;   /* NUL-terminated UTF-8 */
} ll_chat_msg;

typedef enum {
    LL_CHAT_NONE = 0,   /* no template or not recognised: render nothing, use the raw prompt */
    LL_CHAT_CHATML,
    LL_CHAT_LLAMA3,     /* Llama 3: header framing, no knowledge-date system block */
    LL_CHAT_LLAMA31,    /* Llama 3.1 / 3.3: "Cutting Knowledge Date", no strftime_now */
    LL_CHAT_LLAMA32,    /* Llama 3.2: as 3.1 but the date comes from strftime_now */
    LL_CHAT_LLAMA2,
    LL_CHAT_MISTRAL,
    LL_CHAT_ZEPHYR,
    LL_CHAT_GEMMA,
    LL_CHAT_PHI3,
} ll_chat_family;

typedef enum {
    LL_CHAT_STYLE_OLLAMA = 0,   /* see above: Ollama's rendering where the spec fixes it */
    LL_CHAT_STYLE_JINJA,        /* the GGUF Jinja template's own output */
} ll_chat_style;

typedef struct {
    bool          add_generation_prompt;  /* open an assistant turn at the end (Jinja style) */
    ll_chat_style style;
    const char   *bos_text;               /* the vocab's BOS text; NULL = "<s>" (Llama 2) */
    const char   *eos_text;               /* the vocab's EOS text; NULL = "</s>" */
} ll_chat_opts;

/* Which family a Jinja chat template belongs to; LL_CHAT_NONE for empty or unknown text. */
ll_chat_family ll_chat_detect(ll_str tmpl);
/* "chatml", "llama3", "llama3.1", "llama3.2", "llama2", "mistral", "zephyr", "gemma", "phi3",
 * or "none". */
const char    *ll_chat_family_str(ll_chat_family f);
const char    *ll_chat_family_name(ll_str tmpl);   /* ll_chat_family_str(ll_chat_detect(tmpl)) */

/* Render msgs[0..n) with the template's family. On LL_OK *out is a NUL-terminated heap string
 * (ll_free it) of *out_len bytes (the NUL not counted). LL_ERR_UNSUPPORTED ("no chat template"
 * / "chat template not recognised") when the family is LL_CHAT_NONE: the caller falls back to
 * the raw prompt. LL_ERR_NOMEM, LL_ERR_LIMIT (output over 1 GiB), LL_ERR_ARG (msgs NULL with
 * n > 0). *out is NULL on failure. ll_chat_render = ll_chat_render_ex with style OLLAMA and
 * NULL BOS/EOS texts. */
ll_status ll_chat_render(ll_str tmpl, const ll_chat_msg *msgs, size_t n,
                         bool add_generation_prompt, char **out, size_t *out_len, ll_error *err);
ll_status ll_chat_render_ex(ll_str tmpl, const ll_chat_msg *msgs, size_t n,
                            const ll_chat_opts *opts, char **out, size_t *out_len,
                            ll_error *err);

#endif
