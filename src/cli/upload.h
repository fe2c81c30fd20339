/* cli/upload: the parts of `create` that client.c's one-shot calls do not cover
 * (ollama-cli.md §12, ollama-api.md §1.8, §1.13): a file's SHA-256, a blob upload that streams
 * the file from disk instead of loading it, and a POST whose NDJSON answer is handed over line
 * by line as it arrives.
 *
 *     char hex[65]; uint64_t size;
 *     if (cli_sha256_file(path, hex, &size)) return 1;          // "Error: ..." printed
 *     if (cli_blob_upload(path, digest, size, on_bytes, ui)) return 1;
 *     if (cli_stream_call("/api/create", req, on_line, ui)) return 1;
 *
 * Like client.h, every function prints its one "Error: ..." line itself and returns 1. */
#ifndef LL_CLI_UPLOAD_H
#define LL_CLI_UPLOAD_H

#include <jansson.h>
#include <stdint.h>

/* SHA-256 of a whole file as 64 lowercase hex digits; *size gets its length. */
int cli_sha256_file(const char *path, char hex[65], uint64_t *size);

/* Bytes sent so far of total; called from the transfer loop, often. */
typedef void (*cli_upload_progress_fn)(void *user, uint64_t sent, uint64_t total);

/* POST /api/blobs/<digest> ("sha256:<hex>") with the file as the body. 0 when the server
 * answers 201 (stored) or 200 (it had the blob already); otherwise its error is printed. */
int cli_blob_upload(const char *path, const char *digest, uint64_t size,
                    cli_upload_progress_fn progress, void *user);

/* One NDJSON line of a streamed answer (borrowed). Return non-zero to stop reading; that value
 * is then what cli_stream_call returns. */
typedef int (*cli_line_fn)(void *user, json_t *line);

/* POST path with a JSON body (borrowed) and `Accept: application/x-ndjson`, reading the answer
 * line by line (§1.3): a line carrying "error" ends the call with "Error: <msg>"; a status
 * >= 400 with a body that is not JSON uses the body as the message. 0 when the stream ended
 * without an error. */
int cli_stream_call(const char *path, json_t *req, cli_line_fn fn, void *user);

#endif
