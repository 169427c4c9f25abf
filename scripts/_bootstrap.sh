# Shared set-up for scripts/lab and scripts/test: a project venv with the package installed.
# Sourced, not run. Installs only what is missing, so a second run is quick.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SIRAY_VENV:-$ROOT/.venv}"
cd "$ROOT"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root (or sudo) to run: $*" >&2; return 1; fi
}

APT_UPDATED=0
apt_install() {  # apt_install PACKAGE... : Debian packages, installed once
  command -v apt-get >/dev/null || { echo "error: install $* with your package manager" >&2; return 1; }
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed"'
# The JS bundle is built by npm while the package installs (hatch-jupyter-builder).
command -v npm >/dev/null || apt_install nodejs npm

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || { apt_install python3-venv && "$PYTHON" -m venv "$VENV"; }
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

install_project() {  # install_project EXTRA : the package (editable) with an extra
  "${PIP[@]}" install -e ".[$1]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import siray_widgets, pathlib; \
p = pathlib.Path(siray_widgets.__file__).parent / 'static' / 'widget.js'; \
assert p.stat().st_size > 0, 'the JS bundle was not built'"
}
