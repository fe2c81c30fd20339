/* store/registry: what pull (pull.c) and push (push.c) share of the Docker Registry v2
 * protocol (spec ollama-api.md §1.11, §1.12; issue 12):
 *
 *   - Bearer challenges: a 401 carries  WWW-Authenticate: Bearer realm="…",service="…",scope="…";
 *     the client GETs  realm?service=…&scope=…  and retries with  Authorization: Bearer <token>.
 *   - Ollama's key-signed token request (registry.ollama.ai / ollama.com). Ollama keeps an
 *     ed25519 key in OpenSSH's private-key format at ~/.ollama/id_ed25519 (the public half in
 *     id_ed25519.pub) and asks the realm for a token with
 *         GET <realm>?nonce=<16 random bytes, base64url>&scope=…&service=…&ts=<unix seconds>
 *         Authorization: <base64 SSH public-key blob>:<base64 ed25519 signature>
 *     where the signature covers the text  "GET,<that URL>,<base64 of hex SHA-256 of the empty
 *     body>". We write the key the same way (created on first use, mode 0600, beside the
 *     store: <store parent>/id_ed25519), so an existing Ollama key is used as is and ours is
 *     one Ollama can use. What ollama.com then does with the token (the key has to be added
 *     to an ollama.com account to push into its namespaces) cannot be tested here: the tests
 *     are offline and check the signature with libcrypto, not against ollama.com.
 *   - Location headers of upload sessions, which may be absolute or relative (RFC 3986 §5.2
 *     reference resolution, the cases a registry sends).
 *
 * Nothing here keeps state between calls; the CURL handle is the caller's (reset on use). */
#ifndef LL_STORE_REGISTRY_H
#define LL_STORE_REGISTRY_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void CURL;   /* <curl/curl.h>'s handle, without including it here */

/* Value of key in a challenge's parameter list (after "Bearer "): realm="https://…",
 * service="…". false when absent or longer than cap - 1. */
bool ll_registry_challenge_param(const char *params, const char *key, char *out, size_t cap);

/* Answer a Bearer challenge: GET realm?service&scope and read {"token"} (or {"access_token"}).
 * scope NULL: the challenge's own. key_path NULL: an anonymous request; else the request is
 * signed with that key, created there when missing. Errors are LL_ERR_IO "unauthorized: …". */
ll_status ll_registry_fetch_token(CURL *c, const char *challenge, const char *scope,
                                  const char *key_path, char *token, size_t cap, ll_error *err);

/* ---- Ollama's ed25519 key ------------------------------------------------------------------- */

/* The 32-byte seed of an unencrypted OpenSSH ed25519 private key file's text. LL_ERR_FORMAT
 * naming the problem for anything else (encrypted keys, other key types, bad checks). */
ll_status ll_registry_key_parse(const char *text, size_t n, unsigned char seed[32], ll_error *err);
/* The file text for a seed (OpenSSH "openssh-key-v1" container, PEM-armoured in 64-column
 * lines as Go's ssh.MarshalPrivateKey writes it; empty comment) and the public key line
 * "ssh-ed25519 <base64 blob>" (no newline). Heap strings: free() them. */
ll_status ll_registry_key_format(const unsigned char seed[32], char **priv, char **pub, ll_error *err);
/* Read the seed at path, or create a new key there (and path + ".pub") when it does not exist. */
ll_status ll_registry_key_load(const char *path, unsigned char seed[32], ll_error *err);
/* Ollama's Authorization value for data: "<base64 public-key blob>:<base64 signature>". */
ll_status ll_registry_sign(const unsigned char seed[32], const void *data, size_t n, char *out,
                           size_t cap, ll_error *err);
/* The signed token request's URL: realm plus nonce, scope, service and ts in Go's
 * url.Values.Encode order and escaping, given nonce and ts (so a test can fix them). */
void ll_registry_token_url(const char *realm, const char *service, const char *scope,
                           const char *nonce, int64_t ts, char *out, size_t cap);
/* The text Ollama signs for a GET of url with an empty body. */
void ll_registry_sign_text(const char *url, char *out, size_t cap);

/* ---- URLs ------------------------------------------------------------------------------------ */

/* Resolve a Location header against the URL of the request it answered: absolute http(s)
 * URLs as they are, "//host/…" with base's scheme, "/path…" on base's scheme://host, and
 * other relative references against base's directory. false when it does not fit or is not
 * http(s). */
bool ll_registry_resolve(const char *base, const char *location, char *out, size_t cap);

#endif
