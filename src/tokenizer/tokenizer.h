/* tokenizer: byte-level BPE (GGUF "gpt2") and SentencePiece BPE (GGUF "llama"), exactly as
 * ../shared/spec/tokenizers.md describes llama.cpp's. The public calls are in locallama.h
 * (ll_tok_encode, ll_tok_piece, ll_tok_decode, ll_vocab_*); this adds the constructor the
 * model loader uses. The vocab is immutable after load; encode keeps its scratch per call. */
#ifndef LL_TOKENIZER_H
#define LL_TOKENIZER_H

#include "gguf/gguf.h"

/* Build a vocab from a parsed GGUF's tokenizer.* keys. The vocab copies what it needs, so it
 * does not borrow from g (g may be closed afterwards). */
ll_status ll_vocab_from_gguf(ll_vocab **out, const ll_gguf *g, ll_error *err);

/* ll_vocab_load for callers that only detokenize (the detokenize command): skips building
 * the BPE merge table, the slow part of loading a large vocabulary. ll_tok_encode on such a
 * vocab fails with LL_ERR_ARG; pieces and decoding are the same as after ll_vocab_load. */
ll_status ll_vocab_load_decode_only(ll_vocab **out, const char *path, ll_error *err);

/* A number that identifies this vocab object among all created in the process (never 0,
 * never reused, even for a vocab loaded at a freed one's address): a key for caches of tables
 * derived from the vocabulary (the grammar's token trie). */
uint64_t ll_vocab_serial(const ll_vocab *v);

#endif
