/* gotmpl internals shared by gotmpl_parse.c (lexer, parser, tree rewrites), gotmpl_exec.c
 * (executor, functions, printing) and gotmpl_data.c (Go types, request -> Values). */
#ifndef LL_TEMPLATE_GOTMPL_IMPL_H
#define LL_TEMPLATE_GOTMPL_IMPL_H

#include "template/gotmpl.h"

#include <stdatomic.h>

/* ---- arena: many small allocations, one free ---- */

typedef struct tm_blk { struct tm_blk *next; size_t used, cap; max_align_t data[]; } tm_blk;
typedef struct { tm_blk *head; size_t total, cap_bytes; bool over_cap; } tm_arena;   /* cap_bytes 0: none */

void *tm_alloc(tm_arena *a, size_t n);          /* zeroed; NULL when out of memory or cap */
void  tm_arena_free(tm_arena *a);

/* ---- growable byte buffer with a hard cap ---- */

typedef struct { char *p; size_t n, cap, max; } tm_buf;   /* max: bytes allowed */
/* 0 ok, -1 out of memory, -2 over max */
int  tm_buf_put(tm_buf *b, const void *s, size_t n);
static inline int tm_buf_puts(tm_buf *b, const char *s) { return tm_buf_put(b, s, strlen(s)); }
int  tm_buf_printf(tm_buf *b, const char *fmt, ...) LL_PRINTF(2, 3);

/* ---- syntax tree ---- */

typedef enum {
    TN_LIST, TN_TEXT, TN_ACTION, TN_IF, TN_RANGE, TN_WITH, TN_TEMPLATE, TN_BREAK, TN_CONTINUE,
    TN_PIPE, TN_CMD,
    TN_FIELD, TN_VAR, TN_DOT, TN_NIL, TN_BOOL, TN_NUM, TN_STR, TN_FUNC, TN_CHAIN,
} tm_kind;

typedef struct tm_node tm_node;
struct tm_node {
    uint8_t  kind;
    uint32_t line, col;
    tm_node **kids; size_t n_kids;   /* LIST: nodes; PIPE: commands; CMD: arguments */
    const char *s; size_t sn;        /* TEXT, STR: bytes (decoded); TEMPLATE: name */
    ll_str  *ids; size_t n_ids;      /* FIELD: Foo.Bar; VAR: $x then fields; CHAIN: fields */
    tm_node *pipe, *list, *elist;    /* IF/RANGE/WITH/ACTION/TEMPLATE; CHAIN: pipe = operand */
    ll_str  *decl; size_t n_decl;    /* PIPE: declared variables */
    bool     is_assign;              /* PIPE: `=` rather than `:=` */
    bool     is_int, is_float, b;    /* NUM, BOOL */
    int64_t  i; double f;            /* NUM */
    int      fn;                     /* FUNC: index into tm_funcs */
};

typedef struct { ll_str name; tm_node *list; } tm_def;

struct ll_tmpl {
    atomic_int refs;
    tm_arena   arena;       /* every node, string and table below */
    tm_node   *root_go;     /* as Go's parser leaves it: what ll_tmpl_render runs */
    tm_node   *root;        /* as Ollama's Parse leaves it (maybe with {{ .Response }} added) */
    tm_node   *root_cut;    /* legacy last exchange: all after the first .Response removed */
    bool       cut_fails;   /* Ollama's deleteNode panics on this tree (else after .Response) */
    tm_def    *defs; size_t n_defs;
    ll_str    *idents; size_t n_idents;   /* lower-cased, Ollama's Template.Vars */
};

/* built-in function table (gotmpl_exec.c) */
typedef struct { const char *name; int min_args, max_args; } tm_func;   /* max -1: variadic */
extern const tm_func tm_funcs[];
int tm_func_find(const char *name, size_t n);   /* index or -1 */

/* ---- Go types over JSON (gotmpl_data.c) ---- */

enum { TY_ANY, TY_STRING, TY_BOOL, TY_INT, TY_FLOAT, TY_SLICE, TY_MAP, TY_OMAP, TY_STRUCT,
       TY_PROPTYPE, TY_BYTES };
enum { STR_NONE, STR_JSON, STR_JSON_NILOBJ, STR_PROPTYPE };

typedef struct tm_type tm_type;
typedef struct {
    const char *go;        /* Go field name, as templates write it */
    const char *key;       /* key in our JSON tree (the API's name) */
    const char *jkey;      /* key json.Marshal writes */
    const tm_type *t;
    bool omitempty;
} tm_field;

struct tm_type {
    uint8_t kind, stringer;
    bool ptr;                    /* STRUCT/OMAP: held by pointer (nil-able) */
    const char *go_name;         /* for %T-like messages: "[]interface {}" */
    const char *what;            /* words for errors: "message" */
    const tm_type *elem;         /* SLICE, MAP, OMAP */
    const tm_field *fields; size_t n_fields;   /* STRUCT; MAP: typed keys (the root) */
};

extern const tm_type tm_t_params;   /* a tool's parameters: JSON as received (D10) */
extern const tm_type tm_t_any, tm_t_string, tm_t_bool, tm_t_int, tm_t_float, tm_t_slice_any,
    tm_t_map_any, tm_t_root, tm_t_messages, tm_t_tools, tm_t_property;

#endif
