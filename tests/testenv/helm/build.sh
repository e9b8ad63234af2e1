#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy (see go.mod) and caches it under a
# directory keyed on this module's inputs. Prints the bin dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
helm_version="v3.22.0"
# The Kubernetes version helm assumes for `helm template` / `helm lint` (.Capabilities)
# when it does not talk to a cluster; helm's default is 1.20. Matches tests/testenv/k8s.
k8s_major="1"
k8s_minor="37"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
cache_root="${CROSSKEY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crosskey}"
bin_dir="$cache_root/helm-$key/bin"

if [[ -x "$bin_dir/helm" ]]; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build helm" >&2; exit 1; }
vars="-X helm.sh/helm/v3/internal/version.version=$helm_version"
vars+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  vars+=" -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
done
tmp_dir="$cache_root/helm-$key/tmp.$$"
mkdir -p "$tmp_dir"
trap 'rm -rf "$tmp_dir"' EXIT
start=$(date +%s)
echo "building helm $helm_version into $bin_dir" >&2
cd "$here"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
go build -trimpath -ldflags "-s -w $vars" -o "$tmp_dir/helm" helm.sh/helm/v3/cmd/helm
mkdir -p "$bin_dir"
mv "$tmp_dir/helm" "$bin_dir/"
echo "built helm in $(( $(date +%s) - start ))s" >&2
echo "$bin_dir"
