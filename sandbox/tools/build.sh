#!/usr/bin/env bash
# Builds the sandbox's pinned binaries from the Go module proxy into a cache
# directory, and skips whatever is already there at the right version.
#
# Usage: sandbox/tools/build.sh [COMPONENT...]   (prints the directory at the end)
#   kubernetes  one multi-call binary, kube, linked as kube-apiserver,
#               kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#               and kubectl
#   etcd, kwok
#   chaos-mesh  Chaos Mesh's controller manager and every CRD of its API,
#               for `faultline sandbox up --chaos-mesh` only
# Without a component: kubernetes, etcd and kwok, what `make demo` and
# `make test` run.
#
# A build says what it builds, how long it has taken and how long the last
# one took on this machine, at least every 15 s
# (FAULTLINE_TOOLS_HEARTBEAT seconds).
set -euo pipefail

K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.7
KWOK_VERSION=v0.7.0

here=$(cd "$(dirname "$0")" && pwd)
cache=${FAULTLINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline/tools}
dir="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
# Build times, kept across versions: the last one is the next estimate.
timings="$cache/build-seconds"
mkdir -p "$dir" "$timings"

heartbeat=${FAULTLINE_TOOLS_HEARTBEAT:-15}
start=$(date +%s)
log() { printf '[tools +%4ss] %s\n' "$(( $(date +%s) - start ))" "$*" >&2; }
human() { printf '%dm%02ds' $(( $1 / 60 )) $(( $1 % 60 )); }

# A binary counts as present only with its stamp, which holds a hash of
# what it was built from (its module's go.mod and go.sum, and for kube its
# main.go): a build killed halfway leaves no stamp and is redone, and so is
# one whose module has changed since (a dependency moved with the main
# module's, say).
sources() {
  case "$1" in
    kube|kube-*|kubelet|kubectl) echo "$here/kubernetes/go.mod $here/kubernetes/go.sum $here/kubernetes/main.go" ;;
    etcd) echo "$here/etcd/go.mod $here/etcd/go.sum" ;;
  esac
}
stamp() {
  local s; s=$(sources "$1")
  if [ -n "$s" ]; then cat $s | sha256sum | cut -d' ' -f1; else echo built; fi
}
have() { [ -x "$dir/$1" ] && [ -f "$dir/.$1.ok" ] && [ "$(cat "$dir/.$1.ok")" = "$(stamp "$1")" ]; }
mark() { for b in "$@"; do stamp "$b" > "$dir/.$b.ok"; done; }

# build NAME GUESS_SECONDS CMD...: runs CMD, saying every 15 s what it
# builds, for how long so far, and what the last build here took (or the
# guess, for a first build).
build() {
  local name=$1 guess=$2; shift 2
  local expect="about $(human "$guess") on 2 cores (first build here)"
  if [ -s "$timings/$name" ]; then expect="the last build here took $(human "$(cat "$timings/$name")")"; fi
  log "building $name: $expect"
  local t0; t0=$(date +%s)
  "$@" &
  local pid=$! rc=0
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq "$heartbeat"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && log "building $name: $(human $(( $(date +%s) - t0 ))) so far; $expect"
  done
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then log "building $name failed (exit $rc)"; return "$rc"; fi
  local took=$(( $(date +%s) - t0 ))
  echo "$took" > "$timings/$name"
  log "built $name in $(human "$took")"
}

build_kubernetes() {
  local links=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl) b missing=0
  for b in kube "${links[@]}"; do have "$b" || missing=1; done
  [ "$missing" -eq 0 ] && return
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  build "kube $K8S_VERSION (${links[*]})" 300 \
    bash -c "cd '$here/kubernetes' && CGO_ENABLED=0 go build -trimpath -ldflags '$ldflags' -o '$dir/kube' ."
  for b in "${links[@]}"; do ln -sfn kube "$dir/$b"; done
  mark kube "${links[@]}"
}

build_etcd() {
  have etcd && return
  build "etcd $ETCD_VERSION" 120 \
    bash -c "cd '$here/etcd' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$dir/etcd' go.etcd.io/etcd/server/v3"
  mark etcd
}

build_kwok() {
  have kwok && return
  build "kwok $KWOK_VERSION" 120 \
    env GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-trimpath go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mark kwok
}

# Chaos Mesh's controller manager, from the tools module, and its CRDs by
# controller-gen over the API module the main module pins (which the
# tools module's replace follows; a unit test keeps the two in step). Each
# is stamped with the version it was made from.
build_chaos_mesh() {
  local cm_version api_version
  cm_version=$(cd "$here/chaosmesh" && go list -m -f '{{.Version}}' github.com/chaos-mesh/chaos-mesh)
  if [ ! -x "$dir/chaos-controller-manager" ] || [ "$(cat "$dir/.chaos-controller-manager.ok" 2>/dev/null)" != "$cm_version" ]; then
    build "Chaos Mesh's controller manager $cm_version" 240 \
      bash -c "cd '$here/chaosmesh' && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$dir/' github.com/chaos-mesh/chaos-mesh/cmd/chaos-controller-manager"
    echo "$cm_version" > "$dir/.chaos-controller-manager.ok"
  fi
  api_version=$(cd "$here/../.." && go list -m -f '{{.Version}}' github.com/chaos-mesh/chaos-mesh/api)
  if [ ! -d "$dir/chaos-mesh-crds" ] || [ "$(cat "$dir/.chaos-mesh-crds.ok" 2>/dev/null)" != "$api_version" ]; then
    rm -rf "$dir/chaos-mesh-crds" "$dir/.chaos-mesh-crds.ok"
    build "Chaos Mesh's CRDs from its api module $api_version" 60 \
      bash -c "cd '$here/../..' && go tool controller-gen crd paths=github.com/chaos-mesh/chaos-mesh/api/v1alpha1 output:crd:artifacts:config='$dir/chaos-mesh-crds'"
    echo "$api_version" > "$dir/.chaos-mesh-crds.ok"
  fi
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kubernetes etcd kwok)
for c in "${components[@]}"; do
  case "$c" in
    kubernetes|etcd|kwok|chaos-mesh) ;;
    *) echo "build.sh: no component $c (kubernetes, etcd, kwok, chaos-mesh)" >&2; exit 2 ;;
  esac
done
# kwok shares no module version with the others (it needs older Kubernetes
# libraries), so it builds beside them and fills the cores they leave idle
# (a large package compiling alone, a link). The others build one after
# another: etcd and Chaos Mesh then reuse what kube compiled.
kwok_pid=""
if [[ " ${components[*]} " == *" kwok "* ]] && ! have kwok; then
  build_kwok &
  kwok_pid=$!
fi
for c in "${components[@]}"; do
  case "$c" in
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    chaos-mesh) build_chaos_mesh ;;
  esac
done
if [ -n "$kwok_pid" ]; then wait "$kwok_pid"; fi

versions=""
have kube && versions+=" $("$dir/kube-apiserver" --version 2>&1)"
# awk reads all of etcd's lines: head would leave early, and etcd's next
# write would die of SIGPIPE, failing the script under pipefail.
have etcd && versions+=", etcd $("$dir/etcd" --version 2>&1 | awk 'NR == 1 {print $3}')"
have kwok && versions+=", kwok $KWOK_VERSION"
log "ready in $dir:$versions"
echo "$dir"
