#!/usr/bin/env bash
# Builds the sandbox's pinned binaries from the Go module proxy into a cache
# directory, and skips whatever is already there at the right version.
# Usage: sandbox/tools/build.sh            (prints the directory at the end)
set -euo pipefail

K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.7
KWOK_VERSION=v0.7.0

here=$(cd "$(dirname "$0")" && pwd)
cache=${FAULTLINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline/tools}
dir="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
mkdir -p "$dir"

start=$(date +%s)
log() { printf '[tools +%3ss] %s\n' "$(( $(date +%s) - start ))" "$*" >&2; }

# A binary counts as present only with its stamp: a build killed halfway
# leaves no stamp and is redone.
have() { [ -x "$dir/$1" ] && [ -f "$dir/.$1.ok" ]; }
mark() { for b in "$@"; do touch "$dir/.$b.ok"; done; }

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for b in "${k8s_bins[@]}"; do have "$b" || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "building ${missing[*]} $K8S_VERSION (cold: about 10 minutes)"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=(); for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$here/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/" "${pkgs[@]}")
  mark "${missing[@]}"
fi

if ! have etcd; then
  log "building etcd $ETCD_VERSION"
  (cd "$here/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3)
  mark etcd
fi

if ! have kwok; then
  log "building kwok $KWOK_VERSION"
  GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-trimpath go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mark kwok
fi

# Chaos Mesh's controller manager, and its CRDs by controller-gen over its
# API module, for `sandbox up --chaos-mesh`. Each is stamped with the
# version it was made from: the binary with the tools module's Chaos Mesh,
# the CRDs with the api module the main module pins (which may move alone).
cm_version=$(cd "$here/chaosmesh" && go list -m -f '{{.Version}}' github.com/chaos-mesh/chaos-mesh)
if ! have chaos-controller-manager || [ "$(cat "$dir/.chaos-controller-manager.ok")" != "$cm_version" ]; then
  log "building Chaos Mesh's controller manager $cm_version (cold: about 10 minutes)"
  (cd "$here/chaosmesh" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/" github.com/chaos-mesh/chaos-mesh/cmd/chaos-controller-manager)
  echo "$cm_version" > "$dir/.chaos-controller-manager.ok"
fi
api_version=$(cd "$here/../.." && go list -m -f '{{.Version}}' github.com/chaos-mesh/chaos-mesh/api)
if [ ! -d "$dir/chaos-mesh-crds" ] || [ "$(cat "$dir/.chaos-mesh-crds.ok" 2>/dev/null)" != "$api_version" ]; then
  log "making Chaos Mesh's CRDs from its api module $api_version"
  rm -rf "$dir/chaos-mesh-crds" "$dir/.chaos-mesh-crds.ok"
  (cd "$here/../.." && go tool controller-gen crd paths=github.com/chaos-mesh/chaos-mesh/api/v1alpha1 output:crd:artifacts:config="$dir/chaos-mesh-crds")
  echo "$api_version" > "$dir/.chaos-mesh-crds.ok"
fi

log "tools ready in $dir: $("$dir/kube-apiserver" --version 2>&1), etcd $("$dir/etcd" --version 2>&1 | head -1 | awk '{print $3}'), kwok $KWOK_VERSION"
echo "$dir"
