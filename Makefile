# kinfer — plain Makefile, out-of-tree build in $(BUILD)/.
#
#   make                  library, examples, bench programs
#   make test             every test suite (model tests run when models/ has them)
#   make test-server      the server's pytest suite alone (makes build/venv once)
#   make test-asan        the same under AddressSanitizer + UBSan (build/asan/)
#   make fuzz             the libFuzzer targets (GGUF, server, grammar) for FUZZ_TIME seconds each
#   make models           fetch the test models into models/
#   make demo             build, fetch the models, generate text with kinfer-cli
#   make install PREFIX=/usr/local
#
# KINFER_CUDA=1|0 forces the CUDA backend on or off; by default it is on when
# nvcc is found.  CUDA_ARCHS narrows the GPU list for a faster local build.

VERSION := 0.1.0
SOVERSION := 0

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCHS ?= 80 86 89 90 120
MODELS_DIR ?= models
FUZZ_TIME ?= 60
SANITIZE ?= 0

ifeq ($(origin KINFER_CUDA),undefined)
KINFER_CUDA := $(if $(NVCC),1,0)
endif

ARCH := $(shell uname -m)
.SECONDEXPANSION:

# OpenBLAS is not linked: kernels/cpu/blas_dl.c loads it (core/dl.c) on the first BLAS-path
# matmul (the forward pass never takes it; linking it costs every process its
# ~2 MiB with libgfortran).  Only bench_kernels links it, for its reference.
OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_LIBS := $(or $(shell pkg-config --libs openblas 2>/dev/null),-lopenblas)
OPENBLAS_SONAME ?= $(or $(shell objdump -p $(shell pkg-config --variable=libdir openblas 2>/dev/null)/libopenblas.so \
	2>/dev/null | awk '$$1 == "SONAME" { print $$2 }'),libopenblas.so.0)
PCRE2_LIBS := $(or $(shell pkg-config --libs libpcre2-8 2>/dev/null),-lpcre2-8)
SERVER_LIBS := $(or $(shell pkg-config --libs libmicrohttpd libcjson 2>/dev/null),-lmicrohttpd -lcjson)
CJSON_LIBS := $(or $(shell pkg-config --libs libcjson 2>/dev/null),-lcjson)
CHECK_LIBS := $(or $(shell pkg-config --libs check 2>/dev/null),-lcheck -lsubunit -lrt -lm)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
WARN += $(if $(findstring clang,$(CC)),-Wno-missing-field-initializers,-Wno-format-truncation)
CFLAGS_BASE := -std=c11 -O2 -g -fPIC -fvisibility=hidden -pthread $(WARN) -D_GNU_SOURCE \
	-Iinclude -Ilib -Ikernels $(OPENBLAS_CFLAGS) -DKINFER_OPENBLAS_SONAME='"$(OPENBLAS_SONAME)"' -MMD -MP
LDLIBS := $(PCRE2_LIBS) -ldl -lpthread -lm

