/* model/quantize: rewrite a GGUF model with its weights in another type, choosing each
 * tensor's type as llama.cpp's llama-quantize does (src/llama-quant.cpp, commit 0c1e570) and
 * quantizing with the reference quantizers (quant/quantize.h), so both tools write the same
 * bytes for the same input and file type.
 *
 * File types ("ftypes") are llama.cpp's: a name (Q4_K_M) and the id stored in
 * general.file_type (15). A "mix" (Q3_K_M, Q4_K_M, ...) gives most weights its base type and
 * some more bits: attn_v and ffn_down in the layers llama.cpp picks, the output projection
 * (or the tied token embedding) Q6_K. --pure gives every quantizable tensor the base type.
 * Tensors that are not quantized: 1-D ones, names not ending in "weight", norms and a few
 * small special tensors (llama-quant.cpp's list). A row length that is not a multiple of the
 * chosen type's block falls back to a 32-element type, then to F16, as llama.cpp does.
 *
 * Output: the input's key/values in order, then general.quantization_version = 2 and
 * general.file_type (moved to the end, as gguf_set_val does), split keys removed; tensors in
 * llama.cpp's order (non-layer tensors by name, then blk.N by layer, then name). */
#ifndef LL_MODEL_QUANTIZE_H
#define LL_MODEL_QUANTIZE_H

#include "core/core.h"

#include <stdatomic.h>

typedef struct {
    const char *name;        /* "Q4_K_M" */
    uint32_t    ftype;       /* general.file_type */
    uint32_t    base_type;   /* ggml type most weights get */
    const char *desc;
} ll_ftype_info;

/* Look up a file type by name (case-insensitive; Q3_K/Q4_K/Q5_K are aliases of the _M mixes,
 * as in llama-quantize) or by its decimal id. NULL when unknown. */
const ll_ftype_info *ll_ftype_find(const char *name);
/* The table, for usage messages; *n gets its length. */
const ll_ftype_info *ll_ftype_list(size_t *n);

/* One line of progress per tensor, in output order. */
typedef struct {
    size_t      index, count;       /* 0-based index, number of tensors */
    const char *name;
    int64_t     ne[4];
    uint32_t    src_type, dst_type;
    uint64_t    src_bytes, dst_bytes;
    bool        converted;          /* false: bytes copied unchanged */
    bool        fallback;           /* the row length forced a fallback type */
    double      err2, ref2;         /* with stats: sum (q - x)^2 and sum x^2 (0 otherwise) */
} ll_quantize_tensor_info;

/* --override-kv KEY=TYPE:VALUE, as llama.cpp parses it (common.cpp string_parse_kv_override). */
typedef enum { LL_KVO_INT, LL_KVO_FLOAT, LL_KVO_BOOL, LL_KVO_STR } ll_kvo_tag;
typedef struct {
    char       key[128];
    ll_kvo_tag tag;
    int64_t    i;        /* written as u32 |i|, as llama-quantize does */
    double     f;        /* written as f32 */
    bool       b;
    char       s[128];
} ll_kv_override;

/* Parse "KEY=int:5", "KEY=float:0.5", "KEY=bool:true", "KEY=str:text"; false when malformed. */
bool ll_kv_override_parse(const char *arg, ll_kv_override *out);

typedef struct {
    uint32_t ftype;               /* general.file_type to write (ll_ftype_info.ftype) */
    int      n_threads;           /* <= 0: every online CPU */
    bool     pure;                /* every quantizable tensor gets the base type */
    bool     allow_requantize;    /* accept already-quantized input tensors */
    bool     leave_output;        /* keep output.weight as it is (--leave-output-tensor) */
    int32_t  output_type;         /* ggml type for output.weight, or -1 */
    int32_t  token_embd_type;     /* ggml type for token_embd.weight, or -1 */
    bool     stats;               /* measure each converted tensor's error */
    void   (*progress)(void *ud, const ll_quantize_tensor_info *t);
    void    *progress_ud;
    const char *const *tt_patterns;  /* --tensor-type: POSIX extended regexes, searched in the */
    const int32_t *tt_types;         /* tensor name (lower-case them as llama-quantize does); */
    size_t      n_tt;                /* the first match gives the type (before the fallback) */
    const ll_kv_override *kv_overrides;  /* written after general.file_type, in order; int */
    size_t      n_kv_overrides;          /* ones also replace the hyperparameters read */
    const int  *prune;            /* --prune-layers: sorted, unique layer ids to drop */
    size_t      n_prune;
    bool        dry_run;          /* report types and sizes; read no weights, write nothing */
    const char *imatrix_path;     /* importance matrix (llama-imatrix's GGUF or legacy .dat) */
    const char *const *imatrix_include;  /* keep only entries whose name contains one of these */
    size_t      n_imatrix_include;
    const char *const *imatrix_exclude;  /* drop entries whose name contains one of these */
    size_t      n_imatrix_exclude;
    const atomic_bool *cancel;    /* may be NULL; read between slabs of rows: when raised, the
                                     temporary file is removed and LL_ERR_CANCELLED returned */
} ll_quantize_params;

void ll_quantize_params_default(ll_quantize_params *p);

typedef struct {
    uint64_t src_bytes, dst_bytes;     /* tensor data, before and after */
    int64_t  n_elements;
    size_t   n_tensors, n_converted, n_fallback;
    bool     needs_imatrix;            /* dry run of Q2_K_S without --imatrix */
} ll_quantize_result;

/* Quantize in_path to out_path. The output is written to a temporary file next to out_path
 * and renamed into place only when complete; out_path must not name the input file. */
ll_status ll_quantize_file(const char *in_path, const char *out_path, const ll_quantize_params *p,
                           ll_quantize_result *res, ll_error *err);

#endif
