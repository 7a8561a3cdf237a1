# Lightscale: one build for every binary, test and benchmark.
#
#   make                 build everything into $(BUILD)/ (default build/)
#   make check           unit tests, BPF program tables, fast netns labs; last line "N passed, N failed"
#   make check-lab       the longer netns labs
#   make check-vm        qemu guests with Debian kernels (KERNELS="6.1 6.12")
#   make demo            control plane, relay and nodes in namespaces, traffic across the mesh
#   make bench           side-by-side benchmarks against their yardsticks
#   make V=1             show every command
#   make BUILD=dir       build somewhere else (parallel work trees share one checkout)
#
# Each component keeps its own rules in DIR/build.mk, included below. A component
# adds its binaries to BINS, its test programs to TEST_BINS and its lab scripts to
# CHECK_LABS (run by make check) or LONG_LABS (make check-lab).

BUILD    ?= build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
V        ?= 0

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' $(1) $(2);
endif

PKGS    := libbpf libmnl libsodium jansson libmicrohttpd gnutls

# On a fresh machine, scripts/deps.sh runs before anything is computed from the
# installed packages, so `make demo` and `make check` each work on their own.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
DEPS_OK := $(shell ./scripts/deps.sh --check && echo yes)
ifneq ($(DEPS_OK),yes)
$(info   DEPS     scripts/deps.sh (something the build needs is missing))
DEPS_RC := $(shell ./scripts/deps.sh >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error scripts/deps.sh failed (exit $(DEPS_RC)); run it by hand to see why)
endif
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# --as-needed: a binary records (and loads) only the libraries it calls into, so the agent
# maps neither libpq nor whatever else another binary needs.
PKG_LIBS   := -Wl,--as-needed $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpq -lelf -lz -lpthread

WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
            -Wshadow -Wformat=2 -Wvla
CFLAGS   ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -I. -Iinclude -Ilib -I$(BUILD) \
            -I$(shell pg_config --includedir 2>/dev/null) $(PKG_CFLAGS) -MMD -MP
LDFLAGS  ?=
ALL_LIBS  = $(PKG_LIBS)

BINS       :=
TEST_BINS  :=
CHECK_LABS :=
LONG_LABS  :=
BENCHES    :=

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:
.PHONY: all check check-lab check-vm demo bench clean deps fuzz

all: deps-check build-all

# Compile any C file of the tree into $(BUILD)/obj/.
$(BUILD)/obj/%.o: %.c
	$(call msg,CC,$<)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

include lib/build.mk
-include bpf/build.mk
-include bpf/perapp.mk
-include control/build.mk
-include relay/build.mk
-include userspace/wgu/build.mk
-include userspace/bpf/build.mk
-include userspace/build.mk
-include userspace/rproxy.mk
-include tests/vm/build.mk
-include tests/build.mk

build-all: $(BINS) $(TEST_BINS)

# bpffs is needed by the BPF tests and the agent; deps.sh mounts it, but a reboot unmounts it.
deps-check:
	@mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

check: all
	@BUILD=$(BUILD) ./tests/run.sh $(TEST_BINS) $(CHECK_LABS)

check-lab: all
	@BUILD=$(BUILD) ./tests/run.sh $(LONG_LABS)

check-vm: all
	@BUILD=$(BUILD) KERNELS="$(KERNELS)" ./tests/run.sh tests/vm/check-vm.sh

demo: all
	@BUILD=$(BUILD) ./scripts/demo.sh

bench: all
	@for b in $(BENCHES); do echo "== $$b"; BUILD=$(BUILD) $$b || exit 1; done

clean:
	rm -rf $(BUILD)

.PHONY: deps-check build-all
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
