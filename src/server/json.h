/* server/json: request parsing and response encoding over jansson, the way Ollama's Go
 * encoding/json does it (ollama-api.md §0.5).
 *
 *     json_t *body;
 *     if (ll_json_parse(p, n, &body, &err) != LL_OK) ... 400 err.msg       // H21..H28
 *     ll_str model; bool has;
 *     if (ll_json_get_str(body, "model", &model, &has, &err) != LL_OK) ... 400 err.msg
 *     char *out; size_t out_n;
 *     ll_json_dump(resp_obj, 0, &out, &out_n, &err);                      // Go's bytes
 *
 * Parsing: ll_json_parse first runs one iterative pass over the bytes that checks the syntax
 * (so errors say "invalid JSON at byte N: ..."), caps nesting at LL_JSON_MAX_DEPTH (H23),
 * refuses data after the value (H24), refuses numbers past a double (H26, naming the field;
 * an integer past int64 becomes a real, and the int getters then refuse it by name and range),
 * and copies the text with invalid UTF-8 and lone surrogate escapes replaced by U+FFFD (H27,
 * as Go's decoder does). jansson then parses the clean copy with NUL allowed inside strings
 * (H28: strings carry lengths, use json_string_length). Duplicate keys: last wins (H25).
 *
 * Getters implement §0.5.4: a key matches exactly or, failing that, case-insensitively (the
 * last matching key in document order wins, as in Go); JSON null means absent. Top-level
 * getters are strict ("field 'stream' must be a boolean", H29); option getters are lenient the
 * way §0.9 and §5 D9 say (ints truncate, numeric strings accepted, "stop" may be one string).
 *
 * Encoding: ll_json_dump writes compact JSON in insertion order with Go's escaping (`<>&`,
 * U+2028, U+2029, and also U+0085, clients.md §1.1) and Go's number format (shortest
 * round-trip; exponent only below 1e-6 or from 1e21; float32 shortest with LL_JSON_F32).
 */
#ifndef LL_SERVER_JSON_H
#define LL_SERVER_JSON_H

#include "locallama.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LL_JSON_MAX_DEPTH 128   /* fault-cases.md caps: "JSON depth 128" */

/* ---- parsing --------------------------------------------------------------------------- */

/* Parse one JSON value from n bytes (any top-level type). Whitespace-only or empty input is
 * LL_ERR_FORMAT with msg "missing request body" (Ollama's text, H22). On success *out is a new
 * reference the caller json_decref()s. Messages never echo more than a few escaped bytes. */
ll_status ll_json_parse(const char *p, size_t n, json_t **out, ll_error *err);

/* ---- getters (§0.5.4) ------------------------------------------------------------------ */

/* The value of key in obj, exact match first, else the last case-insensitive match; NULL when
 * absent, when the value is JSON null, or when obj is not an object. Borrowed reference. */
json_t *ll_json_field(const json_t *obj, const char *key);

/* Strict top-level getters. *present (may be NULL) says whether the field was given; when it
 * was not, *out is left unchanged (so callers preset defaults). Wrong type: LL_ERR_ARG with
 * "field 'KEY' must be a string" (boolean, an integer, a number, an array, an object). */
ll_status ll_json_get_str(const json_t *obj, const char *key, ll_str *out, bool *present, ll_error *err);
ll_status ll_json_get_bool(const json_t *obj, const char *key, bool *out, bool *present, ll_error *err);
/* Integral numbers only (1.0 is fine, 1.5 is not, §0.5.4), within [min, max], else
 * "field 'KEY' must be between MIN and MAX". */
ll_status ll_json_get_int(const json_t *obj, const char *key, int64_t min, int64_t max,
                          int64_t *out, bool *present, ll_error *err);
ll_status ll_json_get_num(const json_t *obj, const char *key, double *out, bool *present, ll_error *err);
/* Borrowed reference to an array / object value, or NULL when absent. */
ll_status ll_json_get_array(const json_t *obj, const char *key, json_t **out, ll_error *err);
ll_status ll_json_get_object(const json_t *obj, const char *key, json_t **out, ll_error *err);

