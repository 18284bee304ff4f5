#!/usr/bin/env bash
# Runs every test of the repository, as CI does. First installs, with
# apt-get (as root, or through sudo), what a fresh Debian machine with Go
# lacks: redis-server and redis-cli (the tests start their own servers on
# free ports), gcc (for -race), Chromium (the browser test) and ss from
# iproute2 (the send-buffer test). Then: go test -race -timeout 30m ./...
# Arguments go to go test, e.g. ./test.sh -run TestFanOut -v
set -euo pipefail
cd "$(dirname "$0")"

command -v go >/dev/null || { echo "test.sh: Go is missing: install Go 1.26 or newer (https://go.dev/doc/install)" >&2; exit 1; }
missing=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v chromium >/dev/null || missing+=(chromium)
command -v ss >/dev/null || missing+=(iproute2)
if ((${#missing[@]})); then
	echo "test.sh: installing ${missing[*]} with apt-get" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec go test -race -timeout 30m "$@" ./...
