/* server/thinking: a thinking trace split from the answer (ollama-api.md §1.0.5, §1.2.4).
 *
 *     char *open, *close;
 *     if (ll_think_tags(tmpl, &open, &close)) ...       // the model has `thinking` (§4.7.1 5)
 *     ll_think *th;
 *     ll_think_init(&th, open, close, prompt_ends_with_open, &err);
 *     for each released piece: ll_think_add(th, piece, n, false, &thinking, &content, &err);
 *     ll_think_add(th, "", 0, true, &thinking, &content, &err);   // the end
 *
 * Rules of §1.2.4 for tag-based models: whitespace before the opening tag is skipped; output
 * that does not start with the tag is all content; whitespace right after either tag is
 * dropped, and so is whitespace right before the closing tag (as Ollama's parsers trim); a tag cut at the end of a piece is held until it can be decided; text after the
 * closing tag is content. When the prompt already ends with the opening tag (the template
 * pre-filled it, §1.2.2 step 6) the output starts inside the trace. Bytes only; cuts happen at
 * tag boundaries, so valid UTF-8 in stays valid out. One per generation, not thread-safe. */
#ifndef LL_SERVER_THINKING_H
#define LL_SERVER_THINKING_H

#include "core/core.h"
#include "template/gotmpl.h"

#include <stdbool.h>

typedef struct ll_think ll_think;

ll_status ll_think_init(ll_think **out, const char *open, const char *close, bool in_thinking, ll_error *err);
void      ll_think_free(ll_think *p);   /* NULL-safe */

/* Feed the next n bytes; *thinking and *content are what may be shown now (views valid until
 * the next call, either may be empty). final: nothing more comes, held bytes are released. */
ll_status ll_think_add(ll_think *p, const char *text, size_t n, bool final, ll_str *thinking,
                       ll_str *content, ll_error *err);

/* The trace is over (its closing tag was seen, or the output did not start with one): what
 * follows is the answer. */
bool      ll_think_answering(const ll_think *p);

/* The tags a template puts around .Thinking in an assistant turn of its .Messages loop (§4.7.1
 * step 5): render the turn with and without a thinking text; the text the trace adds, split
 * around it and trimmed, gives the opening and closing tag. false (and NULLs) when the
 * template renders no thinking or no tag pair can be found; else heap strings to ll_free. */
bool ll_think_tags(const ll_tmpl *t, char **open, char **close);

#endif
