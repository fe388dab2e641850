#!/usr/bin/env bash
# Installs what kiln needs on a Debian machine, only what is missing, then the npm dependencies
# when node_modules is missing or older than package-lock.json. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

# command → Debian package that provides it
declare -A NEED=(
  [nats-server]=nats-server
  [bwrap]=bubblewrap
  [rpmbuild]=rpm
  [rpm2cpio]=rpm2cpio
  [bsdtar]=libarchive-tools
  [createrepo_c]=createrepo-c
  [dnf]=dnf
  [rpmlint]=rpmlint
  [unshare]=util-linux
  [ip]=iproute2
  # source services' own network namespace (sandbox/netns.ts)
  [pasta]=passt
  [nsenter]=util-linux
  [git]=git
  [curl]=curl
  [xz]=xz-utils
  [bzip2]=bzip2
  [zstd]=zstd
  [cpio]=cpio
  [perl]=perl
  [gcc]=gcc
  [make]=make
  # -debuginfo packages: rpm's find-debuginfo and the eu-strip it calls
  [find-debuginfo]=debugedit
  [eu-strip]=elfutils
)
missing=()
for cmd in "${!NEED[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" ]]; then missing+=("${NEED[$cmd]}"); fi
done
# obs-build is the oracle for spec parsing and dependency expansion tests.
[[ -f /usr/lib/obs-build/Build.pm ]] || missing+=(obs-build)

if ((${#missing[@]})); then
  echo "kiln setup: installing ${missing[*]}" >&2
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "kiln setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get update -qq >/dev/null || ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "kiln setup: apt-get could not install: ${missing[*]}" >&2
    exit 1
  fi
fi

if ! command -v node >/dev/null 2>&1; then
  echo "kiln setup: Node.js 20.19 or newer is required (node not found)" >&2
  exit 1
fi
# package.json's engines: Node 20.19 or newer (tsx and require(esm) behaviour kiln relies on).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "kiln setup: Node.js 20.19 or newer is required (found $(node --version))" >&2
  exit 1
fi

if [[ ! -d node_modules || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "kiln setup: npm ci" >&2
  if ! npm ci --no-audit --no-fund --loglevel=error >&2; then
    echo "kiln setup: npm ci failed" >&2
    exit 1
  fi
fi
