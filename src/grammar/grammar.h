/* grammar: context-free grammars over bytes, a stack-set matcher, and the per-step token mask
 * for constrained decoding (issue 11). Internal to src/grammar/; the public face is the
 * "constrained decoding" section of locallama.h.
 *
 * Pieces, in dependency order:
 *
 *     grammar.c      builder (rules of alternatives of sequences of byte classes and rule
 *                    references), static checks, the matcher (one set of parse stacks)
 *     utf8.c         code-point ranges -> byte-class sequences, shared by the compilers
 *     mask.c         token trie over the vocabulary, per-position token classes, the mask
 *     json_schema.c  `format: "json"` and JSON Schema -> grammar
 *
 * Representation. Every rule is a list of alternatives; an alternative is a run of elements
 * in one flat array, closed by a GR_END element. An element is a byte class (256-bit set,
 * stored inline so the hot loop touches one cache line) or a reference to a rule. Repetition,
 * optionals and character ranges are built from these by the compilers (bounded repetition
 * unrolls into a chain of rules; unbounded repetition is right recursion, which the matcher
 * runs in constant stack).
 *
 * The matcher is the recognizer llama.cpp's GBNF sampler uses (a set of stacks, each stack the
 * positions still to match), with two changes: a stack is a top position plus a pointer into a
 * persistent tree of continuation nodes (so pushing, popping and copying a stack is O(1) and a
 * whole stack set is a few pairs), and the grammar is checked once for left recursion and for
 * rules that can never complete, so expansion always terminates and every live stack can still
 * reach the end.
 */
#ifndef LL_GRAMMAR_H
#define LL_GRAMMAR_H

#include "core/core.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- caps (bounded memory whatever the grammar or the input) ---- */
#define GR_MAX_ELEMS      (1 << 21)   /* elements of one grammar (about 80 MB at most) */
#define GR_MAX_RULES      (1 << 18)
#define GR_MAX_DEPTH      512         /* continuation nodes under one stack: nesting depth */
#define GR_MAX_STACKS     2048        /* stacks alive at once (ambiguity) */
#define GR_MAX_RECURSION  2048        /* nested expansion steps without consuming a byte */
#define GR_MAX_NODES      (1 << 22)   /* continuation nodes held by one matcher */

enum { GR_END = 0, GR_CHAR = 1, GR_RULE = 2 };

typedef struct {
    uint64_t bits[4];   /* GR_CHAR: byte b matches when bit b is set */
    int32_t  type;      /* GR_END, GR_CHAR, GR_RULE */
    int32_t  ref;       /* GR_RULE: rule index */
} gr_elem;

static inline bool gr_class_has(const uint64_t *bits, unsigned b) {
    return (bits[b >> 6] >> (b & 63)) & 1;
}
static inline void gr_class_set(uint64_t *bits, unsigned b) { bits[b >> 6] |= 1ull << (b & 63); }
static inline void gr_class_range(uint64_t *bits, unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi && b < 256; b++) gr_class_set(bits, b);
}

/* An immutable, checked grammar. */
typedef struct {
    gr_elem *elems;      /* (n_elems) all alternatives back to back, each closed by GR_END */
    int32_t  n_elems;
    int32_t *alt_off;    /* (n_rules + 1) rule r's alternatives are alts[alt_off[r]..alt_off[r+1]) */
    int32_t *alts;       /* start element of each alternative */
    int32_t  n_rules;
    int32_t  root;
    char   **names;      /* (n_rules) for messages; NULL entries allowed */
    /* Flat closures: for a position whose expansion pushes no continuation node (a class, an
     * alternative's end, or a tail reference whose alternatives are flat in turn), the class
     * positions it expands to and whether it can reach the end of its alternative. Expansion
     * then costs a copy instead of a recursive walk; a string's character loop is one. */
    int32_t *clo_off;    /* (n_elems) start in clo, -1 when the position is not flat */
    uint16_t *clo_n;     /* (n_elems) */
    uint8_t *clo_end;    /* (n_elems) 1: the expansion may pop past the alternative's end */
    int32_t *clo;
    int32_t  n_clo;
} gr_grammar;

