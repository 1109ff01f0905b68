# Vivace — build, demo, tests and benchmarks. `make help` lists the targets.

GO            ?= go
BIN           := bin
VIVACE        := $(BIN)/vivace
STATICCHECK   := $(BIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
DATABASE_URL  ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export DATABASE_URL
# The pipelines' YAML tests that read PostgreSQL (lookup tables) run
# against this database; make pipeline-test creates and fills it.
PIPELINE_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/vivace_pipeline_test?sslmode=disable

.PHONY: help build demo dev test vet staticcheck unit pipeline-test e2e bench deps proto clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/vivace
	$(GO) build -o $(VIVACE) ./cmd/vivace

demo: build ## start vivace dev, load the sample catalog, ingest the sample file, print counts and MURs, stop
	bash scripts/demo.sh

dev: build ## run vivace dev on embedded defaults until Ctrl-C
	$(VIVACE) dev --clients tests/testdata/demo/clients.yaml

deps: ## install the Debian packages some tests use (kcat), where possible
	bash scripts/install-deps.sh

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

vet: ## gofmt check and go vet
	@files=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

unit: ## go test -race -shuffle=on ./... (real PostgreSQL at DATABASE_URL, embedded broker)
	$(GO) test -race -shuffle=on -timeout 15m ./...

pipeline-test: build ## the pipelines' YAML tests (with their lookup table in PIPELINE_TEST_DATABASE_URL)
	DATABASE_URL='$(PIPELINE_TEST_DATABASE_URL)' $(VIVACE) migrate --create
	DATABASE_URL='$(PIPELINE_TEST_DATABASE_URL)' $(VIVACE) lookup load --client telco --lookup msisdn_accounts \
	  --replace pipelines/examples/testdata/msisdn_accounts.csv
	DATABASE_URL='$(PIPELINE_TEST_DATABASE_URL)' $(VIVACE) test ./pipelines/...

test: deps vet staticcheck unit pipeline-test ## everything CI runs

bench: build ## benchmarks: Go benchmarks and the end-to-end load run (figures go in docs/benchmarks.md)
	bash scripts/bench.sh

proto: ## regenerate the mediation plugin contract's Go code (needs protoc)
	bash scripts/gen-proto.sh

clean:
	rm -rf $(BIN) .vivace .data
