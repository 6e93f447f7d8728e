# apikeyd: every target installs what it needs first (Debian/Ubuntu, with apt-get).
SHELL := /bin/bash
SWIFT ?= swift
DATA_DIR ?= data/store
SERVE_ARGS ?=
# openssl and curl: the HTTPS tests make certificates and talk TLS with them; nginx: a test runs
# the shipped deploy/nginx-apikeyd.conf in front of the server; python3: a test generates a
# FOSSBilling dump with Benchmarks/fossbilling-dump.py, and python3-venv holds `make conformance`'s
# schemathesis; postgresql: the multi-node tests start a throwaway PostgreSQL cluster of their own
# (initdb, pg_ctl).
APT_PACKAGES := libxxhash-dev zlib1g-dev pkg-config openssl curl nginx python3 python3-venv postgresql

.PHONY: deps serve build release test bench fuzz docs examples conformance openapi lint format clean

## deps: install the system libraries the package links (libxxhash, zlib) when missing
deps:
	@missing=""; \
	for package in $(APT_PACKAGES); do \
	  dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

## serve: build the release binary and serve the API on 127.0.0.1:8080 with data in $(DATA_DIR)
serve: release
	.build/release/apikeyd serve --data-dir $(DATA_DIR) $(SERVE_ARGS)

## release: the release binary with the Swift runtime linked in (runs without the toolchain;
## needs only libc, libxxhash and zlib), at .build/release/apikeyd
release: deps
	$(SWIFT) build -c release --product apikeyd --static-swift-stdlib

build: deps
	$(SWIFT) build

## test: the whole test suite
test: deps
	$(SWIFT) test

## bench: in-process benchmarks (ordo-one/benchmark), release build; fails when a benchmark
## allocates more than Benchmarks/Thresholds allows (zero mallocs per check and get_info)
bench: deps
	mkdir -p Benchmarks/results
	cd Benchmarks && set -o pipefail && $(SWIFT) package --disable-sandbox benchmark --no-progress 2>&1 \
	  | tee results/latest.txt
	Benchmarks/check-allocations.sh results/latest.txt

## fuzz: the long runs of the randomised tests. The seeded mutator over
## Tests/APIKeyServerTests/Corpus runs FUZZ_SECONDS per target (inputs reaching a new kind of
## answer are kept there as found-*.txt); the model-based tests of the key table and the engine,
## the extreme-value write fuzz and the churn soak run FUZZ_SCALE times their `make test` length.
FUZZ_SECONDS ?= 30
FUZZ_SCALE ?= 20
FUZZ_TESTS := FuzzTests|KeyTableTests|EngineModelTests|UsageModelTests|RouterTests|ChurnSoakTests
fuzz: deps
	set -o pipefail && FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SCALE=$(FUZZ_SCALE) $(SWIFT) test --filter '$(FUZZ_TESTS)' 2>&1 \
	  | grep -E "^fuzz |passed after|Test run|✘|error"

## docs: the DocC catalog of APIKeyEngine (Sources/APIKeyEngine/APIKeyEngine.docc) as a static
## site in .build/docs, warnings (a link DocC cannot resolve) as errors; then fails when a public
## symbol of APIKeyEngine, APIKeyGuard or APIKeyEngineService has no doc comment of its own
docs: deps
	$(SWIFT) package --disable-sandbox --allow-writing-to-directory .build/docs generate-documentation \
	  --target APIKeyEngine --output-path .build/docs --transform-for-static-hosting --warnings-as-errors
	$(SWIFT) package dump-symbol-graph --minimum-access-level public >/dev/null
	python3 scripts/check-doc-comments.py "$$(find .build -maxdepth 2 -type d -name symbolgraph | head -n 1)" .

## examples: builds and tests the middleware packages and the example products, each a package of
## its own that depends on this one by path (their first builds take minutes: Hummingbird, Vapor);
## the generated OpenAPI client's test runs the debug apikeyd built first
EXAMPLE_PACKAGES := Integrations/APIKeyHummingbird Integrations/APIKeyVapor Examples/weather-api Examples/openapi-client
examples: deps
	$(SWIFT) build --product apikeyd
	set -e; for package in $(EXAMPLE_PACKAGES); do \
	  echo "== $$package"; (cd $$package && $(SWIFT) build --build-tests && $(SWIFT) test --skip-build); \
	done

## conformance: validates docs/openapi.yaml and runs schemathesis (PyPI, in a virtual environment
## of its own) against a real `apikeyd serve`: every check but negative_data_rejection,
## EXAMPLES (default 100) test cases per operation; fails on any finding
EXAMPLES ?= 100
conformance: deps
	EXAMPLES=$(EXAMPLES) scripts/conformance.sh

## openapi: rewrites Sources/APIKeyAPI/OpenAPIDocument.swift (the document the server serves at
## GET /openapi.yaml) from docs/openapi.yaml; OpenAPIDocumentTests fails until it is run
openapi:
	python3 scripts/embed-openapi.py

## lint: swift-format in strict mode, as CI would
lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Benchmarks Benchmarks/Tools \
	  Integrations/*/Package.swift Integrations/*/Sources Integrations/*/Tests \
	  Examples/*/Package.swift Examples/*/Sources Examples/*/Tests

format:
	$(SWIFT) format format --in-place --recursive Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Benchmarks Benchmarks/Tools \
	  Integrations/*/Package.swift Integrations/*/Sources Integrations/*/Tests \
	  Examples/*/Package.swift Examples/*/Sources Examples/*/Tests

clean:
	rm -rf .build Benchmarks/.build Integrations/*/.build Examples/*/.build
