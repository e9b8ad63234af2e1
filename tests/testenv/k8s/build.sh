#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy (see go.mod) and
# caches them under a directory keyed on this module's inputs. Prints the bin dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_version="v1.37.2"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
cache_root="${CROSSKEY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crosskey}"
bin_dir="$cache_root/k8s-$key/bin"

if [[ -x "$bin_dir/kube-apiserver" && -x "$bin_dir/kubectl" && -x "$bin_dir/etcd" ]]; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the Kubernetes binaries" >&2; exit 1; }
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
vars=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vars+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
tmp_dir="$cache_root/k8s-$key/tmp.$$"
mkdir -p "$tmp_dir"
trap 'rm -rf "$tmp_dir"' EXIT
start=$(date +%s)
echo "building Kubernetes $k8s_version binaries into $bin_dir (first build takes minutes)" >&2
cd "$here"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
go build -trimpath -ldflags "-s -w$vars" -o "$tmp_dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "-s -w$vars" -o "$tmp_dir/kubectl" k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$tmp_dir/etcd" go.etcd.io/etcd/server/v3
mkdir -p "$bin_dir"
mv "$tmp_dir"/* "$bin_dir/"
echo "built Kubernetes binaries in $(( $(date +%s) - start ))s" >&2
echo "$bin_dir"
