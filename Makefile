# faultline. `make demo` runs the main job on a local sandbox cluster;
# `make test` runs every test tier. Both install what they need.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED := 0
GOBUILD := $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)"

# Debian packages the sandbox runs (containerd, runc, CNI plugins, nftables,
# iptables, iproute2, prometheus, nginx) and curl for humans; and what only
# the tests use: chromium, in which the HTML report's test renders it, and
# wrk and hey, which the traffic benchmark measures itself against.
DEPS := containerd runc containernetworking-plugins nftables iptables iproute2 prometheus nginx-light curl util-linux
TEST_DEPS := wrk hey chromium

.PHONY: all generate generate-thirdparty deps deps-test tools tools-chaos-mesh build images demo test gate-validity bench-fanout bench-authz test-unit vet lint fmt clean help

all: build

## generate: deepcopy code and CRDs (deploy/crds) from experiments/api and the
## RBAC rules from the binaries' markers by controller-gen; then the chart's
## crds/ and the plain manifests of deploy/faultline from the chart (one source)
generate:
	$(GO) tool controller-gen object paths=./experiments/api/...
	$(GO) tool controller-gen crd output:crd:artifacts:config=deploy/crds paths=./experiments/api/...
	$(GO) tool controller-gen rbac:roleName=faultline-controller paths=./cmd/faultline-controller/ output:rbac:artifacts:config=charts/faultline/files/rbac/controller
	$(GO) tool controller-gen rbac:roleName=faultline-agent paths=./cmd/faultline-agent/ output:rbac:artifacts:config=charts/faultline/files/rbac/agent
	@# Chaos Mesh's CRDs for spec.engine: chaos-mesh, from its API module: the
	@# four kinds faultline creates and the two its controller makes of them.
	@d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	$(GO) tool controller-gen crd output:crd:artifacts:config=$$d paths=github.com/chaos-mesh/chaos-mesh/api/v1alpha1 && \
	for k in networkchaos iochaos stresschaos podchaos podnetworkchaos podiochaos; do cp $$d/chaos-mesh.org_$$k.yaml deploy/chaosmesh/crds/; done
	cp deploy/crds/*.yaml charts/faultline/crds/
	$(GO) test ./charts/ -run TestTheChartHoldsTheObjectivesPolicyOfTheDeclaredMeasurements -update
	$(GO) test ./charts/ -run TestDeployHoldsTheChartRendered -update

## generate-thirdparty: the Prometheus Operator's ServiceMonitor CRD, by
## controller-gen over its API module in a throwaway module (its k8s.io
## versions must not move ours), for the chart's server-side dry run
MONITORING_VERSION := v0.90.0
generate-thirdparty:
	@d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && cd $$d && $(GO) mod init thirdparty >/dev/null 2>&1 && \
	$(GO) get github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring@$(MONITORING_VERSION) sigs.k8s.io/controller-tools/cmd/controller-gen@v0.20.1 >/dev/null 2>&1 && \
	$(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen crd paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:artifacts:config=$$d/out && \
	cp $$d/out/monitoring.coreos.com_servicemonitors.yaml $(CURDIR)/charts/testdata/crds/

## deps: install the Debian packages the sandbox needs (skipped when present)
deps:
	@$(call install-packages,$(DEPS))

## deps-test: the sandbox's packages and those only the tests use
deps-test: deps
	@$(call install-packages,$(TEST_DEPS))

# install-packages installs those of $(1) that are missing. Packages'
# postinst scripts start their services (nginx on port 80, prometheus,
# containerd): a policy-rc.d that exits 101 forbids it for the duration of
# the install. One that already exists is left as it is.
define install-packages
	missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	    printf '#!/bin/sh\n# made by faultline make deps: start no service while installing\nexit 101\n' >/usr/sbin/policy-rc.d; \
	    chmod 755 /usr/sbin/policy-rc.d; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present: $(strip $(1))"; fi
endef

## tools: build the pinned etcd, Kubernetes (one multi-call binary) and kwok
## into the cache (skipped when present), saying what builds and for how long
tools:
	@sandbox/tools/build.sh >/dev/null

## tools-chaos-mesh: Chaos Mesh's controller manager and CRDs, for
## `sandbox up --chaos-mesh` only (which also builds them on first use)
tools-chaos-mesh:
	@sandbox/tools/build.sh chaos-mesh >/dev/null

## build: the faultline CLI, the demo app and the sandbox's pause image binary, into ./bin
build:
	$(GOBUILD) -o $(BIN)/ ./cmd/... ./sandbox/pause

## images: OCI image tarballs of the controller and the agent, into ./bin/images
## (no Docker: built from the static binaries; `faultline images --push` for a registry)
images: build
	$(BIN)/faultline images --bin-dir $(BIN) --out $(BIN)/images --tag $(VERSION)

## demo: bring up the sandbox and run the demo's gameday on it (the sandbox
## builds the tools it runs on first use: no kwok, since the demo has no
## kwok node)
demo: deps build
	$(BIN)/faultline demo

## test: every tier: unit, Linux (root: namespaces, processes, cgroups) and sandbox
## (a real cluster, started once for the run and removed afterwards). Two
## packages run at once (TEST_P), and inside each, sandbox tests run side by
## side: most of their time is spent waiting on fault windows. Each claims
## what it acts on (a node, the machine, the control plane), across packages
## too, or brings up a sandbox of its own when it acts on the whole control
## plane (sandbox/sandboxtest/parallel.go).
TEST_SANDBOX := test
TEST_PARALLEL ?= 16
TEST_P ?= 2
# the longest packages start first, so that the run does not end on one
# of them alone
TEST_FIRST ?= ./experiments/controller/ ./sandbox/ ./experiments/catalog/
# validate's fuzz target runs this long after the tiers, on a quiet machine;
# each new input is minimized for at most FUZZMINIMIZE, or the minute goes
# to shrinking the first few finds (Go's default is a minute each)
FUZZTIME ?= 60s
FUZZMINIMIZE ?= 2s
test: deps-test tools build
	@$(BIN)/faultline sandbox down --name $(TEST_SANDBOX) >/dev/null 2>&1 || true
	$(BIN)/faultline sandbox up --name $(TEST_SANDBOX) --timings fast --prometheus --faultline --ingress
	@rc=0; FAULTLINE_TEST_SANDBOX=$(TEST_SANDBOX) FAULTLINE_TEST_BIN_DIR=$(BIN) $(GO) test -count=1 -tags root,sandbox -p $(TEST_P) -parallel $(TEST_PARALLEL) -timeout 80m $(TEST_FIRST) ./... || rc=$$?; \
	$(BIN)/faultline sandbox down --name $(TEST_SANDBOX) || rc=1; \
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./cmd/faultline/ || rc=1; \
	exit $$rc

## bench-fanout: the controller's fan-out to FLEET_NODES simulated agents (1,000
## by default), each with the agent's own engine, ledger, watch and identity:
## acknowledgement and recovery p50/p99, the controller's CPU and memory, the
## API server's writes. bench-authz: a namespaced user's request latency with
## 0, 1,000 and 5,000 nodes' identities in place, namespaced as the controller
## makes them and cluster-wide as they were. Both print their figures.
FLEET_NODES ?= 1000
bench-fanout: tools build
	FAULTLINE_TEST_BIN_DIR=$(BIN) FAULTLINE_FLEET_NODES=$(FLEET_NODES) $(GO) test -run '^$$' -bench 'BenchmarkFanOut$$' -benchtime 1x -timeout 30m ./experiments/fleet/

bench-authz: tools
	$(GO) test -run '^$$' -bench 'BenchmarkAuthorizationWithNodeIdentities' -benchtime 2000x -timeout 30m ./experiments/fleet/

## gate-validity: run the gates against the fragile and the hardened variants
## GATE_RUNS times each (5 by default): the rollout gate through the ClusterIP
## and the ingress, and every variant of the catalog's memory overcommit,
## node loss, priority preemption and slow etcd, on a sandbox of its own,
## and print how often each verdict was right.
## GATES narrows the run to some tests, SCENARIOS the catalog gate to some
## scenarios: GATES=TestTheCatalogGate SCENARIOS=priority-preemption
GATE_RUNS ?= 5
GATES ?= TestTheRolloutGate|TestTheCatalogGate
SCENARIOS ?=
gate-validity: deps tools build
	@$(BIN)/faultline sandbox down --name gate >/dev/null 2>&1 || true
	$(BIN)/faultline sandbox up --name gate --timings fast --prometheus --faultline --ingress
	@rm -f $(CURDIR)/bin/gate-validity.txt; rc=0; FAULTLINE_TEST_SANDBOX=gate FAULTLINE_TEST_BIN_DIR=$(BIN) FAULTLINE_GATE_RUNS=$(GATE_RUNS) FAULTLINE_GATE_SCENARIOS=$(SCENARIOS) FAULTLINE_GATE_TABLE=$(CURDIR)/bin/gate-validity.txt \
	  $(GO) test -count=1 -p 1 -tags root,sandbox -parallel $(TEST_PARALLEL) -timeout 240m -v -run '$(GATES)' ./experiments/controller/ ./experiments/catalog/ || rc=$$?; \
	$(BIN)/faultline sandbox down --name gate || rc=1; \
	cat $(CURDIR)/bin/gate-validity.txt 2>/dev/null; exit $$rc

## test-unit: the fast tiers, as any user (no root, no nodes): the unit tests,
## and the controllers against a real API server and etcd (envtest, with the
## sandbox's own binaries from make tools: experiments/controllertest)
test-unit: tools
	$(GO) test -count=1 ./...

vet:
	$(GO) vet ./... && $(GO) vet -tags root,sandbox ./...

## lint: golangci-lint at a pinned version, with .golangci.yml (built once into ./bin)
LINT_VERSION := v2.15.0
LINT := $(BIN)/golangci-lint-$(LINT_VERSION)
lint: $(LINT)
	$(LINT) run ./...

$(LINT):
	GOBIN=$(BIN)/.lint $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)
	mv $(BIN)/.lint/golangci-lint $@ && rmdir $(BIN)/.lint

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'
