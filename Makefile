# skiff - one non-recursive GNU Makefile.
#
#   make            build build/skiff, build/skiff-init (static), build/libskiff.a
#   make test       build and run every test (unit, integration, security) and a
#                   short fuzz run of the protocol decoder
#   make asan       the same suite under -fsanitize=address,undefined (build/asan)
#   make bench      the benchmark suite (bench/run): start-up against bwrap, crun, runsc,
#                   the API, time to interactive, churn, density; BENCH_QUICK=1 for a smoke run
#   make run        install what is missing, build, serve the API (skiffd) on
#                   127.0.0.1:7433 with ./var as data dir, in the foreground
#   make format     clang-format every C file; make format-check verifies
#   make fuzz       run the protocol decoder and API router fuzzers for $(FUZZ_SECONDS) s each

BUILD ?= build
SANITIZE ?= 0
FUZZ_SECONDS ?= 30
FUZZ_TEST_SECONDS ?= 15

CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
        -Wwrite-strings -Wno-format-nonliteral -Wno-format-truncation
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE -g -fPIE $(WARN) -Ilib -MMD -MP
ifeq ($(SANITIZE),1)
  SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  OPT := -O1
else
  SAN :=
  OPT := -O2 -D_FORTIFY_SOURCE=2
endif
CFLAGS_ALL := $(BASE_CFLAGS) $(OPT) $(SAN) $(CFLAGS)
LDFLAGS_ALL := -pie -Wl,--as-needed -Wl,-z,noexecstack -Wl,-z,relro,-z,now $(SAN) $(LDFLAGS)
LIBS := -lseccomp -lsqlite3 -lsodium -ljansson -lmicrohttpd -lm -lcurl -lwslay -lnettle -larchive
# sandbox networking (lib/net): rtnetlink, nftables, DNS messages
LIBS += -lmnl -lnftables -lldns

# skiff-init is static and never sanitized: it runs as pid 1 inside sandboxes.
AGENT_CFLAGS := $(BASE_CFLAGS) -O2 -D_FORTIFY_SOURCE=2 $(CFLAGS)
AGENT_LDFLAGS := -static -Wl,-z,noexecstack

# Headers and tools from the Debian packages we build and test with; a missing
# one runs scripts/install-deps (idempotent, quiet when everything is there).
DEP_HEADERS := /usr/include/seccomp.h /usr/include/sqlite3.h /usr/include/sodium.h /usr/include/jansson.h \
               /usr/include/microhttpd.h /usr/include/nettle/sha1.h /usr/include/archive.h \
               /usr/include/wslay/wslay.h /usr/bin/curl-config /usr/bin/clang /bin/busybox /usr/bin/python3 \
               /usr/include/libmnl/libmnl.h /usr/include/nftables/libnftables.h /usr/include/ldns/ldns.h \
               /usr/sbin/nft
ifneq ($(filter-out $(wildcard $(DEP_HEADERS)),$(DEP_HEADERS)),)
  $(info skiff: missing build dependencies, running scripts/install-deps)
  $(shell scripts/install-deps >&2)
endif

