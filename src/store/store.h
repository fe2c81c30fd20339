/* store: the model store in Ollama's on-disk layout (spec ollama-api.md §0.8, §4; fault rows S).
 *
 *     <root>/manifests/<host>/<namespace>/<model>/<tag>   Docker v2 manifest JSON, one per name
 *     <root>/blobs/sha256-<64 lowercase hex>              content-addressed layers and configs
 *
 * An existing Ollama store is read as is and what we write Ollama reads: manifests, config and
 * params blobs are written byte for byte as Ollama's Go code writes them (field order, HTML-safe
 * escapes, trailing newline). A walk through the life of a model:
 *
 *     ll_store *s;  ll_error err = {0};
 *     char *root = ll_store_root_from_env();            // LOCALLAMA_MODELS, OLLAMA_MODELS, ~/…
 *     ll_store_open(&s, root, NULL, &err);
 *     ll_model_name n;
 *     ll_name_parse(&n, "mario", &err);                  // registry.ollama.ai/library/mario:latest
 *     ll_create_opts co = { .gguf_path = "/m/model.gguf", .mf = parsed_modelfile };
 *     ll_store_create(s, &n, &co, &err);                 // blobs, config, then the manifest
 *     ll_model_info *list; size_t k;
 *     ll_store_list(s, &list, &k, &err);                 // /api/tags
 *     ll_store_copy(s, &n, &other, &found, &err);        // same manifest bytes, same blobs
 *     ll_store_delete(s, &n, &found, &err);              // manifest, then unreferenced blobs
 *     ll_store_close(s);
 *
 * Safety. Every path is built from parsed names (§0.8.1 charset, no "." or ".." parts) and
 * parsed digests (sha256-<64 hex>), never from raw input. Manifests and blobs are opened with
 * O_NOFOLLOW under directory descriptors opened without following symlinks (S21); a manifest
 * over 1 MiB, unparsable or naming a bad digest is corrupt (S7, S9). Every file is written as a
 * temp file beside its target, fsynced, renamed, and the directory fsynced (S5, S6, S25).
 * Deletion and garbage collection run under the store mutex and skip blobs pinned by creates
 * and copies in flight, so no manifest ever points at a deleted blob (S11-S14, S16).
 *
 * Thread safety: every function may be called from any thread on one ll_store. */
#ifndef LL_STORE_H
#define LL_STORE_H

#include "core/core.h"
#include "store/modelfile.h"

#include <jansson.h>
#include <time.h>

// ---- names (§0.8) ---------------------------------------------------------------------------

#define LL_NAME_HOST_MAX 350
#define LL_NAME_PART_MAX 80

typedef struct {
    char scheme[8];                        /* "https" unless the input said "http://" */
    char host[LL_NAME_HOST_MAX + 1];       /* default registry.ollama.ai */
    char ns[LL_NAME_PART_MAX + 1];         /* default library */
    char model[LL_NAME_PART_MAX + 1];
    char tag[LL_NAME_PART_MAX + 1];        /* default latest */
} ll_model_name;

/* Parse and fill defaults. LL_ERR_ARG "invalid model name" plus the reason when a part is
 * empty, too long or has a character outside its set (§0.8.1). Surrounding whitespace trimmed. */
ll_status ll_name_parse(ll_model_name *out, const char *s, ll_error *err);
/* host/namespace/model:tag */
void ll_name_full(const ll_model_name *n, char *buf, size_t cap);
/* Shortest display form (§0.8.2): model:tag, namespace/model:tag or host/namespace/model:tag. */
void ll_name_display(const ll_model_name *n, char *buf, size_t cap);
/* Case-insensitive equality of all four parts. */
bool ll_name_equal(const ll_model_name *a, const ll_model_name *b);

#define LL_NAME_FULL_MAX (LL_NAME_HOST_MAX + 3 * LL_NAME_PART_MAX + 4)

// ---- digests (§4.5) -------------------------------------------------------------------------

typedef struct { char hex[65]; } ll_digest;   /* 64 lowercase hex digits */

/* Accepts ^sha256[:-][0-9a-fA-F]{64}$ and lower-cases it; anything else LL_ERR_ARG
 * "invalid digest format". This is the path-traversal guard for blob names. */
ll_status ll_digest_parse(ll_digest *out, const char *s, ll_error *err);
/* "sha256:<hex>" into buf (cap >= 72). */
void ll_digest_str(const ll_digest *d, char *buf, size_t cap);