ifeq ($(SANITIZE),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

ifeq ($(SANITIZE),thread)
CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

# FUZZ=1 (with CC=clang): objects instrumented for libFuzzer, linked into the fuzz targets.
ifeq ($(FUZZ),1)
CFLAGS_BASE += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

ifeq ($(KINFER_CUDA),1)
# cuBLAS is not linked: lib/core/cublas_dl.c loads it (core/dl.c) when a CUDA context is made
# (linking it costs every process ~150 MiB of memory at start-up).
CUBLAS_SONAME := $(or $(notdir $(shell readlink $(CUDA_HOME)/lib64/libcublas.so 2>/dev/null)),libcublas.so)
CFLAGS_BASE += -DKINFER_CUDA=1 -I$(CUDA_HOME)/include -DKINFER_CUBLAS_SONAME='"$(CUBLAS_SONAME)"'
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lstdc++
NVCCFLAGS := -O2 -std=c++17 -Xcompiler -fPIC,-fvisibility=hidden -Iinclude -Ilib -Ikernels -MMD -MP \
	-Werror all-warnings \
	$(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
	-gencode arch=compute_$(lastword $(CUDA_ARCHS)),code=compute_$(lastword $(CUDA_ARCHS))
endif
CFLAGS ?=
CFLAGS_ALL = $(CFLAGS_BASE) $(CFLAGS)

# ------------------------------------------------------------------ sources
LIB_SRC := $(wildcard lib/*/*.c) $(wildcard kernels/*.c) $(wildcard kernels/cpu/*.c)
# SIMD variants are compiled with their own flags and picked at run time.
ifeq ($(ARCH),x86_64)
LIB_SRC += $(wildcard kernels/cpu/x86/*.c)
endif
ifneq ($(filter aarch64 arm64,$(ARCH)),)
LIB_SRC += $(wildcard kernels/cpu/arm/*.c)
endif
CUDA_SRC := $(if $(filter 1,$(KINFER_CUDA)),$(wildcard kernels/cuda/*.cu))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)

FLAGS_avx2 := -mavx2 -mfma -mf16c
FLAGS_avx512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c
simd_flags = $(if $(findstring _avx512,$1),$(FLAGS_avx512),$(if $(findstring _avx2,$1),$(FLAGS_avx2)))

EXAMPLES := $(filter-out common,$(notdir $(wildcard examples/*)))
EXAMPLE_BIN := $(EXAMPLES:%=$(BUILD)/bin/kinfer-%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bin/%)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL := $(BUILD)/obj/tests/testutil.o

STATIC_LIB := $(BUILD)/lib/libkinfer.a
# (a function, so a pattern rule's % substitution cannot touch its %)
objects_of = $(patsubst %.c,$(BUILD)/obj/%.o,$1)
SHARED_LIB := $(BUILD)/lib/libkinfer.so.$(VERSION)

.PHONY: all lib examples tests test test-server venv check-shape test-asan test-tsan fuzz fuzz-server fuzz-grammar models demo serve install uninstall clean
all: lib examples $(BENCH_BIN) tests
lib: $(STATIC_LIB) $(SHARED_LIB)
examples: $(EXAMPLE_BIN)
tests: $(TEST_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(call simd_flags,$*) -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libkinfer.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf libkinfer.so.$(VERSION) $(BUILD)/lib/libkinfer.so.$(SOVERSION)
	ln -sf libkinfer.so.$(SOVERSION) $(BUILD)/lib/libkinfer.so

# Programs link the static library so they run from the build tree.
# (static pattern rules: bench/kinfer-bench.c must not match the examples' rule)
$(EXAMPLE_BIN): $(BUILD)/bin/kinfer-%: $$(call objects_of,$$(wildcard examples/$$*/*.c)) $$(EXAMPLES_COMMON_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_BIN): $(BUILD)/bin/%: $(BUILD)/obj/bench/%.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# (libmicrohttpd and cJSON: the server's HTTP and JSON; examples/common's
# JSON Schema converter reads cJSON in every program)
$(BUILD)/bin/kinfer-server: LDLIBS += $(SERVER_LIBS)
$(filter-out $(BUILD)/bin/kinfer-server,$(EXAMPLE_BIN)) $(BUILD)/tests/test_common $(BUILD)/tests/test_json_schema: LDLIBS += $(CJSON_LIBS)
# (its cblas_sgemm reference timing calls OpenBLAS directly)
$(BUILD)/bin/bench_kernels: LDLIBS += $(OPENBLAS_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# ---------------------------------------------------------- examples/common
# examples/common/ is the generate loop the programs share (linked into each);
# its Check suite links it like the programs do.
EXAMPLES_COMMON_OBJ := $(call objects_of,$(wildcard examples/common/*.c))
# (an explicit rule: these objects must come before the static library)
$(BUILD)/tests/test_common $(BUILD)/tests/test_json_schema: $(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL) \
		$(EXAMPLES_COMMON_OBJ) $(STATIC_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# The server's scheduler is pure logic: its Check suite links it alone.
$(BUILD)/tests/test_sched: $(BUILD)/obj/tests/test_sched.o $(TEST_UTIL) $(BUILD)/obj/examples/server/sched.o $(STATIC_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# ------------------------------------------------------------------- tests
test: $(TEST_BIN) $(BUILD)/bin/synth-model check-shape
	@KINFER_MODELS_DIR=$(MODELS_DIR) KINFER_TEST_QUICK=$(SANITIZE) sh tests/run.sh $(TEST_BIN)
	@$(MAKE) --no-print-directory test-server

# The server's end-to-end suite (tests/server/, pytest with the openai client)
# against $(BUILD)/bin/kinfer-server; skipped by the suite when models/ lacks SmolLM2.
# The venv is shared by every BUILD (one pip install, ever: the stamp).
VENV := build/venv
VENV_STAMP := $(VENV)/.stamp-jsonschema-1
PY_TEST_PKGS := openai==3.63.0 httpx==0.29.0 pytest==9.2.0 ollama==0.6.3 jsonschema==4.26.0
venv: $(VENV_STAMP)
$(VENV_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q $(PY_TEST_PKGS)
	touch $@

PYTEST_ARGS ?= -q
PYTEST_PATHS ?= tests/server
test-server: $(VENV_STAMP) $(BUILD)/bin/kinfer-server $(BUILD)/bin/kinfer-cli $(BUILD)/bin/synth-model \
		$(BUILD)/bin/kinfer-embedding
	KINFER_SERVER_BIN=$(BUILD)/bin/kinfer-server KINFER_CLI_BIN=$(BUILD)/bin/kinfer-cli \
		KINFER_SYNTH_BIN=$(BUILD)/bin/synth-model \
		KINFER_MODELS_DIR=$(MODELS_DIR) $(VENV)/bin/python -m pytest $(PYTEST_PATHS) $(PYTEST_ARGS)

# The library's shape: only kinfer.h's functions exported, includes only
# downward between the layers of lib/ and kernels/, no include circle.
check-shape: $(SHARED_LIB)
	@sh scripts/check-exports.sh $(SHARED_LIB) include/kinfer.h
	@python3 scripts/check-layers.py

# Everything that needs a GPU, in one run (tests/gpu/check: own BUILD dir,
# results under $$OUT; no GPU: skipped with a message, exit 0).
.PHONY: check-gpu
check-gpu:
	bash tests/gpu/check

# Issue 18's benchmark: kinfer beside llama.cpp on synthetic 7-8B files
# (written once into ~/.cache/kinfer/synth by bench/compare --synth) and the
# two test models, pp512 / tg128 on 2 threads, at depth 0 and 4096, flash
# attention on in both; the table goes to build/bench-8b.md.  LAYERS=N writes
# and runs N-layer files instead of full size; REPS=N repetitions per run.
LAYERS ?=
REPS ?= 3
BENCH_8B_SYNTH := llama3-8b:Q4_K_M,llama3-8b:Q8_0,mistral-7b:Q4_K_M
.PHONY: bench-8b
bench-8b: $(BUILD)/bin/kinfer-bench $(BUILD)/bin/synth-model
	bench/compare --synth $(BENCH_8B_SYNTH) $(if $(LAYERS),--layers $(LAYERS)) \
		-m $(MODELS_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf -m $(MODELS_DIR)/gemma-3-270m-q4_k_m.gguf \
		-p 512 -n 128 -t 2 -d 0,4096 -fa on -r $(REPS) \
		--kinfer $(BUILD)/bin/kinfer-bench --synth-model $(BUILD)/bin/synth-model --out $(BUILD)/bench-8b.md

# KINFER_TEST_QUICK: model suites check fewer prompts/positions under the sanitizers.
test-asan:
	KINFER_TEST_QUICK=1 $(MAKE) BUILD=build/asan SANITIZE=1 KINFER_CUDA=0 test

# ThreadSanitizer over what runs threads: two contexts decoding in parallel
# on one model (test_forward's kv case) and the server's concurrency tests.
test-tsan:
	$(MAKE) --no-print-directory BUILD=build/tsan SANITIZE=thread KINFER_CUDA=0 build/tsan/tests/test_forward \
		build/tsan/bin/kinfer-server build/tsan/bin/kinfer-cli build/tsan/bin/synth-model
	CK_RUN_CASE=kv KINFER_TEST_QUICK=1 KINFER_MODELS_DIR=$(MODELS_DIR) TSAN_OPTIONS=halt_on_error=1 \
		build/tsan/tests/test_forward
	$(MAKE) --no-print-directory BUILD=build/tsan SANITIZE=thread KINFER_CUDA=0 test-server \
		PYTEST_PATHS=tests/server/test_concurrency.py

FUZZ_BIN := $(BUILD)/fuzz/fuzz_gguf
FUZZ_SRC := tests/fuzz/fuzz_gguf.c lib/gguf/gguf.c kernels/types.c lib/model/weights.c lib/model/arch.c \
	lib/core/status.c $(wildcard lib/tokenizer/*.c)
fuzz: $(FUZZ_BIN)
	@mkdir -p $(BUILD)/fuzz/corpus
	python3 tests/fuzz/make_seeds.py $(BUILD)/fuzz/seeds
	@# keep the fuzzer's exit status: a crash must fail the target
	$(FUZZ_BIN) -max_total_time=$(FUZZ_TIME) -max_len=65536 -print_final_stats=1 \
		$(BUILD)/fuzz/corpus $(BUILD)/fuzz/seeds > $(BUILD)/fuzz/log 2>&1; \
		status=$$?; tail -n 25 $(BUILD)/fuzz/log; exit $$status

	$(MAKE) --no-print-directory BUILD=build/fuzzlib CC=clang FUZZ=1 KINFER_CUDA=0 fuzz-server
	$(MAKE) --no-print-directory fuzz-grammar

# The GBNF parser and the JSON Schema converter (tests/fuzz/fuzz_grammar.c),
# seeded with the test grammars and schemas (a first byte 0: GBNF, 1: schema).
FUZZ_GRAMMAR_TIME ?= 60
FUZZ_GRAMMAR_SRC := tests/fuzz/fuzz_grammar.c lib/runtime/gbnf.c lib/core/status.c \
	examples/common/json_schema.c examples/common/json_schema_pattern.c examples/common/int_range.c \
	examples/common/textbuf.c
$(BUILD)/fuzz/fuzz_grammar: $(FUZZ_GRAMMAR_SRC) lib/runtime/gbnf.h examples/common/json_schema.h include/kinfer.h
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -Ilib -Ikernels \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_GRAMMAR_SRC) $(CJSON_LIBS) -lm
fuzz-grammar: $(BUILD)/fuzz/fuzz_grammar
	@mkdir -p $(BUILD)/fuzz/grammar-corpus $(BUILD)/fuzz/grammar-seeds
	@for f in tests/fixtures/grammar/*.gbnf; do { printf '\000'; cat "$$f"; } > $(BUILD)/fuzz/grammar-seeds/$$(basename $$f); done
	@n=0; while IFS= read -r line; do n=$$((n+1)); { printf '\001'; printf '%s' "$$line"; } \
		> $(BUILD)/fuzz/grammar-seeds/schema-$$n; done < tests/fixtures/json_schema/schemas.jsonl
	$(BUILD)/fuzz/fuzz_grammar -max_total_time=$(FUZZ_GRAMMAR_TIME) -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
		-artifact_prefix=$(BUILD)/fuzz/ \
		-print_final_stats=1 $(BUILD)/fuzz/grammar-corpus $(BUILD)/fuzz/grammar-seeds > $(BUILD)/fuzz/grammar-log 2>&1; \
		status=$$?; tail -n 25 $(BUILD)/fuzz/grammar-log; exit $$status

# The server's request parsing and answers (tests/fuzz/fuzz_server.c) on
# SmolLM2, everything instrumented (make it with FUZZ=1 CC=clang, as fuzz does).
FUZZ_SERVER_TIME ?= 60
FUZZ_SERVER_OBJ := $(call objects_of,$(filter-out %/main.c %/http.c,$(wildcard examples/server/*.c)) \
	tests/fuzz/fuzz_server.c)
$(BUILD)/fuzz/fuzz_server: $(FUZZ_SERVER_OBJ) $(EXAMPLES_COMMON_OBJ) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(SERVER_LIBS) $(LDLIBS)
fuzz-server: $(BUILD)/fuzz/fuzz_server
	@mkdir -p $(BUILD)/fuzz/server-corpus
	python3 tests/fuzz/make_server_seeds.py $(BUILD)/fuzz/server-seeds
	KINFER_FUZZ_MODEL=$(MODELS_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf ASAN_OPTIONS=detect_leaks=1 \
		$(BUILD)/fuzz/fuzz_server -max_total_time=$(FUZZ_SERVER_TIME) -max_len=16384 -print_final_stats=1 \
		$(BUILD)/fuzz/server-corpus $(BUILD)/fuzz/server-seeds > $(BUILD)/fuzz/server-log 2>&1; \
		status=$$?; tail -n 25 $(BUILD)/fuzz/server-log; exit $$status

$(FUZZ_BIN): $(FUZZ_SRC) lib/gguf/gguf.h kernels/quant.h include/kinfer.h lib/model/weights.h lib/model/arch.h
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -Ilib -Ikernels \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_SRC) $(PCRE2_LIBS) -lm

models:
	bash scripts/fetch-models.sh $(MODELS_DIR)

# Build, fetch the test models, and generate text with SmolLM2 (greedy).
demo: all models
	$(BUILD)/bin/kinfer-cli -m $(MODELS_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf \
		-p "Once upon a time, in a small village by the sea," -n 64 --temp 0

# Serve SmolLM2 from models/ on 127.0.0.1:8080 (PORT=... for another port).
PORT ?= 8080
serve: $(BUILD)/bin/kinfer-server models
	$(BUILD)/bin/kinfer-server -m $(MODELS_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf --port $(PORT) --metrics

# ----------------------------------------------------------------- install
install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/kinfer.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libkinfer.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libkinfer.so.$(SOVERSION)
	ln -sf libkinfer.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libkinfer.so
	for b in $(EXAMPLE_BIN); do [ -f $$b ] && install -m 755 $$b $(DESTDIR)$(PREFIX)/bin/ || true; done
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
		-e 's|@LIBS_PRIVATE@|$(LDLIBS)|' kinfer.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/kinfer.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/kinfer.h $(DESTDIR)$(PREFIX)/lib/libkinfer.* \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/kinfer.pc $(EXAMPLES:%=$(DESTDIR)$(PREFIX)/bin/kinfer-%)

clean:
	rm -rf $(BUILD)

.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
