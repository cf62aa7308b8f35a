#!/usr/bin/env bash
# make setup-otb — OTB interop, optional. Idempotent; a second run takes seconds.
#
# Debian ships OTB 8.1 (libraries, applications, QGIS descriptors) without its Python
# API, so pyotb cannot start. This script:
#   1. installs Debian's OTB and what building the API needs (only missing packages);
#   2. fetches the Debian source package `otb` matching the installed OTB (enabling
#      Debian's deb-src repositories if needed) and keeps only Modules/Wrappers/SWIG;
#   3. builds `_otbApplication.so` + `otbApplication.py` with otb_wrapper/CMakeLists.txt
#      into build/otb-python, and puts that folder on .venv's path with a .pth file;
#   4. installs pyotb (requirements-otb.txt) into .venv;
#   5. enables QGIS's OTB provider (otb:* algorithms) in the isolated profile build/profile.
# Nothing but Debian packages is downloaded (plus pyotb from the Python package index).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV_PYTHON="${VENV:-.venv}/bin/python"
SYSTEM_PYTHON=/usr/bin/python3
SOURCE_DIR=build/otb-src
BUILD_DIR=build/otb-wrapper-build
INSTALL_DIR=build/otb-python
PROFILE_DIR=build/profile
PTH_NAME=otbtf_qgis_otb.pth
OTB_PACKAGES=(otb-bin libotb-apps libotb-dev otb-qgis)
BUILD_PACKAGES=(swig cmake g++ python3-dev python3-numpy python3-pyqt5 libtinyxml-dev libfftw3-dev xz-utils)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "setup-otb: $*"; }

# Run a noisy command quietly; show its output only when it fails.
quietly() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup-otb: failed: $* (full log: $log)" >&2
    return 1
  fi
}

[ -x "$VENV_PYTHON" ] || { echo "setup-otb: $VENV_PYTHON is missing; run make setup first" >&2; exit 1; }

# 1. Debian packages.
scripts/install-system-packages.sh "${OTB_PACKAGES[@]}" "${BUILD_PACKAGES[@]}"
otb_version="$(dpkg-query -W -f='${source:Version}' libotb-dev)"

# 2. The wrapper's sources, from the source package of the installed version.
if [ "$(cat "$SOURCE_DIR/VERSION" 2>/dev/null)" != "$otb_version" ]; then
  if ! grep -q '^Package: otb$' <<<"$(apt-cache showsrc otb 2>/dev/null)"; then
    as_root "$SYSTEM_PYTHON" scripts/enable_deb_src.py
    as_root apt-get update -qq
  fi
  # Another OTB version means other sources and headers: start the build over too.
  rm -rf "$SOURCE_DIR" "$BUILD_DIR" && mkdir -p "$SOURCE_DIR"
  say "downloading Debian source package otb=$otb_version"
  (cd "$SOURCE_DIR" && quietly download.log apt-get source --download-only "otb=$otb_version")
  say "extracting Modules/Wrappers/SWIG"
  shopt -s nullglob
  upstream=("$SOURCE_DIR"/otb_*.orig.tar.{xz,gz,bz2})
  debian=("$SOURCE_DIR"/otb_*.debian.tar.{xz,gz,bz2})
  shopt -u nullglob
  [ ${#upstream[@]} -eq 1 ] && [ ${#debian[@]} -eq 1 ] || {
    echo "setup-otb: unexpected source package layout in $SOURCE_DIR" >&2; exit 1; }
  tar -xf "${upstream[0]}" -C "$SOURCE_DIR" Modules/Wrappers/SWIG
  # Apply Debian's own patches to those files, if any touch them.
  if grep -q '^debian/patches/series$' <<<"$(tar -tf "${debian[0]}")"; then
    tar -xf "${debian[0]}" -C "$SOURCE_DIR" debian/patches
    while read -r patch_name _; do
      case "$patch_name" in ''|'#'*) continue ;; esac
      if grep -q '^+++ [^/]*/Modules/Wrappers/SWIG/' "$SOURCE_DIR/debian/patches/$patch_name"; then
        say "applying Debian patch $patch_name"
        patch -s -p1 -d "$SOURCE_DIR" <"$SOURCE_DIR/debian/patches/$patch_name"
      fi
    done <"$SOURCE_DIR/debian/patches/series"
  fi
  # Only the wrapper is needed: drop the 700 MB of tarballs.
  rm -rf "$SOURCE_DIR/debian" "$SOURCE_DIR"/otb_*.tar.*
  echo "$otb_version" >"$SOURCE_DIR/VERSION"
fi

# 3. Build and install the Python API (incremental: a no-op when up to date).
mkdir -p "$BUILD_DIR"
quietly "$BUILD_DIR/configure.log" cmake -S otb_wrapper -B "$BUILD_DIR" \
  -DOTB_SWIG_DIR="$ROOT/$SOURCE_DIR/Modules/Wrappers/SWIG" \
  -DPython3_EXECUTABLE="$SYSTEM_PYTHON" -DCMAKE_INSTALL_PREFIX="$ROOT/$INSTALL_DIR"
if [ ! -f "$BUILD_DIR/install_manifest.txt" ]; then say "building OTB's Python API (about a minute)"; fi
quietly "$BUILD_DIR/build.log" cmake --build "$BUILD_DIR" -j "$(nproc)"
quietly "$BUILD_DIR/install.log" cmake --install "$BUILD_DIR"

site_packages="$("$VENV_PYTHON" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
if [ "$(cat "$site_packages/$PTH_NAME" 2>/dev/null)" != "$ROOT/$INSTALL_DIR" ]; then
  echo "$ROOT/$INSTALL_DIR" >"$site_packages/$PTH_NAME"
fi

# 4. pyotb.
stamp="$(dirname "$VENV_PYTHON")/../.requirements-otb-stamp"
if [ ! -f "$stamp" ] || [ requirements-otb.txt -nt "$stamp" ]; then
  "$VENV_PYTHON" -m pip install -q --disable-pip-version-check -r requirements-otb.txt
  touch "$stamp"
fi

# 5. QGIS's OTB provider in the isolated profile used by scripts/qgis_process.
"$SYSTEM_PYTHON" scripts/configure_qgis_otb.py "$PROFILE_DIR" --otb-folder /usr >/dev/null

# Check the result the way users will use it.
PYOTB_LOGGER_LEVEL=WARNING "$VENV_PYTHON" - <<'EOF'
import otbApplication
import pyotb

apps = otbApplication.Registry.GetAvailableApplications()
assert "BandMath" in apps, f"OTB applications not found (OTB_APPLICATION_PATH): {apps}"
print(f"setup-otb: ready: OTB {otbApplication.__file__.rsplit('/', 1)[0]}, {len(apps)} applications, "
      f"pyotb {pyotb.__version__}; QGIS provider otb enabled in build/profile")
EOF