// ---- the store ------------------------------------------------------------------------------

typedef struct ll_store ll_store;

typedef struct {
    bool read_only;          /* refuse every write (S19); also set when root is not writable */
    int64_t grace_seconds;   /* GC spares unreferenced blobs and temp files younger than this;
                                0 in the options means the default, 24 h (fault-cases caps) */
} ll_store_opts;

/* Store root from the environment (§0.4.1): LOCALLAMA_MODELS, else OLLAMA_MODELS (each
 * trimmed of spaces and then of surrounding quotes; empty counts as unset), else
 * $HOME/.locallama/models. Heap string (ll_free) or NULL when HOME is unknown too. */
char *ll_store_root_from_env(void);

/* Open (creating root, manifests/ and blobs/ when missing and writable). opts may be NULL.
 * The root may be a symlink: it is resolved once here (S21). */
ll_status ll_store_open(ll_store **out, const char *root, const ll_store_opts *opts, ll_error *err);
void      ll_store_close(ll_store *s);                       /* NULL-safe */
const char *ll_store_root(const ll_store *s);                /* the resolved root */
bool      ll_store_read_only(const ll_store *s);

/* One process per store (S23): an exclusive lock on <root>/locallama.lock, held until close.
 * Held elsewhere → LL_ERR_IO "model store locked by pid N". */
ll_status ll_store_lock(ll_store *s, ll_error *err);

// ---- blobs ----------------------------------------------------------------------------------

/* Absolute path of a blob: <root>/blobs/sha256-<hex>. */
void ll_store_blob_path(const ll_store *s, const ll_digest *d, char *buf, size_t cap);
/* True when a regular file (not a symlink) of that name exists; *size gets its size. */
bool ll_store_blob_exists(ll_store *s, const ll_digest *d, uint64_t *size);
/* Rehash a blob and compare with its name (and size unless expect_size is UINT64_MAX): S10. */
ll_status ll_store_blob_verify(ll_store *s, const ll_digest *d, uint64_t expect_size, ll_error *err);

/* Streaming blob writer: bytes go to a temp file in blobs/ (sha256-<digits>, the pattern
 * Ollama uses) while they are hashed; commit verifies and renames. The temp file never
 * carries the final name, so an interrupted upload leaves no blob (S1). */
typedef struct ll_blob_writer ll_blob_writer;

/* max_bytes: refuse more than this many bytes (0: no limit). */
ll_status ll_blob_writer_open(ll_blob_writer **out, ll_store *s, uint64_t max_bytes, ll_error *err);
ll_status ll_blob_writer_write(ll_blob_writer *w, const void *p, size_t n, ll_error *err);
/* Finish: fsync, compare with *expect (NULL: accept the computed digest; mismatch →
 * LL_ERR_FORMAT `digest mismatch, expected "sha256:…", got "sha256:…"` and nothing is kept:
 * S2), rename into place unless the blob already exists (then the temp is dropped: S4), fsync
 * blobs/. Always consumes w. *got, *size and *existed may be NULL. */
ll_status ll_blob_writer_commit(ll_blob_writer *w, const ll_digest *expect, ll_digest *got,
                                uint64_t *size, bool *existed, ll_error *err);
/* Drop the temp file and free (NULL-safe). */
void ll_blob_writer_abort(ll_blob_writer *w);

/* Convenience: a buffer or a whole file as a blob. */
ll_status ll_store_blob_put_mem(ll_store *s, const void *p, size_t n, ll_digest *got,
                                bool *existed, ll_error *err);
ll_status ll_store_blob_put_file(ll_store *s, const char *path, ll_digest *got, uint64_t *size,
                                 bool *existed, ll_error *err);

/* Disk-full and similar write errors carry "no space left on device" (S18: HTTP 507). */
bool ll_store_err_is_nospace(const ll_error *err);

// ---- manifests (§4.2) -----------------------------------------------------------------------

#define LL_MANIFEST_MAX_BYTES (1u << 20)

