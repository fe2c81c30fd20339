/* make_bad_gguf: write one malformed GGUF per fault row G1-G44 (fault-cases.md) into a
 * directory, plus a few valid ones, to seed the fuzzer and for manual checks:
 *
 *     build/tools/make_bad_gguf /tmp/bad            # small files only
 *     build/tools/make_bad_gguf /tmp/bad --big      # also the >16 MiB cap cases (G19, G24)
 *     for f in /tmp/bad/G*.gguf; do build/locallama tokenize --model $f hi; done
 *
 * Each pair of output lines names the file and the outcome the reader must give, then what
 * this build's reader actually says (parsed from memory). G2 (directory)
 * and G3 (FIFO, device, socket) are not files; tests/faults/test_faults_gguf.c makes them. */
#include "../tests/gguf_builder.h"

#include "gguf/gguf.h"

#include <sys/stat.h>

typedef struct {
    const char *name;                        /* file name without .gguf */
    const char *expect;                      /* status and message the reader should give */
    long (*make)(gguf_builder *b);           /* fills b; returns a cut length or -1 for all */
    bool big;
} bad_case;

/* A small but complete-looking model: metadata, a tiny vocab and two F32 tensors. */
static void base_kv(gguf_builder *b) {
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_str(b, "general.name", "bad-gguf-corpus");
    gb_kv_u32(b, "llama.block_count", 1);
    gb_kv_u32(b, "llama.embedding_length", 8);
    gb_kv_str(b, "tokenizer.ggml.model", "llama");
    const char *toks[] = { "<unk>", "<s>", "</s>", "a", "b" };
    gb_kv_arr_str(b, "tokenizer.ggml.tokens", toks, 5);
    float sc[5] = { 0, 0, 0, -1, -2 };
    gb_kv_arr_f32(b, "tokenizer.ggml.scores", sc, 5);
    int32_t ty[5] = { 2, 3, 3, 1, 1 };
    gb_kv_arr_i32(b, "tokenizer.ggml.token_type", ty, 5);
    gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 1);
    gb_kv_bool(b, "tokenizer.ggml.add_bos_token", 1);
}
static void base_tensors(gguf_builder *b) {
    float w[40];
    for (int i = 0; i < 40; i++) w[i] = (float)i / 8;
    uint64_t ne2[2] = { 8, 5 }, ne1[1] = { 8 };
    gb_tensor_f32(b, "token_embd.weight", 2, ne2, w);
    gb_tensor_f32(b, "output_norm.weight", 1, ne1, w);
}
static void base(gguf_builder *b) { base_kv(b); base_tensors(b); }

static const uint64_t NE4[1] = { 4 };

