# Everyday tasks. `sudo bash .ci/run` installs what the tests need from
# Debian's packages, then runs `make ci`: what CI runs is what you run.

GOLANGCI_LINT_VERSION := v2.15.0
BIN := $(CURDIR)/.bin
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

.PHONY: ci test unit e2e lint fmt tidy bench demo check clean

ci: lint test

# Every test: unit tests, fuzz seed corpora, the Nix evaluations and, as
# root, the end-to-end scenarios on booted systemd (with CI=true they fail
# rather than skip when something they need is missing).
test:
	go test -count=1 -v ./...

# Unprivileged and fast: everything but the booted machines.
unit:
	go test -count=1 $$(go list ./... | grep -v '/nixos-tests$$' | grep -v '/nixos-tests/machine$$')

e2e:
	go test -count=1 -v ./nixos-tests/ ./nixos-tests/machine/

lint: $(GOLANGCI_LINT)
	@test -z "$$(gofmt -l cmd pkg nixos-tests)" || { gofmt -l cmd pkg nixos-tests; echo "gofmt: the files above need formatting (make fmt)"; exit 1; }
	go mod tidy -diff
	go vet ./...
	$(GOLANGCI_LINT) run ./...

fmt:
	gofmt -w cmd pkg nixos-tests

$(GOLANGCI_LINT):
	mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS= go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

# The benchmark and the demo boot a test machine: run them as root.
bench:
	go run ./nixos-tests/tools/bench

demo:
	go run ./nixos-tests/tools/demo

# The main job, on this machine, against the built-in map or your manifest.
check:
	go run ./cmd/portclaim check

clean:
	rm -rf $(BIN)