#define LL_MEDIA_MANIFEST  "application/vnd.docker.distribution.manifest.v2+json"
#define LL_MEDIA_CONFIG    "application/vnd.docker.container.image.v1+json"
#define LL_MEDIA_MODEL     "application/vnd.ollama.image.model"
#define LL_MEDIA_PROJECTOR "application/vnd.ollama.image.projector"
#define LL_MEDIA_ADAPTER   "application/vnd.ollama.image.adapter"
#define LL_MEDIA_DRAFT     "application/vnd.ollama.image.draft"
#define LL_MEDIA_TEMPLATE  "application/vnd.ollama.image.template"
#define LL_MEDIA_PROMPT    "application/vnd.ollama.image.prompt"
#define LL_MEDIA_SYSTEM    "application/vnd.ollama.image.system"
#define LL_MEDIA_PARAMS    "application/vnd.ollama.image.params"
#define LL_MEDIA_MESSAGES  "application/vnd.ollama.image.messages"
#define LL_MEDIA_LICENSE   "application/vnd.ollama.image.license"

typedef struct {
    char     *media_type;
    ll_digest digest;
    uint64_t  size;
    char     *from;      /* NULL when absent */
    char     *name;      /* NULL when absent */
} ll_layer;

typedef struct {
    ll_layer  config;
    ll_layer *layers;
    size_t    n_layers;
    /* filled by ll_store_manifest_read */
    char      digest[65];       /* lowercase hex SHA-256 of the manifest file bytes */
    uint64_t  total_size;       /* config + layers (§4.5) */
    struct timespec mtime;      /* of the manifest file */
} ll_manifest;

/* Parse manifest bytes (≤ 1 MiB). Unknown fields are ignored; a missing or malformed config,
 * layer digest (S9) or size is LL_ERR_FORMAT. */
ll_status ll_manifest_parse(ll_manifest **out, const void *buf, size_t n, ll_error *err);
/* Serialize as Ollama does: schemaVersion, mediaType, config, layers; Go escapes; one "\n". */
char     *ll_manifest_serialize(const ll_manifest *m, size_t *n);
void      ll_manifest_free(ll_manifest *m);                  /* NULL-safe */
/* First layer of a media type, or NULL. */
const ll_layer *ll_manifest_find(const ll_manifest *m, const char *media_type);

/* Find a model, matching each part case-insensitively against the directory names on disk
 * (§0.8.3). *resolved gets the on-disk spelling; *found false when there is no manifest. */
ll_status ll_store_resolve(ll_store *s, const ll_model_name *n, ll_model_name *resolved,
                           bool *found, ll_error *err);
/* Read a model's manifest. Absent: LL_OK with *found false (and *out NULL). Corrupt (S7, S9,
 * S21): LL_ERR_FORMAT "manifest for '<display>' is corrupt: …". */
ll_status ll_store_manifest_read(ll_store *s, const ll_model_name *n, ll_manifest **out,
                                 bool *found, ll_error *err);
/* Write atomically (S6) under the name's existing spelling when one matches (S22). */
ll_status ll_store_manifest_write(ll_store *s, const ll_model_name *n, const ll_manifest *m,
                                  ll_error *err);

/* Before loading: every layer and the config present with the size the manifest says (S8,
 * S10). Errors: "model '<display>' is missing blob sha256-<hex>; re-create or pull it",
 * "model '<display>': blob sha256-<hex> is N bytes, the manifest says M". */
ll_status ll_store_model_check(ll_store *s, const ll_model_name *n, const ll_manifest *m,
                               ll_error *err);

// ---- derived metadata (§4.4, §4.7.3) ----------------------------------------------------------

typedef struct {
    char  *parent_model;       /* `from` of the model layer, "" if none */
    char  *format;             /* model_format */
    char  *family;             /* model_family */
    char **families;           /* model_families; NULL when the config has null */
    size_t n_families;
    char  *parameter_size;     /* model_type */
    char  *quantization_level; /* file_type */
    int64_t context_length;    /* 0 when unknown (omit-if-empty) */
    int64_t embedding_length;
} ll_model_details;

typedef struct {
    char   name[LL_NAME_FULL_MAX];    /* display form (§0.8.2) */
    ll_model_name parsed;
    uint64_t size;
    char   digest[65];
    struct timespec modified_at;
    ll_model_details details;
} ll_model_info;

/* /api/tags: every readable manifest exactly four levels below manifests/, newest first
 * (one-second resolution, then by name). Corrupt manifests are left out and logged once (S7).
 * Free with ll_model_info_free. */