static long g00_valid(gguf_builder *b) { base(b); return -1; }
static long g01(gguf_builder *b) { base(b); return 0; }
static long g04(gguf_builder *b) { base(b); return 13; }
static long g05_ggjt(gguf_builder *b) { base(b); memcpy(b->magic, "tjgg", 4); return -1; }
static long g05_zip(gguf_builder *b) { base(b); memcpy(b->magic, "PK\x03\x04", 4); return -1; }
static long g06(gguf_builder *b) { base(b); b->version = 0; return -1; }
static long g07(gguf_builder *b) { base(b); b->version = 1; return -1; }
static long g08(gguf_builder *b) { base(b); b->version = 4; return -1; }
static long g09(gguf_builder *b) { base(b); b->version = 0x03000000; return -1; }
static long g10(gguf_builder *b) {
    base(b);
    b->override_counts = true;
    b->n_tensors_override = 1ull << 63;
    b->n_kv_override = b->n_kv;
    return -1;
}
static long g11_cap(gguf_builder *b) {
    base(b);
    b->override_counts = true;
    b->n_tensors_override = b->n_tensors;
    b->n_kv_override = 70000;
    return -1;
}
static long g11_bytes(gguf_builder *b) {
    base(b);
    b->override_counts = true;
    b->n_tensors_override = 1u << 20;
    b->n_kv_override = b->n_kv;
    return -1;
}
static long g12(gguf_builder *b) {
    base_kv(b);
    long cut = (long)(24 + b->kv.n - 1);          /* inside the last value */
    base_tensors(b);
    return cut;
}
static long g13(gguf_builder *b) {
    base(b);
    gb_put_u64(&b->kv, 70000);
    gb_put_zeros(&b->kv, 64);
    b->n_kv++;
    return -1;
}
static long g14(gguf_builder *b) { base_kv(b); gb_kv_u32(b, "", 1); base_tensors(b); return -1; }
static long g15_nul(gguf_builder *b) {
    base_kv(b);
    gb_kv_beginn(b, "general.na\0me", 13, GB_U8);
    gb_put_u8(&b->kv, 1);
    base_tensors(b);
    return -1;
}
static long g15_utf8(gguf_builder *b) { base_kv(b); gb_kv_u8(b, "general.\xc0\xaf", 1); base_tensors(b); return -1; }
static long g16(gguf_builder *b) { base_kv(b); gb_kv_str(b, "general.architecture", "bert"); base_tensors(b); return -1; }
static long g17(gguf_builder *b) {
    base_kv(b);
    gb_kv_begin(b, "general.odd", 77);
    gb_put_u64(&b->kv, 0);
    base_tensors(b);
    return -1;
}
static long g18(gguf_builder *b) { base_kv(b); gb_kv_bool(b, "tokenizer.ggml.add_eos_token", 2); base_tensors(b); return -1; }
static long g19_neg(gguf_builder *b) {
    base_kv(b);
    gb_kv_begin(b, "general.license", GB_STR);
    gb_put_u64(&b->kv, UINT64_MAX);
    gb_put_zeros(&b->kv, 32);
    base_tensors(b);
    return -1;
}
static long g19_cap(gguf_builder *b) {
    base_kv(b);
    size_t n = (64u << 20) + 1;
    gb_kv_begin(b, "general.license", GB_STR);
    gb_put_u64(&b->kv, n);
    gb_put_zeros(&b->kv, n);
    base_tensors(b);
    return -1;
}
static long g20(gguf_builder *b) {
    base_kv(b);
    gb_kv_arr_begin(b, "general.nested", GB_ARR, 1);
    gb_put_u32(&b->kv, GB_U8);
    gb_put_u64(&b->kv, 1);
    gb_put_u8(&b->kv, 1);
    base_tensors(b);
    return -1;
}
static long g21(gguf_builder *b) {
    base_kv(b);
    gb_kv_arr_begin(b, "general.arr", 13, 1);
    gb_put_zeros(&b->kv, 8);
    base_tensors(b);
    return -1;
}
static long g22(gguf_builder *b) {
    base_kv(b);
    gb_kv_arr_begin(b, "general.arr", GB_U64, 1ull << 61);
    gb_put_zeros(&b->kv, 16);
    base_tensors(b);
    return -1;
}
static long g23(gguf_builder *b) {
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_arr_begin(b, "tokenizer.ggml.tokens", GB_STR, 1ull << 40);
    gb_put_zeros(&b->kv, 64);
    base_tensors(b);
    return -1;
}
static long g24(gguf_builder *b) {
    base_kv(b);
    size_t n = (1u << 24) + 1;
    gb_kv_arr_begin(b, "general.big", GB_U8, n);
    gb_put_zeros(&b->kv, n);
    base_tensors(b);
    return -1;
}
static long g25(gguf_builder *b) { base_kv(b); gb_kv_i32(b, "general.alignment", 32); base_tensors(b); return -1; }
static long g26(gguf_builder *b) { base_kv(b); gb_kv_u32(b, "general.alignment", 48); base_tensors(b); return -1; }
static long g27(gguf_builder *b) {
    base_kv(b);
    long cut = (long)(24 + b->kv.n + 8 + strlen("token_embd.weight") + 4 + 3);   /* inside dim 0 */
    base_tensors(b);
    return cut;
}
static long g28(gguf_builder *b) {
    base(b);
    gb_tensor(b, "blk.0.a_tensor_name_that_is_much_longer_than_sixty_four_bytes.weight", 1, NE4, 0, NULL, 16);
    return -1;
}
static long g29(gguf_builder *b) { base(b); gb_tensor(b, "output_norm.weight", 1, NE4, 0, NULL, 16); return -1; }
static long g30(gguf_builder *b) {
    base(b);
    uint64_t ne[5] = { 4, 1, 1, 1, 1 };
    gb_tensor_info_raw(b, "blk.0.x", 7, 5, ne, 5, 0, 0);
    return -1;
}
static long g31(gguf_builder *b) { base(b); uint64_t ne[2] = { 4, 0 }; gb_tensor(b, "blk.0.x", 2, ne, 0, NULL, 16); return -1; }
static long g32(gguf_builder *b) { base(b); uint64_t ne[2] = { 4, 1ull << 63 }; gb_tensor(b, "blk.0.x", 2, ne, 0, NULL, 16); return -1; }
static long g33(gguf_builder *b) { base(b); uint64_t ne[2] = { INT64_MAX, 2 }; gb_tensor(b, "blk.0.x", 2, ne, 0, NULL, 16); return -1; }
static long g34(gguf_builder *b) { base(b); uint64_t ne[1] = { 256 }; gb_tensor(b, "blk.0.x", 1, ne, 31, NULL, 256); return -1; }
static long g35(gguf_builder *b) { base(b); uint64_t ne[1] = { 256 }; gb_tensor(b, "blk.0.x", 1, ne, 16, NULL, 66); return -1; }
static long g36(gguf_builder *b) { base(b); uint64_t ne[1] = { 100 }; gb_tensor(b, "blk.0.x", 1, ne, 12, NULL, 144); return -1; }
static long g37(gguf_builder *b) {
    base(b);
    gb_tensor_at(b, "blk.0.x", 1, NE4, 0, (b->data.n + 63) / 32 * 32 + 16, NULL, 16);
    return -1;
}
static long g38(gguf_builder *b) {
    base(b);
    return (long)(24 + b->kv.n + b->ti.n);        /* ends before the padding */
}
static long g39(gguf_builder *b) {
    base(b);
    return (long)(gb_data_start(b) + b->data.n - 1);
}
static long g40(gguf_builder *b) {
    base(b);
    uint64_t ne[1] = { 64 };                      /* 256 bytes: offset + size wraps */
    gb_tensor_at(b, "blk.0.x", 1, ne, 0, UINT64_MAX - 31, NULL, 0);
    return -1;
}
static long g41(gguf_builder *b) { base(b); gb_tensor_at(b, "blk.0.x", 1, NE4, 0, 32, NULL, 0); return -1; }
static long g42(gguf_builder *b) { base_kv(b); return -1; }
static long g43(gguf_builder *b) { base(b); gb_put_zeros(&b->tail, 100); gb_put_bytes(&b->tail, "trailing", 8); return -1; }
static long g44(gguf_builder *b) {
    base_kv(b);
    gb_kv_u16(b, "split.no", 0);
    gb_kv_u16(b, "split.count", 3);
    base_tensors(b);
    return -1;
}

