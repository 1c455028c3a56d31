#!/usr/bin/env bash
# Build the rig's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, minio, helm, and an OpenTelemetry Collector: otelcol) from upstream Go modules into a cache outside the
# repo, keyed by version. Idempotent: a version whose binaries are all present
# is not rebuilt. Prints the bin directories on stdout (KEY=dir lines); build
# chatter goes to stderr.
#
#   tests/rig/build.sh            build what is missing
#   tests/rig/build.sh --print    only print the directories (no build)
#   tests/rig/build.sh otelcol    build only the collector (the embedded trace tests)
#
# Env: DOCJOBS_RIG_CACHE (default ~/.cache/docjobs-rig), DOCJOBS_RIG_NICE
# (niceness for go build, default 19: the build is long and machines shared).
set -euo pipefail

RIG_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${DOCJOBS_RIG_CACHE:-$HOME/.cache/docjobs-rig}"
NICE="${DOCJOBS_RIG_NICE:-19}"

# The versions live in the tools modules' go.mod files (single source of truth).
mod_version() { # <go.mod> <module path>
  awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1"
}
K8S_VERSION="$(mod_version "$RIG_DIR/k8s/go.mod" k8s.io/kubernetes)"
MINIO_VERSION="$(mod_version "$RIG_DIR/minio/go.mod" github.com/minio/minio)"
HELM_VERSION="$(mod_version "$RIG_DIR/helm/go.mod" helm.sh/helm/v3)"
OTELCOL_VERSION="$(mod_version "$RIG_DIR/otelcol/go.mod" go.opentelemetry.io/collector/otelcol)"
[[ -n $K8S_VERSION && -n $MINIO_VERSION && -n $HELM_VERSION && -n $OTELCOL_VERSION ]] || { echo "build.sh: cannot read versions from go.mod" >&2; exit 1; }

K8S_BIN="$CACHE/k8s-$K8S_VERSION/bin"
KUBECTL_BIN="$CACHE/k8s-$K8S_VERSION/kubectl"
MINIO_BIN="$CACHE/minio-$MINIO_VERSION/bin"
HELM_BIN="$CACHE/helm-$HELM_VERSION/bin"
OTELCOL_BIN="$CACHE/otelcol-$OTELCOL_VERSION/bin"

print_dirs() {
  echo "K8S_VERSION=$K8S_VERSION"
  echo "K8S_BIN=$K8S_BIN"
  echo "KUBECTL_BIN=$KUBECTL_BIN"
  echo "MINIO_VERSION=$MINIO_VERSION"
  echo "MINIO_BIN=$MINIO_BIN"
  echo "HELM_VERSION=$HELM_VERSION"
  echo "HELM_BIN=$HELM_BIN"
  echo "OTELCOL_VERSION=$OTELCOL_VERSION"
  echo "OTELCOL_BIN=$OTELCOL_BIN"
}
if [[ ${1-} == --print ]]; then print_dirs; exit 0; fi

all_present() { # <dir> <binary>...
  local d=$1; shift
  local b
  for b in "$@"; do [[ -x $d/$b ]] || return 1; done
}

# go build <pkgs> into a temp dir, then move into place, so an interrupted
# build never leaves a half-populated bin dir that looks complete.
go_build() { # <module dir> <dest bin dir> <ldflags> <pkg>...
  local moddir=$1 dest=$2 ldflags=$3; shift 3
  local tmp
  mkdir -p "$(dirname "$dest")"
  tmp="$(mktemp -d "$(dirname "$dest")/.build.XXXXXX")"
  echo "build.sh: building $* -> $dest (this can take a long time when cold)" >&2
  local start=$SECONDS
  (
    cd "$moddir"
    # -mod=mod: the tools modules carry no vendor dir; CGO off like upstream
    # release builds (static binaries, no C toolchain needed).
    export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
    nice -n "$NICE" go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "$@"
  ) || { rm -rf "$tmp"; echo "build.sh: go build failed" >&2; exit 1; }
  # A main package at a module root with a /vN suffix (etcd's
  # go.etcd.io/etcd/server/v3) is named after the element before it.
  if [[ -e $tmp/server ]]; then mv "$tmp/server" "$tmp/etcd"; fi
  chmod 0755 "$tmp" "$tmp"/*
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "build.sh: built $dest in $((SECONDS - start))s" >&2
}

# The trace tests' collector: OTLP in, a JSON-lines file out (tests/rig/otelcol/main.go).
build_otelcol() {
  if ! all_present "$OTELCOL_BIN" otelcol; then
    go_build "$RIG_DIR/otelcol" "$OTELCOL_BIN" "" .
  fi
}
if [[ ${1-} == otelcol ]]; then build_otelcol; print_dirs; exit 0; fi

# Same ldflags as upstream hack/lib/version.sh, so /version reports the
# release instead of v0.0.0-master.
ver=$K8S_VERSION
minor=${ver#v*.}; minor=${minor%%.*}
major=${ver#v}; major=${major%%.*}
ld=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ld+=" -X $pkg.gitVersion=$ver -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done

if ! all_present "$K8S_BIN" etcd kube-apiserver kube-controller-manager kube-scheduler; then
  go_build "$RIG_DIR/k8s" "$K8S_BIN" "$ld" \
    go.etcd.io/etcd/server/v3 \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
fi

# Tests drive the real kubectl: the machine's if it has one, else one built here.
if ! command -v kubectl >/dev/null && ! all_present "$KUBECTL_BIN" kubectl; then
  go_build "$RIG_DIR/k8s" "$KUBECTL_BIN" "$ld" k8s.io/kubernetes/cmd/kubectl
fi

if ! all_present "$MINIO_BIN" minio; then
  go_build "$RIG_DIR/minio" "$MINIO_BIN" "" github.com/minio/minio
fi

# The chart tests drive helm; always the pinned one (a machine's own helm may
# be any version). Ldflags as upstream's Makefile: release version, and the
# Kubernetes version lint and template assume (that of its k8s.io modules).
if ! all_present "$HELM_BIN" helm; then
  helm_k8s="$(mod_version "$RIG_DIR/helm/go.mod" k8s.io/client-go)" # v0.<minor>.<patch>
  helm_k8s_minor=${helm_k8s#v0.}; helm_k8s_minor=${helm_k8s_minor%%.*}
  hl="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  hl+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    hl+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
  done
  go_build "$RIG_DIR/helm" "$HELM_BIN" "$hl" helm.sh/helm/v3/cmd/helm
fi

build_otelcol
print_dirs