ll_status ll_store_list(ll_store *s, ll_model_info **out, size_t *n, ll_error *err);
void      ll_model_info_free(ll_model_info *v, size_t n);
/* details of one manifest (config blob + GGUF lengths); free with ll_model_details_clear. */
ll_status ll_store_details(ll_store *s, const ll_manifest *m, ll_model_details *d, ll_error *err);
void      ll_model_details_clear(ll_model_details *d);

/* Human parameter count (§4.7.3): 8.0B, 7.6B, 567.75M, 33M, 260K, 999. */
void ll_format_param_count(uint64_t n, char *buf, size_t cap);
/* GGUF general.file_type → name (§4.7.3); "unknown" for others. */
const char *ll_file_type_name(int64_t file_type);

/* The layers of a model gathered as an ll_modelfile for /api/show and `show --modelfile`:
 * from[0] = absolute model blob path (then projectors), adapters, template, system, params,
 * licenses, messages. */
ll_status ll_store_modelfile(ll_store *s, const ll_manifest *m, ll_modelfile **out, ll_error *err);

// ---- create, copy, delete, GC (§4.8, §4.9, §1.8-§1.10) ------------------------------------------

typedef void (*ll_store_progress_fn)(void *user, const char *status);

typedef struct {
    /* the base, exactly one of: */
    const char      *gguf_path;   /* a GGUF file: copied into a blob (reused if present) */
    const ll_digest *gguf_blob;   /* an uploaded blob holding a GGUF */
    const ll_model_name *from_model; /* an existing model: its layers are inherited */
    const char      *parent;      /* recorded as the model layer's `from` (may be NULL) */
    /* with from_model only: a GGUF file that replaces the inherited model layer (the base
     * model quantized, `create --quantize`); its file type goes into the config */
    const char      *model_path;
    /* what to set on top (may be NULL): TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE,
     * RENDERER, PARSER, REQUIRES. FROM is ignored here (the caller resolved it into the base);
     * ADAPTER and DRAFT are refused with LL_ERR_UNSUPPORTED. */
    const ll_modelfile *mf;
    ll_store_progress_fn progress;   /* "using existing layer sha256:…", "writing manifest", … */
    void *progress_user;
} ll_create_opts;

/* The quantization name a create records for a GGUF (config file_type, §4.4): from
 * general.file_type, else guessed from the most common 2-D weight type ("Q4_K_M", "F16", …).
 * Adapter and projector GGUFs are LL_ERR_UNSUPPORTED, unreadable ones LL_ERR_IO/FORMAT. */
ll_status ll_store_gguf_file_type(const char *path, char *buf, size_t cap, ll_error *err);

/* Create (or replace) a model. Errors before anything is written leave the store as it was;
 * a replaced manifest's layers that nothing references any more are deleted afterwards. */
ll_status ll_store_create(ll_store *s, const ll_model_name *name, const ll_create_opts *o,
                          ll_error *err);
/* Copy the manifest byte for byte (same digest) to dst; overwrites; onto itself a no-op.
 * Source absent → LL_OK with *found false. */
ll_status ll_store_copy(ll_store *s, const ll_model_name *src, const ll_model_name *dst,
                        bool *found, ll_error *err);
/* Remove the manifest and empty parent directories, then every blob of it no manifest
 * references. A corrupt manifest is still removed. Absent → LL_OK with *found false. */
ll_status ll_store_delete(ll_store *s, const ll_model_name *n, bool *found, ll_error *err);

typedef struct {
    size_t n_blobs_removed;
    size_t n_temps_removed;
    uint64_t bytes_removed;
} ll_gc_stats;

/* Start-up prune (§4.9, S16, S17): delete unreferenced blobs and our temp files older than
 * the grace period (grace_seconds < 0: the store's), remove empty manifest directories.
 * Files that are neither sha256-<64 hex> nor a temp are never touched. Corrupt manifests do
 * not stop it: any sha256:<hex> in their bytes still counts as a reference. */
ll_status ll_store_gc(ll_store *s, int64_t grace_seconds, ll_gc_stats *stats, ll_error *err);

/* Pins keep blobs alive across GC while an operation that will reference them is running
 * (an upload the client will name in a create). Counted; unpin what you pin. */
ll_status ll_store_pin(ll_store *s, const ll_digest *d, ll_error *err);
void      ll_store_unpin(ll_store *s, const ll_digest *d);

/* Test hook: the next `count` writes to store files fail with errno e (0 disables). */
void ll_store_test_fail_writes(int e, int count);

#endif
