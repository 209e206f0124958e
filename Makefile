# claude-box — one Makefile for every module of the go.work monorepo.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Modules in dependency order. test/ holds the end-to-end suite.
MODULES      := proto guestroom netd keeperd scoutd launcher
E2E_MODULE   := test
ALL_MODULES  := $(MODULES) $(E2E_MODULE)
# Build tags podman's bindings need (the launcher is the only importer).
LAUNCHER_TAGS := $(shell cat launcher/build.tags 2>/dev/null)
GOBIN        ?= $(shell go env GOPATH)/bin
export PATH  := $(GOBIN):$(PATH)

# Pinned tool versions (installed by `make tools`, used by CI).
BUF_VERSION              := v1.75.0
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION      := v0.8.2

# Build tags apply to every module: only the launcher's podman bindings read
# them, and one GOFLAGS keeps go.work builds, GOWORK=off builds and tests alike.
comma := ,
empty :=
space := $(empty) $(empty)
export GOFLAGS := -tags=$(subst $(space),$(comma),$(strip $(LAUNCHER_TAGS)))

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-12s %s\n",$$1,$$2}'

.PHONY: tools
tools: ## install pinned code generators and linters into GOBIN
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: gen
gen: ## regenerate the protobuf and gRPC code (pinned generators)
	cd proto && buf lint && buf generate

.PHONY: check-gen
check-gen: gen ## fail when regenerating changes anything
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
	  echo "generated code is stale: run 'make gen' and commit"; git status --porcelain -- proto; exit 1; fi

.PHONY: lint
lint: ## gofmt, go vet and staticcheck on every module, buf lint on the protos
	@bad=$$(gofmt -l $(ALL_MODULES) | grep -v '\.pb\.go$$' || true); \
	  if [ -n "$$bad" ]; then echo "not gofmt-formatted:"; echo "$$bad"; exit 1; fi
	cd proto && buf lint
	@for m in $(ALL_MODULES); do echo "== vet $$m"; (cd $$m && go vet ./...); done
	@for m in $(ALL_MODULES); do echo "== staticcheck $$m"; (cd $$m && staticcheck ./...); done

.PHONY: build
build: ## build every module, also with GOWORK=off as nix does
	@for m in $(ALL_MODULES); do echo "== build $$m"; (cd $$m && go build ./... && GOWORK=off go build ./...); done

.PHONY: test
test: ## run every module's tests with -race, the full netd load test, then the e2e suite (needs podman; see test/README.md)
	@for m in $(MODULES); do echo "== test $$m"; (cd $$m && go test -race -count=1 ./...); done
	$(MAKE) load
	$(MAKE) e2e

.PHONY: load
load: ## netd under load without the race detector: 1000 concurrent and 10,000 sequential tunnels
	cd netd && go test -count=1 -run TestLoad -v ./internal/relay/ | grep -E '^(=== RUN|--- |ok|FAIL|PASS)' 

.PHONY: unit
unit: ## run the unit tests of every module except the e2e suite
	@for m in $(MODULES); do echo "== test $$m"; (cd $$m && go test -race -count=1 ./...); done

.PHONY: e2e
e2e: ## run the end-to-end confinement suite against real podman and real daemons
	cd $(E2E_MODULE) && go test -race -count=1 -timeout 25m ./...

.PHONY: bench
bench: ## run the benchmarks (ratios against peers measured in the same run)
	@for m in $(ALL_MODULES); do echo "== bench $$m"; (cd $$m && go test -run '^$$' -bench . -benchtime 1x ./...); done
	@echo "== bench netd/bench (netd vs stripe/smokescreen vs direct; own module, not in go.work)"
	cd netd/bench && GOWORK=off go test -run '^$$' -bench . -benchtime 1x -timeout 30m .

.PHONY: tidy
tidy: ## go mod tidy in every module
	@for m in $(ALL_MODULES); do echo "== tidy $$m"; (cd $$m && go mod tidy); done

-include nix.mk
