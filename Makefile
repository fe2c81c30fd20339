# locallama — one Makefile: `make` (binary + library), `make test`, `make asan`, `make fuzz`,
# `make bench`. Portable: no -march=native; ISA-specific files get their flags alone and are
# chosen at run time (src/kernels/dispatch.c).
ARCH    ?= $(if $(filter x86_64 amd64,$(shell uname -m)),x86,arm)
B       ?= build
CC      ?= cc
OPT     ?= -O2
SHARED  ?= $(abspath ../shared)
# The engine (core .. sampler) needs only libc, libm and pthreads; the server, store and CLI
# add the Debian-packaged libraries below (README, "Dependencies"), found with pkg-config.
PKGS     := libmicrohttpd jansson libcrypto libcurl libedit
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -Wvla -Wno-unused-parameter \
           -D_GNU_SOURCE -Iinclude -Isrc -pthread $(PKG_CFLAGS) $(SAN)
LDLIBS  += $(SAN) $(PKG_LIBS) -lm -lpthread
PYTHON  ?= python3

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)) $(wildcard src/kernels/$(ARCH)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)
TEST_SRC := $(sort $(wildcard tests/*/test_*.c))
TEST_BIN := $(TEST_SRC:%.c=$(B)/%)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TOOL_BIN := $(TOOL_SRC:%.c=$(B)/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:%.c=$(B)/%)

all: $(B)/locallama $(TOOL_BIN)

# ISA flags for these files only; dispatch decides at run time whether they may run.
$(B)/src/kernels/x86/%_avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(B)/src/kernels/x86/%_avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
$(B)/src/kernels/x86/%_avx512vnni.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c
$(B)/src/kernels/x86/%_amx.o: CFLAGS += -mamx-tile -mamx-int8 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c
$(B)/src/kernels/x86/%_amxbf16.o: CFLAGS += -mamx-tile -mamx-bf16 -mavx512bf16 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The commit bench reports (llama-bench's build_commit); rewritten only when it changes.
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(B)/build_info.h: FORCE
	@mkdir -p $(@D)
	@echo '#define LL_BUILD_COMMIT "$(GIT_COMMIT)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(B)/src/cli/cmd_bench.o: $(B)/build_info.h
$(B)/src/cli/cmd_bench.o: CFLAGS += -include $(B)/build_info.h
FORCE:

$(B)/liblocallama.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/locallama: $(CLI_OBJ) $(B)/liblocallama.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/liblocallama.a tests/test.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DLL_SHARED_DIR='"$(SHARED)"' -MMD -MP $< $(B)/liblocallama.a -o $@ $(LDLIBS)

$(B)/tools/%: tools/%.c $(B)/liblocallama.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(B)/liblocallama.a -o $@ $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/liblocallama.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(B)/liblocallama.a -o $@ $(LDLIBS)

tests: $(TEST_BIN)

# Unit tests (one binary per module), then the command-level suites in tests/py.
test: all $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; $$t || fail=1; done; \
	LOCALLAMA_BIN=$(abspath $(B)/locallama) LL_SHARED_DIR=$(SHARED) LL_BUILD_DIR=$(abspath $(B)) \
	  $(PYTHON) -m pytest -q tests/py || fail=1; \
	exit $$fail

unit: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir.
asan:
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) B=build-asan OPT=-O1 SAN='-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow' test

tsan:
	$(MAKE) B=build-tsan OPT=-O1 SAN='-fsanitize=thread' unit

# libFuzzer targets (clang). `make fuzz` builds them; `make fuzz-run FUZZ_SECONDS=600` runs each.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) B=build-fuzz CC=clang OPT=-O1 SAN='-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined' build-fuzz/liblocallama.a \
	  build-fuzz/tools/make_bad_gguf
	@mkdir -p build-fuzz/fuzz
	for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=c11 -O1 -g -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $(PKG_CFLAGS) $$f build-fuzz/liblocallama.a -o build-fuzz/fuzz/$$n $(PKG_LIBS) -lm -lpthread || exit 1; done

# GGUF seeds: one bad file per fault row (tools/make_bad_gguf) plus two small real files.
fuzz-run: fuzz
	rm -rf build-fuzz/seeds/fuzz_gguf && mkdir -p build-fuzz/seeds/fuzz_gguf && build-fuzz/tools/make_bad_gguf build-fuzz/seeds/fuzz_gguf >/dev/null
	cp $(SHARED)/reference/stories260K/stories260K.gguf $(SHARED)/tokenizer/llama2-spm.gguf build-fuzz/seeds/fuzz_gguf/
	# a fresh OpenSSH ed25519 key for fuzz_registry (a private key is not kept in the repository)
	rm -rf build-fuzz/seeds/fuzz_registry && mkdir -p build-fuzz/seeds/fuzz_registry && \
	  { ssh-keygen -q -t ed25519 -N '' -C '' -f build-fuzz/seeds/fuzz_registry/key || true; }
	for f in $(FUZZ_SRC); do n=$$(basename $$f .c); mkdir -p build-fuzz/corpus/$$n; \
	  seeds=tests/fuzz/seeds/$$n; [ -d $$seeds ] || seeds=; \
	  if [ -d build-fuzz/seeds/$$n ]; then seeds="$$seeds build-fuzz/seeds/$$n"; fi; \
	  build-fuzz/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 build-fuzz/corpus/$$n $$seeds || exit 1; done

bench: all $(BENCH_BIN)

clean:
	rm -rf build build-asan build-tsan build-fuzz

.PHONY: all test unit tests asan tsan fuzz fuzz-run bench clean FORCE
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
