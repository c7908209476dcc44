# terraform-provider-rdsrot: every set-up step a fresh machine needs.
#   make demo   the whole workflow against a local AWS emulator
#   make test   tools into .venv, build, every test suite

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PYTHON      ?= python3
VERSION     := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
BINARY      := terraform-provider-rdsrot
OS_ARCH     := linux_amd64
PLUGIN_DIR  := $(HOME)/.terraform.d/plugins/registry.terraform.io/rdsrot/rdsrot/$(VERSION)/$(OS_ARCH)
REQUIREMENTS := tests/support/requirements.txt

export CHECKPOINT_DISABLE := 1

.PHONY: help venv build test lint demo install release fuzz clean

help:
	@echo "make demo     run the whole rotation workflow against a local AWS emulator"
	@echo "make test     install the test tools into $(VENV), build, run every suite"
	@echo "make build    build the provider (debug)"
	@echo "make install  copy the provider into $(PLUGIN_DIR)"
	@echo "make release  dist/ zip, SHA256SUMS and registry manifest for $(VERSION)"
	@echo "make clean    remove build output, dist/ and the venv"

# Idempotent: the stamp changes only when the requirements do.
venv: $(VENV)/.installed
$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(REQUIREMENTS)
	touch $@

build:
	cargo build

test: venv build
	RDSROT_REQUIRE_TOOLS=1 cargo test
