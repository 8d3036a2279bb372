# Thin wrapper over meson: the two commands of the README, and a few more.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
MESON ?= meson

.PHONY: all deps build serve test test-unit test-e2e test-unpriv test-asan test-e2e-asan test-tsan test-fresh \
	fuzz fuzz-merge fuzz-jobs fuzz-jobs-merge fuzz-images bench check check-format clean

all: build

# The Debian packages each purpose needs (scripts/deps.sh): building installs
# only the compiler and libraries; serving adds the shipped jobs'
# interpreters; the tests, benchmarks and fuzzers add their own tools.
DEPS ?= all
deps:
	@scripts/deps.sh $(DEPS)

deps-%:
	@scripts/deps.sh $*

# The unit tests need cmocka, which only the test targets install: a build
# for serving has them where cmocka is there (auto); the test targets
# require them (enabled), as meson_options.txt does for a plain build.
TESTS ?= auto
test test-unit test-e2e test-unpriv test-asan test-e2e-asan test-tsan: TESTS = enabled

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) -Dtests=$(TESTS)

# Every warning an error (meson's werror; the bug-catching -Werror=...
# flags of meson.build are on in every build) in the test targets, and so
# in CI; a plain build only warns, so a newer compiler's new warning does
# not stop a user. Set on the build directory each time: `make serve`
# after `make test` turns it off again (a rebuild), and back.
WERROR ?= false
test test-asan test-e2e-asan test-tsan: WERROR = true

# As root the runner is also installed where the sandbox sees it (under
# /usr, bound read-only into every sandbox): programs then exec it by a path
# that says nothing about this checkout. The tests use that copy. pyexec-init
# (the warm sandboxes' init) goes beside it, where the service looks for it.
RUNNER_INSTALLED ?= /usr/local/libexec/pyexec/pyexec-runner

build: deps-build $(BUILD)/build.ninja
	$(MESON) configure $(BUILD) -Dwerror=$(WERROR) -Dtests=$(TESTS)
	ninja -C $(BUILD)
	@if [ "$$(id -u)" = 0 ]; then install -D -m 0755 $(BUILD)/pyexec-runner $(RUNNER_INSTALLED); \
	  if [ -e $(BUILD)/pyexec-init ]; then install -D -m 0755 $(BUILD)/pyexec-init $(dir $(RUNNER_INSTALLED))pyexec-init; fi; fi

# The service on its defaults (127.0.0.1:3002); configuration: docs/configuration.md.
serve: deps-serve build
	@if [ "$$(id -u)" = 0 ]; then mkdir -p /srv/pyexec/templates /srv/pyexec/uploads /srv/pyexec/composed /srv/pyexec/renders; fi
	PYEXEC_RUNNER=$$( [ -x $(RUNNER_INSTALLED) ] && echo $(RUNNER_INSTALLED) ) exec $(BUILD)/pyexec serve

test: deps-test build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs
	scripts/test-e2e.sh $(BUILD)/pyexec
	scripts/test-clients.sh $(BUILD)/pyexec
	scripts/test-unprivileged.sh $(BUILD)/pyexec
	$(MAKE) test-asan
	$(MAKE) test-e2e-asan
	$(MAKE) test-tsan

test-unit: deps-test build
	$(MESON) test -C $(BUILD) --suite unit --print-errorlogs

test-e2e: deps-test build
	scripts/test-e2e.sh $(BUILD)/pyexec

test-unpriv: deps-test build
	scripts/test-unprivileged.sh $(BUILD)/pyexec

# The README's two commands in a clean clone of HEAD on a pristine Debian 12
# root (debootstrap, cached in /var/cache/pyexec-fresh): what finds a package
# scripts/deps.sh misses. FRESH=serve or FRESH=test runs one half.
test-fresh:
	scripts/test-fresh.sh