void gr_grammar_free(gr_grammar *g);   /* frees the members, not g */

/* ---- builder ----
 * Errors are sticky: after the first failure every call is a no-op and gr_build returns it,
 * so compilers can build without checking each step. */
typedef struct {
    gr_elem *e;
    int32_t  n, cap;
} gr_seq;

typedef struct {
    gr_elem  *elems;  int32_t n_elems, cap_elems;
    int32_t  *alt_rule;   /* (n_alts) which rule each alternative belongs to */
    int32_t  *alt_start;  /* (n_alts) */
    int32_t   n_alts, cap_alts;
    char    **names;  int32_t n_rules, cap_rules;
    ll_status st;
    ll_error *err;
} gr_builder;

void    gr_builder_init(gr_builder *b, ll_error *err);
void    gr_builder_free(gr_builder *b);
/* A new rule with no alternatives yet (name copied; may be NULL). Returns its index, -1 after
 * a failure. */
int32_t gr_rule(gr_builder *b, const char *name);
/* Append seq as one more alternative of rule (seq is copied, not consumed). */
void    gr_add_alt(gr_builder *b, int32_t rule, const gr_seq *seq);
/* Fail the build with a message (keeps the first failure). */
void    gr_builder_fail(gr_builder *b, ll_status code, const char *fmt, ...) LL_PRINTF(3, 4);
/* Check and pack into g (root = rule index). Removes alternatives that can never complete;
 * fails when the root can never complete, on left recursion, or over a cap. The builder is
 * left empty either way. */
ll_status gr_build(gr_builder *b, int32_t root, gr_grammar *g);

/* Sequences: the builder receives allocation failures through b. */
void gr_seq_char(gr_builder *b, gr_seq *s, const uint64_t bits[4]);
void gr_seq_byte(gr_builder *b, gr_seq *s, unsigned char c);
void gr_seq_lit(gr_builder *b, gr_seq *s, const char *p, size_t n);
void gr_seq_ref(gr_builder *b, gr_seq *s, int32_t rule);
void gr_seq_free(gr_seq *s);
static inline void gr_seq_clear(gr_seq *s) { s->n = 0; }

/* Conveniences built on the above. */
int32_t gr_rule_lit(gr_builder *b, const char *name, const char *p, size_t n);  /* rule ::= "p" */
/* rule ::= item{min,max}; max < 0 means unbounded. sep >= 0 puts that rule between items. */
int32_t gr_rule_repeat(gr_builder *b, const char *name, int32_t item, int64_t min, int64_t max,
                       int32_t sep);
/* A rule matching the UTF-8 encoding of exactly one code point in [lo, hi] (surrogates
 * excluded) for each of the n ranges (utf8.c). */
int32_t gr_rule_codepoints(gr_builder *b, const char *name, const uint32_t (*ranges)[2], size_t n);

/* ---- matcher: one set of stacks ----
 * A stack is (pos, parent): pos is the GR_CHAR element to match next, parent a continuation
 * node (what to do after pos's alternative ends) or one of the sentinels below. Nodes live in
 * an append-only arena owned by whoever runs the matcher; a node's parent is always older, so
 * truncating the arena back to a mark frees exactly what was built after it. */
#define GR_ROOT  (-1)   /* popping this completes the grammar */
#define GR_SENT  (-2)   /* popping this leaves the sub-grammar (precompute: context needed) */

typedef struct { int32_t pos, parent; } gr_top;
typedef struct {
    int32_t  pos, parent, depth;
    uint64_t hash;      /* of the whole chain (pos and every ancestor's pos): equal stacks hash equal */
} gr_node;

static inline uint64_t gr_mix(uint64_t h, uint64_t v) {   /* splitmix64-style step */
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31; h *= 0xbf58476d1ce4e5b9ull; h ^= h >> 29;
    return h;
}
typedef struct {
    gr_node *n;
    int32_t  len, cap;
} gr_arena;

