# Release build: the outgate CLI with the Lambda function zips embedded, so a
# user with only this binary can run `outgate up`.
DIST := internal/deploy/dist
ARCHES := arm64:arm64 x86_64:amd64
# What `outgate version`, serve's outgate_build_info metric and the Lambda
# functions' startup line report. The zips get no build date, so the same
# commit gives the same zips (up skips code that has not changed).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO := github.com/outgate/outgate/internal/buildinfo
STAMP := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT)

.PHONY: release zips instance-binary test image image-context
zips:
	@for pair in $(ARCHES); do arch=$${pair%%:*}; goarch=$${pair##*:}; \
	  for fn in outgate-relay outgate-guardian; do \
	    tmp=$$(mktemp -d); \
	    GOOS=linux GOARCH=$$goarch CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w -buildid= $(STAMP)' -o $$tmp/bootstrap ./cmd/$$fn || exit 1; \
	    (cd $$tmp && touch -d 2020-01-01 bootstrap && zip -q -X $$OLDPWD/$(DIST)/$$fn-$$arch.zip bootstrap) || exit 1; \
	    rm -rf $$tmp; \
	  done; done

# The binary instance mode's instances run (linux/arm64), embedded so that
# `up --mode instance` from a release build needs no Go toolchain. No build
# date: the same commit gives the same binary, and so the same S3 key and
# launch template (up replaces no instance for nothing).
instance-binary:
	rm -f $(DIST)/outgate-linux-arm64   # never embed an older copy of itself
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid= $(STAMP)' -o $(DIST)/outgate-linux-arm64 ./cmd/outgate

release: zips instance-binary
	go build -trimpath -ldflags='$(STAMP) -X $(BUILDINFO).buildDate=$(BUILD_DATE)' -o outgate ./cmd/outgate
	sha256sum outgate internal/deploy/dist/*.zip internal/deploy/dist/outgate-linux-arm64 > outgate.sha256

test:
	npm ci --prefix testdata/clients/node --no-audit --no-fund && go test -race -count=1 ./...

# The container image of `outgate serve` (Containerfile), built offline: the
# static binary is built here and copied FROM scratch with the CA roots, so no
# base image is pulled. CONTAINER=docker works too.
IMAGE ?= localhost/outgate:dev
CONTAINER ?= podman
IMAGE_DIR ?= build/image
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

image-context:
	@test -f $(CA_BUNDLE) || { echo "no CA bundle at $(CA_BUNDLE): apt-get install ca-certificates, or pass CA_BUNDLE=FILE" >&2; exit 1; }
	mkdir -p $(IMAGE_DIR)
	GOOS=linux CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o $(IMAGE_DIR)/outgate ./cmd/outgate
	chmod 0555 $(IMAGE_DIR)/outgate
	install -m 0444 $(CA_BUNDLE) $(IMAGE_DIR)/ca-certificates.crt

# podman (buildah) writes OCI images by default, which have no HEALTHCHECK.
image: image-context
	$(CONTAINER) build $(if $(filter podman buildah,$(notdir $(CONTAINER))),--format docker) -f Containerfile -t $(IMAGE) $(IMAGE_DIR)
