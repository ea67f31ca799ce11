#!/usr/bin/env bash
# Set-up for codelm-lab on Debian 12: the Debian packages (as root, or through sudo), a Python venv
# in .venv with a pinned Snakemake 9 and the readers the tests use, and the C build in build/.
# Safe to run again: it installs only what is missing and rebuilds what changed.
#   bash workflows/setup.sh            # everything
#   bash workflows/setup.sh --no-apt   # skip apt-get (packages already there)
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES="build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libhdf5-dev hdf5-tools gnuplot-nox
  python3 python3-venv python3-dev dpkg-dev apt-utils ca-certificates git"
PY_PACKAGES="snakemake==9.27.1 h5py==3.16.0 numpy==2.4.6 pytest==9.2.0 pyyaml==6.0.3 jsonschema==4.25.1"

apt=1
[ "${1:-}" = "--no-apt" ] && apt=0

if [ $apt = 1 ]; then
  missing=$(dpkg-query -W -f='${Package} ${Status}\n' $DEB_PACKAGES 2>/dev/null | grep -v 'install ok installed' | cut -d' ' -f1 || true)
  for p in $DEB_PACKAGES; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  # lab-corpus asks the archive (apt-cache policy, apt-get download): the package lists must exist
  # even when every package is installed already.
  if [ -n "${missing// /}" ] || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  if [ -n "${missing// /}" ]; then
    echo "setup: installing Debian packages: $missing"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

# Debian's own python3 (3.11 on Debian 12), so the venv does not depend on anything hand-installed.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  echo "setup: creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
if ! .venv/bin/python -m pip show -q snakemake h5py numpy pytest pyyaml jsonschema >/dev/null 2>&1 ||
   [ "$(.venv/bin/python -m pip freeze 2>/dev/null | grep -ci '^snakemake==9.27.1$')" != 1 ]; then
  echo "setup: installing $PY_PACKAGES"
  .venv/bin/python -m pip install -q --disable-pip-version-check $PY_PACKAGES
fi

echo "setup: building the C tools in build/"
cmake -S csrc -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" 2>&1 | grep -E 'error|warning' || true
test -x build/lab-train -o ! -f csrc/tools/lab-train.c || { echo "setup: build failed" >&2; exit 1; }
echo "setup: done ($(.venv/bin/snakemake --version | sed 's/^/snakemake /'))"