/* Content hash of the stack (pos, parent) in arena a. */
static inline uint64_t gr_top_hash(const gr_arena *a, int32_t pos, int32_t parent) {
    uint64_t ph = parent >= 0 ? a->n[parent].hash : (uint64_t)(uint32_t)parent * 0x100000001b3ull;
    return gr_mix(ph, (uint64_t)(uint32_t)pos);
}


typedef struct {
    gr_top  *t;
    int32_t  n, cap;
    bool     complete;    /* a stack popped GR_ROOT: the input so far is a full sentence */
    bool     underflow;   /* a stack popped GR_SENT */
} gr_set;

ll_status gr_set_reserve(gr_set *s, int32_t cap, ll_error *err);
void      gr_set_free(gr_set *s);
void      gr_arena_free(gr_arena *a);
ll_status gr_set_copy(gr_set *dst, const gr_set *src, ll_error *err);

/* Expand element pos under parent into out (appends; sets complete/underflow). */
ll_status gr_expand(const gr_grammar *g, gr_arena *a, int32_t pos, int32_t parent, gr_set *out,
                    ll_error *err);
/* out = stacks of in after byte c (out is reset first; must not alias in). */
ll_status gr_advance(const gr_grammar *g, gr_arena *a, const gr_set *in, unsigned char c,
                     gr_set *out, ll_error *err);
/* The stacks at the start of the grammar. */
ll_status gr_start(const gr_grammar *g, gr_arena *a, gr_set *out, ll_error *err);

/* ---- utf8.c ---- */
/* Append to rule `rule` one alternative per byte-class sequence covering [lo, hi], each
 * followed by a reference to tail when tail >= 0 (loops stay inside one rule that way, which
 * is what lets mask.c decide most tokens without context). */
void gr_utf8_range(gr_builder *b, int32_t rule, uint32_t lo, uint32_t hi, int32_t tail);

/* ---- regex.c ---- */
/* A regular-expression subset (see regex.c) as a rule; json_string: matches the JSON-escaped
 * content of a string, with unanchored ends padded by any_rule. */
int32_t gr_regex(gr_builder *b, const char *what, const char *p, size_t n, bool json_string,
                 int32_t any_rule);

/* ---- sample.c ---- */
/* A random sentence (random choices until budget bytes, then shortest completions). */
ll_status gr_sample(const gr_grammar *g, uint64_t *rng, size_t budget, char *out, size_t cap,
                    size_t *n_out, ll_error *err);

/* ---- mask.c ---- */
/* The grammar behind a public ll_grammar (tests and tools). */
const gr_grammar *gr_of(const ll_grammar *m);
/* Drop the compiled grammars from the cache, keeping the vocabulary tables (the bench measures
 * first use of a grammar this way without paying for the vocabulary again). */
void gr_cache_forget(void);
/* Set the compile-time budget for classifying positions (default 80 ms; 0: every position
 * on first use, UINT64_MAX: all at compile); returns the previous one. For tests and the
 * bench: the order positions are met in decides which neighbour a chain step borrows from. */
uint64_t gr_set_eager_budget(uint64_t ns);

/* ---- json_schema.c ---- */
/* format "json": any JSON value (object_only: an object, as Ollama does). */
ll_status gr_compile_json(gr_grammar *g, bool object_only, ll_error *err);
/* A JSON Schema (text) -> grammar. Unsupported keywords fail with LL_ERR_UNSUPPORTED naming
 * the keyword and where it is. */
ll_status gr_compile_schema(gr_grammar *g, const char *schema, size_t len, ll_error *err);
/* A tool call (ll_grammar_init_tools): spec is JSON {"tools": [{"name", "parameters",
 * "strict"}], "name_key", "args_key", "args_first", "array", "prefix", "lead_ws"}. */
ll_status gr_compile_tools(gr_grammar *g, const char *spec, size_t len, ll_error *err);

#endif
