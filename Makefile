# umlkit build, test, bench and demo targets. Binaries land in ./bin.
# Go 1.26 from /usr/local/go is found even under sudo's reset PATH.
export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/umlkit/umlkit/internal/buildinfo.Version=$(VERSION)
GOTEST_FLAGS ?= -race -timeout 40m -p 2

.PHONY: build test check bench demo clean packages

# uml_net (setuid root) starts at an entry point that drops the caller's
# environment before the Go runtime reads it (cmd/uml_net/entry_amd64.s).
UMLNET_LDFLAGS := $(if $(filter amd64,$(shell $(GO) env GOARCH 2>/dev/null)),-E=main.entry)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) $(UMLNET_LDFLAGS)' -o $(BIN)/uml_net ./cmd/uml_net

# check: formatting and vet (also covered by internal/repo_test.go).
check:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# test: everything, race detector on; integration tests run when root (CI).
test: build check
	UMLKIT_BIN=$(CURDIR)/$(BIN) $(GO) test $(GOTEST_FLAGS) ./...

bench: build
	$(GO) run ./bench -bin $(BIN) $(if $(B),$(B),all)

# demo: build everything, make ./root_fs when missing, boot it on this terminal.
demo: build
	@if [ ! -e root_fs ]; then $(BIN)/uml_mkrootfs root_fs || exit $$?; fi
	$(BIN)/linux ubd0=root_fs con0=fd:0,fd:1

clean:
	rm -rf $(BIN)

# packages: umlkit-utilities and umlkit-linux as .deb and .rpm in ./dist (docs/packaging.md)
packages:
	GO=$(GO) packaging/build.sh $(CURDIR)/dist
