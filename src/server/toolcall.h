/* server/toolcall: tool calls found in a model's generated text (ollama-api.md §1.2.5 A).
 *
 *     char *marker = ll_toolcall_marker(tmpl);          // "<tool_call>", "[TOOL_CALLS]", "{"
 *     ll_toolcall *tc;
 *     ll_toolcall_init(&tc, body_tools, marker, &err);
 *     for each released piece of text:
 *         ll_str content; json_t *calls = json_array();
 *         ll_toolcall_add(tc, piece, n, false, &content, calls, &err);
 *         ... stream content (may be empty), then each call of calls ...
 *     ll_toolcall_add(tc, "", 0, true, &content, calls, &err);   // the end: leftovers
 *
 * The parser follows the template-driven path of Ollama: text before the tool-call marker is
 * content; from the marker on, text is buffered and scanned for calls. A call is a provided
 * tool's name plus the first complete JSON object of the buffer; its arguments are that
 * object's "arguments" or "parameters" (an object, or a string holding one), else the value
 * under the tool's name, else a nested object that has them, else the object itself. Each
 * call is reported as soon as its object is complete, as {"name": ..., "arguments": {...}}
 * with the keys of the arguments in the model's order.
 *
 * With a bare-JSON marker ("{" or "["), output that starts with anything but whitespace is
 * plain content and the parser stands aside; JSON that holds no call comes back as content at
 * the end. With a tag marker, text after the marker that is not a call is dropped (tool calls
 * are never returned as content). The parser works on bytes and cuts only at ASCII marker
 * boundaries, so UTF-8 text in stays valid UTF-8 out. Not thread-safe: one per generation. */
#ifndef LL_SERVER_TOOLCALL_H
#define LL_SERVER_TOOLCALL_H

#include "core/core.h"
#include "template/gotmpl.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct ll_toolcall ll_toolcall;

#define LL_TOOLCALL_MAX_BUFFER ((size_t)1 << 22)   /* bytes held after a marker (4 MiB) */

/* tools: the request's "tools" array (the function names are read; entries without one are
 * skipped). marker: the text that opens a call; NULL or "" means "{". LL_ERR_NOMEM only. */
ll_status ll_toolcall_init(ll_toolcall **out, const json_t *tools, const char *marker, ll_error *err);
void      ll_toolcall_free(ll_toolcall *p);   /* NULL-safe */

/* Feed the next n bytes of output; final: nothing more will come. *content is set to the
 * text that may now be shown (a view into the parser, valid until the next call; may be
 * empty). Complete calls are appended to calls as {"name","arguments"} objects. Returns
 * LL_ERR_NOMEM, or LL_ERR_LIMIT when more than LL_TOOLCALL_MAX_BUFFER bytes are held. */
ll_status ll_toolcall_add(ll_toolcall *p, const char *text, size_t n, bool final, ll_str *content,
                          json_t *calls, ll_error *err);

/* Calls reported so far. */
size_t ll_toolcall_count(const ll_toolcall *p);

/* The marker a template uses (§1.2.5 A): render one assistant turn with content and one with a
 * tool call; the text where they part, cut before its first "{" and trimmed, is the marker.
 * "{" when the template does not render tool calls or they start straight with JSON. Heap
 * string (ll_free); NULL only when out of memory. */
char *ll_toolcall_marker(const ll_tmpl *t);

/* The call as the template writes it, for constraining calls (issue 11): the marker, and when
 * the template renders a call as JSON right after it (optionally in an array) with exactly a
 * name key and an arguments key, those keys and their order (json set). Found by rendering a
 * probe call. marker is a heap string (ll_toolcall_syntax_clear frees it); NULL only when out
 * of memory. */
typedef struct {
    char *marker;
    bool  bare;             /* the marker is "{" or "[": the JSON itself opens the call */
    bool  json;             /* the fields below are known */
    bool  array;            /* calls come in a JSON array */
    bool  args_first;       /* the arguments key comes before the name key */
    char  name_key[64], args_key[64];
} ll_toolcall_syntax;
void ll_toolcall_syntax_of(const ll_tmpl *t, ll_toolcall_syntax *out);
void ll_toolcall_syntax_clear(ll_toolcall_syntax *s);

/* The marker was seen: the output is a call from here on. */
bool   ll_toolcall_calling(const ll_toolcall *p);
/* Calling: the bytes held after the marker (a bare marker's call from its "{" on, whitespace
 * before it skipped), not yet parsed into a call. A view valid until the next call. */
ll_str ll_toolcall_held(const ll_toolcall *p);

#endif
