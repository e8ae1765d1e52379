# deepmeter: `make run` starts the proxy on the embedded SQLite store,
# `make test` runs the tests. See README.md.

GO         ?= go
BIN        ?= bin
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS    := -X main.version=$(VERSION)
FUZZTIME   ?= 30s

# The Postgres suite runs when this is set, for example:
#   make test DEEPMETER_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
DEEPMETER_TEST_DATABASE_URL ?=
export DEEPMETER_TEST_DATABASE_URL

.PHONY: all build run test test-short fuzz bench demo vet clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/deepmeter ./cmd/deepmeter
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/deepseek-standin ./cmd/deepseek-standin

# Starts the proxy in front of api.deepseek.com with the records in
# ./deepmeter.db. Any DEEPMETER_* variable in the environment applies.
run: build
	$(BIN)/deepmeter serve

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }

test: vet
	@if [ -z "$(DEEPMETER_TEST_DATABASE_URL)" ]; then \
		echo "NOTE: DEEPMETER_TEST_DATABASE_URL is not set, so the Postgres suite is skipped."; \
		echo "      Set it to run it, e.g. DEEPMETER_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' make test"; \
	else \
		echo "Postgres suite on: $$(echo '$(DEEPMETER_TEST_DATABASE_URL)' | sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#')"; \
	fi
	$(GO) test -race -count=1 -timeout 20m ./...

# Runs each fuzz target for FUZZTIME. -timeout 0 lets FUZZTIME run past
# go test's default 10m timeout; FUZZTIME itself bounds the run. CI runs
# each target briefly; run longer locally, for example FUZZTIME=10m.
FUZZ_PACKAGES ?= ./metering ./pricing ./admin ./internal/standin
fuzz:
	@for pkg in $(FUZZ_PACKAGES); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzzing $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -timeout 0 $$pkg || exit 1; \
		done; \
	done

# Runs the Go benchmarks, then the load generator: the same load direct to
# the stand-in, through a bare httputil.ReverseProxy and through deepmeter
# (SQLite, and Postgres when DEEPMETER_TEST_DATABASE_URL is set). About
# 5 minutes on 2 cores; BENCHMARKS.md has a recorded run.
bench: build
	$(GO) build -o $(BIN)/deepmeter-loadgen ./cmd/deepmeter-loadgen
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(BIN)/deepmeter-loadgen --deepmeter $(BIN)/deepmeter --standin $(BIN)/deepseek-standin

# Runs the DeepSeek stand-in and the proxy offline, sends a few calls and
# prints the admin API's answers.
demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
