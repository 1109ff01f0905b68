# Vivace — build, demo, tests and benchmarks. `make help` lists the targets.

GO            ?= go
BIN           := bin
VIVACE        := $(BIN)/vivace
STATICCHECK   := $(BIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# golangci-lint runs the linters of .golangci.yml (staticcheck among them,
# the same version as above); the binary's name carries its version, so a
# change of version installs the new one.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# helm lints and renders charts/vivace in the tests (tests/deploy); the
# binary's name carries its version, as golangci-lint's does.
HELM_VERSION  := v3.16.3
HELM          := $(BIN)/helm-$(HELM_VERSION)
# DATABASE_URL, when set, is passed on as it is: vivace dev and the other
# commands use its database (default: vivace on 127.0.0.1:5432), the Go
# tests create their databases on its server (default: 127.0.0.1:5432).
# The pipelines' YAML tests that read PostgreSQL (lookup tables) run
# against this database; make pipeline-test creates it afresh and fills it.
PIPELINE_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/vivace_pipeline_test?sslmode=disable

.PHONY: help build demo dev test vet lint staticcheck unit pipeline-test bench fuzz soak deps proto clean helm chart-pipelines

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

build: ## build bin/vivace
	$(GO) build -o $(VIVACE) ./cmd/vivace

demo: build ## start vivace dev, load the sample catalog, ingest the sample file, print counts and MURs, stop
	bash scripts/demo.sh

dev: build ## run vivace dev on embedded defaults until Ctrl-C
	$(VIVACE) dev --clients tests/testdata/demo/clients.yaml

deps: ## install the Debian packages some tests use (kcat, docker-compose, promtool), where possible
	bash scripts/install-deps.sh

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/$(BIN)/.golangci-lint $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.golangci-lint/golangci-lint $@ && rmdir $(BIN)/.golangci-lint

$(HELM):
	GOBIN=$(CURDIR)/$(BIN)/.helm $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.helm/helm $@ && rmdir $(BIN)/.helm

helm: $(HELM) ## install the pinned helm into bin/ (the chart tests use it)

chart-pipelines: ## copy pipelines/*.yaml into charts/vivace/pipelines/ (the chart's ConfigMap; a test checks they are equal)
	rm -f charts/vivace/pipelines/*.yaml
	for f in pipelines/*.yaml; do case $$f in *_test.yaml) ;; *) cp $$f charts/vivace/pipelines/ ;; esac; done

vet: ## gofmt check, go vet, go.mod tidy, every make target described
	@files=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { echo "go.mod or go.sum is not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }
	@bad=$$(grep -E '^[a-z][a-z-]*:' Makefile | grep -v '## '); \
	  if [ -n "$$bad" ]; then echo "make targets without a ## description (make help lists them):"; echo "$$bad"; exit 1; fi

lint: $(GOLANGCI_LINT) ## golangci-lint with .golangci.yml (errcheck, rowserrcheck, bodyclose, staticcheck, ...)
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

staticcheck: $(STATICCHECK) ## staticcheck alone (lint runs it too)
	$(STATICCHECK) ./...

unit: $(HELM) ## go test -race -shuffle=on ./... (a fresh database per package on DATABASE_URL's server, embedded broker)
	VIVACE_HELM=$(CURDIR)/$(HELM) $(GO) test -race -shuffle=on -timeout 15m ./...

pipeline-test: build ## the pipelines' YAML tests (with their lookup table in PIPELINE_TEST_DATABASE_URL)
	DATABASE_URL='$(PIPELINE_TEST_DATABASE_URL)' $(VIVACE) migrate --recreate
	DATABASE_URL='$(PIPELINE_TEST_DATABASE_URL)' $(VIVACE) lookup load --client telco --lookup msisdn_accounts \
	  --replace pipelines/examples/testdata/msisdn_accounts.csv
	DATABASE_URL='$(PIPELINE_TEST_DATABASE_URL)' $(VIVACE) test ./pipelines/...

test: deps vet lint unit pipeline-test ## everything CI runs: vet, lint, the Go tests, the pipelines' YAML tests

bench: build ## benchmarks: Go benchmarks and the end-to-end load run (figures go in docs/benchmarks.md)
	bash scripts/bench.sh

# FUZZTIME is how long make fuzz runs each fuzz target.
FUZZTIME ?= 1m

fuzz: ## every Go fuzz target (the parsers of outside input) for FUZZTIME each (default 1m); make test runs their seed corpus
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash scripts/fuzz.sh

SOAK_DURATION ?= 30m
soak: ## not in CI: SOAK_DURATION (30m) of mixed load with kill -9s and a database outage, vivace check after each phase; memory and goroutines in .data/soak/
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test ./tests/e2e -run '^TestSoak$$' -v -count=1 -timeout 4h

proto: ## regenerate the mediation plugin contract's Go code (needs protoc)
	bash scripts/gen-proto.sh

clean: ## remove bin/, .vivace/ and .data/
	rm -rf $(BIN) .vivace .data
