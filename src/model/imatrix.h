/* model/imatrix: read an importance matrix (llama-imatrix's output) for the quantizer.
 *
 * For each weight it names, an importance matrix holds the mean squared activation seen by
 * each column (one row of them per expert for 3-D expert tensors), collected by running the
 * model on some text. Two layouts exist: the GGUF one (tensors "<weight>.in_sum2" with the
 * sums and "<weight>.counts" with how many were summed per expert, plus the keys
 * imatrix.datasets / chunk_count / chunk_size, which llama-quantize requires) and the older
 * binary ".dat". Values are reduced to sum / count per expert (1 where the count is 0), as
 * llama-quantize does, and must be finite. */
#ifndef LL_MODEL_IMATRIX_H
#define LL_MODEL_IMATRIX_H

#include "core/core.h"

typedef struct {
    char    *name;       /* weight name, e.g. "blk.0.attn_q.weight" */
    float   *v;          /* n values: n_per_row per expert */
    int64_t  n;
} ll_imatrix_entry;

typedef struct {
    ll_imatrix_entry *e;
    size_t      n;
    char       *dataset;      /* the first dataset's name, or NULL */
    uint32_t    chunk_count;  /* 0 when unknown */
} ll_imatrix;

/* Load path (GGUF when it starts with the magic, .dat otherwise) into *im (zeroed first;
 * freed again on failure). */
ll_status ll_imatrix_load(ll_imatrix *im, const char *path, ll_error *err);
/* Drop entries whose name contains one of exclude[], then keep only those containing one of
 * include[] (when n_include > 0): llama-quantize's --exclude-weights / --include-weights. */
void      ll_imatrix_filter(ll_imatrix *im, const char *const *include, size_t n_include,
                            const char *const *exclude, size_t n_exclude);
ll_imatrix_entry *ll_imatrix_find(const ll_imatrix *im, const char *name);   /* NULL if absent */
void      ll_imatrix_free(ll_imatrix *im);                                  /* leaves it zeroed */

#endif
