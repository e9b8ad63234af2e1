# crosskey: `make test` runs every check; `make demo` runs the main job locally.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
TESTENV_DIR ?= $(CURDIR)/target/testenv

.PHONY: all build bench test lint unit-test crds emulator-test argocd-test integration-test explain-differential \
        least-privilege testenv-up testenv-down venv k8s-bins helm-bin chart-crds manifests demo clean

all: build

build:
	$(CARGO) build --bin crosskey

## Tools the tests need: the Kubernetes binaries (cached by input hash) and the venv.
k8s-bins:
	tests/testenv/k8s/build.sh

venv:
	tests/testenv/venv.sh

## helm, built from the Go module proxy and cached by input hash (tests/testenv/helm).
helm-bin:
	tests/testenv/helm/build.sh

## Copy crds/ into the crosskey-crds chart, and render deploy/manifests from the charts;
## tests/helm_crds.rs and tests/helm_deploy.rs fail when either is stale. Run both after
## `make crds`.
chart-crds:
	cp crds/crosskey.yaml charts/crosskey-crds/files/crosskey.yaml

manifests: helm-bin chart-crds
	deploy/render.sh

## Regenerate crds/ from the Rust types, and the chart and deploy/ copies of them.
crds:
	$(CARGO) run --quiet --bin crosskey -- crd > crds/crosskey.yaml
	$(MAKE) manifests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit-test:
	$(CARGO) test --lib --bins

emulator-test: venv
	cd tests/testenv/moto && ../../../.venv/bin/python -m pytest -q tests

## `crosskey policy explain` and the emulator's policy evaluator must decide alike: the
## documented cases in tests/fixtures/policy-cases and 10,000 seeded random cases.
explain-differential: build venv
	CROSSKEY_BIN=$(CURDIR)/target/debug/crosskey .venv/bin/python -m pytest -q tests/policy_differential

## The Argo CD health checks (deploy/argocd/health), run by a Lua 5.1 interpreter.
argocd-test: venv
	.venv/bin/python -m pytest -q tests/argocd

## Integration tests start their own etcd, kube-apiserver and emulator (tests/support).
## Each emulator logs its authorization decisions there for `least-privilege`.
integration-test: k8s-bins helm-bin venv
	rm -rf target/testenv-tests
	$(CARGO) test --test '*'

## What the operator's roles were allowed by deploy/iam/ against what the integration
## tests and the demo used; fails on an unexpected denial or an unexercised action. The
## same for the chart's Kubernetes RBAC, from the API server's audit log.
least-privilege: venv
	.venv/bin/python tests/testenv/least_privilege.py target/testenv-tests target/demo
	.venv/bin/python tests/testenv/rbac.py check target/testenv-tests --excuses tests/testenv/rbac-not-exercised.txt

## tests/crds.rs (among the integration tests) fails when crds/ is stale.
test: lint unit-test emulator-test explain-differential argocd-test integration-test demo least-privilege

## Benchmarks print their figures (medians); they are not timed tests. It first builds the
## release binary as the Dockerfile does (`--release --locked`), too slow for `make test`. The convergence
## bench (benches/convergence.rs) starts its own etcd, kube-apiserver and emulator, runs
## the operator built in release mode, prints a table and writes target/bench/*.json.
## Sizes: CROSSKEY_BENCH_N (default 100,1000), CROSSKEY_BENCH_K (2), CROSSKEY_BENCH_RUNS (5),
## CROSSKEY_BENCH_MEMORY_N (1000,10000); phases: CROSSKEY_BENCH_PHASES (README "Benchmarks").
bench: k8s-bins helm-bin venv
	$(CARGO) build --release --locked --bin crosskey
	$(CARGO) bench --bench policy_bench
	$(CARGO) bench --bench convergence

testenv-up: k8s-bins helm-bin venv
	tests/testenv/testenv.sh up --dir $(TESTENV_DIR)

testenv-down:
	tests/testenv/testenv.sh down --dir $(TESTENV_DIR)

## The cross-account workflow end to end on the local environment (tests/testenv/demo.sh).
demo: k8s-bins venv
	tests/testenv/demo.sh

clean:
	$(CARGO) clean
