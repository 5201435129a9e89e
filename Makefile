# Stowage developer and CI entry points. `make help` lists them; every target can be run again safely.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo

# The sandbox is built with the dev profile by default. `make test` already compiles every dependency
# and the `stowage` binary in that profile, so after it `make sandbox` starts within seconds, while a
# release build (thin LTO) compiles the whole dependency tree again: several minutes on a 2-core machine.
# The sandbox serves a few dozen seeded objects, where debug speed is not what a newcomer notices.
# For realistic speed: `make sandbox SANDBOX_PROFILE=release` (figures come from `make bench` anyway).
SANDBOX_PROFILE ?= dev

# `stowage crd` prints every CRD the operator defines as one multi-document YAML stream; all of them
# are committed in this one file (today only ResourceMirror), which a drift test should compare with
# the code. The output goes to a temporary file first so a failed build leaves the committed one intact.
CRD_FILE := crds/resourcemirror.yaml

.PHONY: help services test lint fmt sandbox bench crds chart-files clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{ printf "  make %-9s %s\n", $$1, $$2 }'

services: ## Install and start what the tests need (etcd, MariaDB, Redis, protoc, prometheus, kubectl, kubernetes-validate)
	bash scripts/services.sh

# Benchmarks are not tests: they are compiled by `make lint` (clippy --all-targets) and run by `make bench`.
test: ## Run every test of the workspace (needs `make services` once on a fresh machine)
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "+ $(CARGO) nextest run --workspace"; \
		$(CARGO) nextest run --workspace; \
	else \
		echo "cargo-nextest is not installed; falling back to cargo test" >&2; \
		echo "+ $(CARGO) test --workspace"; \
		$(CARGO) test --workspace; \
	fi

lint: ## Check formatting and deny every clippy warning
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the workspace
	$(CARGO) fmt --all

sandbox: ## Start the API emulator with a seeded cluster and the operator against it
	$(CARGO) run --profile $(SANDBOX_PROFILE) --bin stowage -- sandbox

bench: ## Run every benchmark of the workspace ([[bench]] targets, harness = false)
	$(CARGO) bench --workspace

crds: ## Regenerate the committed CRD manifests in crds/
	@mkdir -p $(dir $(CRD_FILE))
	$(CARGO) run --quiet --bin stowage -- crd > $(CRD_FILE).tmp || { rm -f $(CRD_FILE).tmp; exit 1; }
	@mv $(CRD_FILE).tmp $(CRD_FILE)

# The chart's CRDs, its dashboard ConfigMaps (from deploy/grafana/*.json), deploy/stowage.yaml and
# deploy/prometheus/stowage-rules.yaml are derived from other files; tests/chart.rs fails when they
# drift and writes them afresh when STOWAGE_BLESS is set. Run it after `make crds` or a chart change.
chart-files: ## Regenerate the chart's and deploy/'s derived files (CRDs, dashboards, plain manifests, rules)
	STOWAGE_BLESS=1 $(CARGO) test --quiet --test chart generated_files_are_up_to_date

clean: ## Remove build output and the sandbox kubeconfig (running services are left alone)
	$(CARGO) clean
	rm -f $(CRD_FILE).tmp sandbox.kubeconfig
