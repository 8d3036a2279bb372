# Thin wrapper over meson: the two commands of the README, and a few more.
BUILD ?= build
ASAN_BUILD ?= build-asan
MESON ?= meson

.PHONY: all deps build serve test test-unit test-e2e test-unpriv test-asan bench check clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The service on its defaults (127.0.0.1:3002); configuration: README.
serve: build
	exec $(BUILD)/pyexec serve

test: build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs
	scripts/test-e2e.sh $(BUILD)/pyexec
	scripts/test-unprivileged.sh $(BUILD)/pyexec
	$(MAKE) test-asan

test-unit: build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs

test-e2e: build
	scripts/test-e2e.sh $(BUILD)/pyexec

test-unpriv: build
	scripts/test-unprivileged.sh $(BUILD)/pyexec

$(ASAN_BUILD)/build.ninja:
	$(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

test-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(MESON) test -C $(ASAN_BUILD) --suite unit --print-errorlogs

bench: build
	bench/run.sh $(BUILD)/pyexec
	bench/http.sh $(BUILD)/pyexec

check: build
	$(BUILD)/pyexec check

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
