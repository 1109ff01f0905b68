#!/usr/bin/env bash
# Regenerates the Go code of the mediation plugin contract from its .proto
# files, one per protocol version.
#
# Needs protoc (Debian package protobuf-compiler). The two Go generators are
# pinned: protoc-gen-go matches the google.golang.org/protobuf version in
# go.mod, and protoc-gen-go-grpc v1.5.1 writes code for grpc 1.64 and later
# (go.mod has a newer one). They are installed into bin/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

command -v protoc >/dev/null || { echo "protoc not found: install the protobuf-compiler package" >&2; exit 1; }
bin="$PWD/bin"
mkdir -p "$bin"
want() { [ -x "$bin/$1" ] && [ -f "$bin/$1.version" ] && [ "$(cat "$bin/$1.version")" = "$2" ]; }
if ! want protoc-gen-go "$PROTOC_GEN_GO_VERSION"; then
	GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
	echo "$PROTOC_GEN_GO_VERSION" >"$bin/protoc-gen-go.version"
fi
if ! want protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"; then
	GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
	echo "$PROTOC_GEN_GO_GRPC_VERSION" >"$bin/protoc-gen-go-grpc.version"
fi

# Version 1's file is registered as "mediation.proto"; later versions by
# their path under plugins/mediation, so that the names do not clash.
PATH="$bin:$PATH" protoc -I plugins/mediation/mediationv1 \
	--go_out=plugins/mediation/mediationv1 --go_opt=paths=source_relative \
	--go-grpc_out=plugins/mediation/mediationv1 --go-grpc_opt=paths=source_relative \
	mediation.proto
PATH="$bin:$PATH" protoc -I plugins/mediation \
	--go_out=plugins/mediation --go_opt=paths=source_relative \
	--go-grpc_out=plugins/mediation --go-grpc_opt=paths=source_relative \
	mediationv2/mediation.proto