LIB_SRCS := $(sort $(wildcard lib/*/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/seccomp_bpf.o
AGENT_SRCS := $(sort $(wildcard agent/*.c)) lib/base/error.c lib/base/util.c lib/base/log.c \
              $(sort $(wildcard lib/proto/*.c))
AGENT_OBJS := $(AGENT_SRCS:%.c=$(BUILD)/agent-obj/%.o)
CLI_SRCS := $(sort $(wildcard cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
# build/skiff handles `skiff run` itself and execs build/skiff-api (libcurl,
# libarchive) for every other command, so `skiff run` starts lean.
CLI_LEAN_OBJS := $(BUILD)/obj/cli/skiff.o $(BUILD)/obj/cli/run.o
CLI_API_OBJS := $(filter-out $(BUILD)/obj/cli/skiff.o,$(CLI_OBJS))
DAEMON_SRCS := $(sort $(wildcard daemon/*.c))
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)

TEST_SRCS := $(sort $(wildcard tests/unit/*.c tests/integration/*.c tests/security/*.c))
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
# The Python SDK's suites (unittest against a real skiffd), one runner.
SDK_TESTS := $(wildcard tests/sdk/run)
HARNESS_OBJ := $(BUILD)/obj/tests/harness.o
HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
HELPER_BINS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(HELPER_SRCS))

FUZZ_BIN := $(BUILD)/fuzz/fuzz_proto
FUZZ_ROUTER_BIN := $(BUILD)/fuzz/fuzz_router
ALL_BINS := $(BUILD)/libskiff.a $(BUILD)/skiff $(BUILD)/skiff-api $(BUILD)/skiff-init
ifneq ($(DAEMON_SRCS),)
ALL_BINS += $(BUILD)/skiffd
endif

.PHONY: all test asan bench run format format-check fuzz clean
# keep intermediate objects (the test binaries are chained implicit rules)
.SECONDARY:
all: $(ALL_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/agent-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@

# The seccomp policy is compiled once, at build time, into a C array.
SECCOMP_GEN_OBJS := $(BUILD)/obj/lib/runtime/seccomp_policy.o $(BUILD)/obj/lib/base/error.o $(BUILD)/obj/lib/base/util.o
$(BUILD)/seccomp-gen: scripts/seccomp-gen.c $(SECCOMP_GEN_OBJS)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(SECCOMP_GEN_OBJS) -lseccomp

$(BUILD)/gen/seccomp_bpf.c: $(BUILD)/seccomp-gen
	@mkdir -p $(dir $@)
	$(BUILD)/seccomp-gen > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libskiff.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/skiff: $(CLI_LEAN_OBJS) $(BUILD)/libskiff.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_LEAN_OBJS) $(BUILD)/libskiff.a $(LIBS)

$(BUILD)/skiff-api: $(CLI_API_OBJS) $(BUILD)/libskiff.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_API_OBJS) $(BUILD)/libskiff.a $(LIBS)

$(BUILD)/skiffd: $(DAEMON_OBJS) $(BUILD)/libskiff.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(DAEMON_OBJS) $(BUILD)/libskiff.a $(LIBS)

$(BUILD)/skiff-init: $(AGENT_OBJS)
	$(CC) $(AGENT_LDFLAGS) -o $@ $^

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(HARNESS_OBJ) $(BUILD)/libskiff.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(HARNESS_OBJ) $(BUILD)/libskiff.a $(LIBS)

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -c $< -o $@

# In-sandbox probes: static, so they run in any image.
$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -Ilib $(AGENT_LDFLAGS) -o $@ $<

ifeq ($(SANITIZE),1)
FUZZ_CHECK :=
else
FUZZ_CHECK := $(FUZZ_BIN) $(FUZZ_ROUTER_BIN)
endif

test: $(ALL_BINS) $(TEST_BINS) $(HELPER_BINS) $(FUZZ_CHECK)
	@FUZZ_TARGETS="$(if $(FUZZ_CHECK),$(FUZZ_BIN):tests/fuzz/corpus $(FUZZ_ROUTER_BIN):tests/fuzz/router_corpus)" \
	  FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) scripts/run-tests $(BUILD) $(TEST_BINS) $(SDK_TESTS)

asan:
	$(MAKE) BUILD=build/asan SANITIZE=1 test

$(FUZZ_BIN): tests/fuzz/fuzz_proto.c $(wildcard lib/proto/*.c) lib/base/error.c lib/base/util.c
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -g -O1 -Ilib -fsanitize=fuzzer,address,undefined -o $@ $^

# The router fuzzer instruments the daemon's request layer; the library
# below it comes from libskiff.a as built.
FUZZ_ROUTER_SRCS := tests/fuzz/fuzz_router.c $(filter-out daemon/main.c,$(DAEMON_SRCS))
$(FUZZ_ROUTER_BIN): $(FUZZ_ROUTER_SRCS) $(wildcard daemon/*.h) $(BUILD)/libskiff.a
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -g -O1 -Ilib -Idaemon -fsanitize=fuzzer,address,undefined -o $@ \
	  $(FUZZ_ROUTER_SRCS) $(BUILD)/libskiff.a $(LIBS)

fuzz: $(FUZZ_BIN) $(FUZZ_ROUTER_BIN)
	@mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/router-corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz/corpus tests/fuzz/corpus
	$(FUZZ_ROUTER_BIN) -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz/router-corpus tests/fuzz/router_corpus

BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
# What the bench programs share (bench/common: HTTP client, a private skiffd,
# /proc and cgroup sampling), linked into each of them.
BENCH_COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard bench/common/*.c)))
BENCH_COMMON := $(BUILD)/bench/libbenchcommon.a
$(BENCH_COMMON): $(BENCH_COMMON_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^
$(BUILD)/bench/%: bench/%.c $(BENCH_COMMON) $(BUILD)/libskiff.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -pthread -o $@ $< $(BENCH_COMMON) $(BUILD)/libskiff.a $(LIBS)
-include $(BENCH_COMMON_OBJS:.o=.d) $(BENCH_BINS:=.d)

# BENCH_QUICK=1 make bench: a smoke run with small counts (under a minute).
bench: $(ALL_BINS) $(BENCH_BINS)
	@scripts/install-deps
	@bench/run $(BUILD)

run:
	@scripts/install-deps
	@$(MAKE) --no-print-directory all
	@scripts/run-server $(BUILD)

FORMAT_FILES := $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format ok"

clean:
	rm -rf build

TEST_OBJS := $(patsubst tests/%.c,$(BUILD)/obj/tests/%.o,$(TEST_SRCS))
-include $(LIB_OBJS:.o=.d) $(AGENT_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(DAEMON_OBJS:.o=.d) $(HARNESS_OBJ:.o=.d) \
         $(TEST_OBJS:.o=.d)