static const bad_case cases[] = {
    { "G00_valid", "OK", g00_valid, false },
    { "G01_empty", "FORMAT file is empty (0 bytes)", g01, false },
    { "G04_short_header", "FORMAT truncated header: file is 13 bytes, need 24", g04, false },
    { "G05_bad_magic_ggjt", "FORMAT not a GGUF file (magic 'tjgg', legacy GGJT)", g05_ggjt, false },
    { "G05_bad_magic_zip", "FORMAT not a GGUF file (zip archive)", g05_zip, false },
    { "G06_version_0", "FORMAT GGUF version 0 is invalid", g06, false },
    { "G07_version_1", "UNSUPPORTED GGUFv1 is not supported", g07, false },
    { "G08_version_4", "UNSUPPORTED GGUF version 4 is newer than supported", g08, false },
    { "G09_big_endian", "UNSUPPORTED big-endian GGUF is not supported", g09, false },
    { "G10_negative_n_tensors", "FORMAT n_tensors ... (negative as i64)", g10, false },
    { "G11_n_kv_over_cap", "LIMIT n_kv ... over the cap", g11_cap, false },
    { "G11_n_tensors_over_bytes", "FORMAT ... need at least ... bytes", g11_bytes, false },
    { "G12_truncated_kv", "FORMAT truncated at byte N while reading value of 'K'", g12, false },
    { "G13_key_too_long", "FORMAT key length 70000 ... over the limit", g13, false },
    { "G14_empty_key", "FORMAT KV #i has an empty key", g14, false },
    { "G15_key_nul", "FORMAT key ... has control byte 0x00", g15_nul, false },
    { "G15_key_bad_utf8", "FORMAT key ... invalid UTF-8", g15_utf8, false },
    { "G16_duplicate_key", "FORMAT duplicate key 'general.architecture'", g16, false },
    { "G17_unknown_value_type", "FORMAT key 'general.odd' has unknown type 77", g17, false },
    { "G18_bad_bool", "FORMAT invalid bool 0x02", g18, false },
    { "G19_string_negative_length", "FORMAT ... (negative as i64)", g19_neg, false },
    { "G19_string_over_cap", "LIMIT value of 'general.license' ... over the cap", g19_cap, true },
    { "G20_nested_array", "FORMAT nested arrays are not supported", g20, false },
    { "G21_unknown_element_type", "FORMAT array element type 13", g21, false },
    { "G22_array_size_overflow", "FORMAT byte size overflows", g22, false },
    { "G23_string_array_count", "FORMAT array of 1099511627776 strings ... needs at least", g23, false },
    { "G24_array_over_cap", "LIMIT array of 16777217 elements ... over the cap", g24, true },
    { "G25_alignment_i32", "FORMAT key 'general.alignment' has type i32, expected u32", g25, false },
    { "G26_alignment_48", "FORMAT general.alignment is 48: must be a power of two", g26, false },
    { "G27_truncated_tensor_info", "FORMAT while reading dim 0 of tensor #0", g27, false },
    { "G28_tensor_name_too_long", "FORMAT tensor #2: name is 68 bytes (max 64)", g28, false },
    { "G29_duplicate_tensor", "FORMAT duplicate tensor name 'output_norm.weight'", g29, false },
    { "G30_n_dims_5", "FORMAT n_dims is 5", g30, false },
    { "G31_dim_zero", "FORMAT tensor 'blk.0.x' dim 1 is 0", g31, false },
    { "G32_dim_negative", "FORMAT dim 1 is 9223372036854775808 (negative as i64", g32, false },
    { "G33_size_overflow", "FORMAT tensor 'blk.0.x' size overflows", g33, false },
    { "G34_unknown_type", "FORMAT tensor 'blk.0.x' has unknown type 31", g34, false },
    { "G35_iq2_xxs_tensor", "OK for the container; model load UNSUPPORTED IQ2_XXS", g35, false },
    { "G36_row_not_block_multiple", "FORMAT ne[0] = 100 is not a multiple of the block size 256 of Q4_K", g36, false },
    { "G37_misaligned_offset", "FORMAT offset ... is not a multiple of the alignment 32", g37, false },
    { "G38_data_past_eof", "FORMAT data section starts at N, file is M bytes", g38, false },
    { "G39_tensor_past_eof", "FORMAT tensor 'output_norm.weight' needs bytes [a, b), file has M", g39, false },
    { "G40_offset_overflow", "FORMAT offset ... + size ... overflows", g40, false },
    { "G41_overlap", "FORMAT tensors ... overlap", g41, false },
    { "G42_zero_tensors", "OK (vocab-only); model load FORMAT file has no tensors", g42, false },
    { "G43_trailing_bytes", "OK", g43, false },
    { "G44_split", "UNSUPPORTED shard 1 of 3; merge shards first", g44, false },
};

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--big") != 0)) {
        fprintf(stderr, "usage: %s DIR [--big]\n", argv[0]);
        return 2;
    }
    bool big = argc == 3;
    ll_log_set_level(0);
    mkdir(argv[1], 0755);
    int fail = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].big && !big) continue;
        gguf_builder b;
        gb_init(&b, 3);
        long cut = cases[i].make(&b);
        unsigned char *buf;
        size_t len;
        gb_finish(&b, &buf, &len);
        gb_free(&b);
        if (cut >= 0 && (size_t)cut < len) len = (size_t)cut;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.gguf", argv[1], cases[i].name);
        if (gb_write_file(path, buf, len) != 0) {
            fprintf(stderr, "make_bad_gguf: cannot write %s\n", path);
            fail = 1;
        } else {
            printf("%-32s %8zu bytes  want %s\n", cases[i].name, len, cases[i].expect);
            ll_error err = {0};
            ll_gguf *g = NULL;
            ll_status st = ll_gguf_parse(&g, buf, len, &err);
            printf("%-32s %14s got  %s%s%s\n", "", "", ll_status_name(st), st ? ": " : "", err.msg);
            ll_gguf_close(g);
        }
        free(buf);
    }
    return fail;
}