/* Lenient option getters for the "options" object (§0.9, §5 D9): keys match exactly; null is
 * absent; numbers or numeric strings ("0.7") are accepted; ints truncate toward zero (2.9 -> 2)
 * and must fit in int64. Wrong type: LL_ERR_ARG with Ollama's text
 * `option "NAME" must be of type integer` (float32, boolean, an array of strings). */
ll_status ll_json_opt_int(const json_t *opts, const char *name, int64_t *out, bool *present, ll_error *err);
ll_status ll_json_opt_float(const json_t *opts, const char *name, double *out, bool *present, ll_error *err);
ll_status ll_json_opt_bool(const json_t *opts, const char *name, bool *out, bool *present, ll_error *err);
/* "stop": an array of strings or one string (D9). *out is a borrowed array or string json_t;
 * use ll_json_strlist_n / ll_json_strlist_at to read either form. */
ll_status ll_json_opt_strlist(const json_t *opts, const char *name, json_t **out, ll_error *err);
size_t ll_json_strlist_n(const json_t *list);
ll_str ll_json_strlist_at(const json_t *list, size_t i);

/* A jansson string as a view (keeps embedded NULs). Empty view for non-strings. */
ll_str ll_json_str(const json_t *s);

/* ---- keep_alive and durations (§0.5.5, §5 D8) ------------------------------------------ */

/* keep_alive from a request value or an env string: JSON number = seconds (fractional ok);
 * string = Go duration ("5m", "1h30m", "-1m", "1.5h", "0"), a decimal number of seconds
 * ("300", "-1", D8) or ISO 8601 ("PT15M", D8). *ns is signed: negative means "forever", 0
 * means "unload after this request". Errors (LL_ERR_ARG): Go's texts,
 * `time: invalid duration "abc"`, `Unsupported type: 'bool'`. */
ll_status ll_json_keep_alive(const json_t *v, int64_t *ns, ll_error *err);
ll_status ll_parse_duration(const char *s, size_t n, int64_t *ns, ll_error *err);

/* Go's time.Duration.String(): "5m0s", "1h30m0s", "1.5s", "250ms", "0s". Returns buf. */
char *ll_fmt_go_duration(char *buf, size_t cap, int64_t ns);

/* ---- output ---------------------------------------------------------------------------- */

enum {
    LL_JSON_F32     = 1 << 0,   /* print reals in float32 shortest form (/api/embed) */
    LL_JSON_NEWLINE = 1 << 1,   /* append "\n" (NDJSON lines, /v1 bodies) */
};

/* Serialize v compactly with Go's escaping and number format; *out is ll_malloc'ed,
 * NUL-terminated, *n excludes the NUL. NaN/Inf (which the handlers must not produce) are
 * written as 0. Nesting past 1024 is LL_ERR_LIMIT. */
ll_status ll_json_dump(const json_t *v, int flags, char **out, size_t *n, ll_error *err);

/* Go's float formatting (encoding/json floatEncoder): shortest round-trip digits, 'e' form
 * below 1e-6 or from 1e21 with "e-07" cleaned to "e-7". buf needs 32 bytes; returns length. */
size_t ll_json_fmt_f64(char *buf, double v);
size_t ll_json_fmt_f32(char *buf, float v);

/* RFC 3339 with nanoseconds, trailing zeros trimmed (§0.5.3). utc: "...Z" (created_at);
 * otherwise local time with a numeric offset, "Z" when the offset is 0 (modified_at,
 * expires_at). LL_TIME_ZERO prints Go's zero time "0001-01-01T00:00:00Z". buf needs 40 bytes. */
#define LL_TIME_ZERO INT64_MIN
size_t ll_json_fmt_time(char *buf, size_t cap, int64_t unix_ns, bool utc);
int64_t ll_time_unix_ns(void);   /* wall clock, nanoseconds since the epoch */

#endif