$(ASAN_BUILD)/build.ninja:
	$(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

test-asan: deps-test $(ASAN_BUILD)/build.ninja
	$(MESON) configure $(ASAN_BUILD) -Dwerror=$(WERROR)
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(MESON) test -C $(ASAN_BUILD) --suite unit --print-errorlogs

# The end-to-end suites against the sanitized pyexec (the CLI and the
# service); pyexec-runner and pyexec-init are $(BUILD)'s, unsanitized
# (scripts/test-sanitized.sh says why). Any sanitizer report fails the run.
# ASAN_E2E_TESTS: which test files (default: all of tests/e2e and tests/jobs).
ASAN_E2E_TESTS ?=
test-e2e-asan: deps-test build $(ASAN_BUILD)/build.ninja
	$(MESON) configure $(ASAN_BUILD) -Dwerror=$(WERROR)
	ninja -C $(ASAN_BUILD) pyexec
	E2E_TESTS="$(ASAN_E2E_TESTS)" scripts/test-sanitized.sh asan $(ASAN_BUILD)/pyexec $(BUILD)

# ThreadSanitizer on what runs the service's threads: the HTTP layer, the
# warm pool and its keeper, the executor, jobs through the service.
TSAN_TESTS ?= tests/e2e/test_serve.py tests/e2e/test_warm.py tests/e2e/test_jobs.py tests/e2e/test_request_cap.py \
	tests/e2e/test_submissions.py tests/e2e/test_webhooks.py tests/e2e/test_queue_redis.py \
	tests/e2e/test_kernel_tables.py tests/e2e/test_small_holes.py tests/e2e/test_hugetlb_bounds.py

$(TSAN_BUILD)/build.ninja:
	$(MESON) setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug

test-tsan: deps-test build $(TSAN_BUILD)/build.ninja
	$(MESON) configure $(TSAN_BUILD) -Dwerror=$(WERROR)
	ninja -C $(TSAN_BUILD) pyexec
	E2E_TESTS="$(TSAN_TESTS)" scripts/test-sanitized.sh tsan $(TSAN_BUILD)/pyexec $(BUILD)

# libFuzzer on the request parser (fuzz/): a separate clang build with
# ASAN+UBSAN, every UB report fatal. -Wno-error: the gcc build polices
# warnings; clang's extra ones must not stop a fuzzing run. New inputs go to
# $(FUZZ_BUILD)/corpus-new; `make fuzz-merge` minimises them into the
# committed corpus, which the unit suite replays.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CORPUS = fuzz/corpus/request
FUZZ_FLAGS ?=

$(FUZZ_BUILD)/build.ninja:
	CC=clang $(MESON) setup $(FUZZ_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -Wno-error -Wno-error=format-nonliteral'

fuzz: deps-fuzz $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-request
	mkdir -p $(FUZZ_BUILD)/corpus-new
	$(FUZZ_BUILD)/fuzz-request -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
		-dict=fuzz/request.dict -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_FLAGS) \
		$(FUZZ_BUILD)/corpus-new $(FUZZ_CORPUS)

fuzz-merge: deps-fuzz $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-request
	$(FUZZ_BUILD)/fuzz-request -merge=1 -max_len=4096 $(FUZZ_CORPUS) $(FUZZ_BUILD)/corpus-new

# The same for job parameters (fuzz/job-params-target.c): inputs are the
# params object of a job request, validated against fuzz/job-params.yaml.
FUZZ_JOBS_CORPUS = fuzz/corpus/job-params

fuzz-jobs: deps-fuzz $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-job-params
	mkdir -p $(FUZZ_BUILD)/corpus-new-job-params
	$(FUZZ_BUILD)/fuzz-job-params -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
		-dict=fuzz/job-params.dict -artifact_prefix=$(FUZZ_BUILD)/job-params- $(FUZZ_FLAGS) \
		$(FUZZ_BUILD)/corpus-new-job-params $(FUZZ_JOBS_CORPUS)

fuzz-jobs-merge: deps-fuzz $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-job-params
	$(FUZZ_BUILD)/fuzz-job-params -merge=1 -max_len=4096 $(FUZZ_JOBS_CORPUS) $(FUZZ_BUILD)/corpus-new-job-params

# The same for the header parsers of job inputs (fuzz/image-header-target.c):
# inputs are the first bytes of an input file.
FUZZ_IMAGES_CORPUS = fuzz/corpus/image-header

fuzz-images: deps-fuzz $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-image-header
	mkdir -p $(FUZZ_BUILD)/corpus-new-image-header
	$(FUZZ_BUILD)/fuzz-image-header -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
		-artifact_prefix=$(FUZZ_BUILD)/image-header- $(FUZZ_FLAGS) \
		$(FUZZ_BUILD)/corpus-new-image-header $(FUZZ_IMAGES_CORPUS)

bench: deps-bench build
	bench/run.sh $(BUILD)/pyexec
	bench/http.sh $(BUILD)/pyexec
	bench/warm.sh $(BUILD)/pyexec

check: build
	$(BUILD)/pyexec check

# The C lines changed since the merge base with main (on main: since the
# previous commit) formatted as .clang-format says; BASE=<commit> to choose.
check-format: deps-format
	scripts/check-format.sh $(BASE)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

# `make install`: pyexec, its runner and init, the jobs, pyexec(1), the
# documents, /etc/pyexec/pyexec.conf (only where there is none: an edited
# one is kept) and pyexec.service (docs/operations.md, "Installing"), from a
# build of its own configured for it (release, no unit tests), so that the
# development build's options do not decide what is installed.
# PREFIX=/usr for a system-wide layout; DESTDIR=DIR to stage into DIR.
INSTALL_BUILD ?= build-install
PREFIX ?= /usr/local
DESTDIR ?=

$(INSTALL_BUILD)/build.ninja:
	$(MESON) setup $(INSTALL_BUILD) --prefix=$(PREFIX) --sysconfdir=/etc --buildtype=release -Dtests=disabled

.PHONY: install
install: deps-serve $(INSTALL_BUILD)/build.ninja
	$(MESON) configure $(INSTALL_BUILD) --prefix=$(PREFIX) --sysconfdir=/etc
	ninja -C $(INSTALL_BUILD)
	$(MESON) install -C $(INSTALL_BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(DESTDIR))

# The container image (Dockerfile) built with podman on a debian:bookworm-slim
# made from Debian packages (cached in /var/cache/pyexec-container), run with
# exactly the privileges of docs/container.md, and the smoke and sandbox deny
# tests sent to it; CONTAINER_MODE=unprivileged runs the unprivileged mode.
.PHONY: test-container
test-container: deps-container
	scripts/test-container.sh

# pyexec on a pure cgroup v2 Debian 12 guest with Debian's own kernel, under
# systemd (qemu: KVM where a guest boots under it, else TCG): the unit, e2e
# and unprivileged suites in delegated units. The image is cached in
# /var/cache/pyexec-vm; VM_ACCEL=kvm|tcg, VM_TESTS=<e2e files> override.
.PHONY: test-vm
test-vm: deps-vm
	scripts/test-vm.sh
