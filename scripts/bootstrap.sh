# Sourced by scripts/up.sh and scripts/test.sh: make a fresh machine ready (idempotent, quiet when ready).
#   - uv (bootstrapped with pip), the workspace's virtual environment from uv.lock
#   - Node.js for the embedded CouchDB-API server (PouchDB Server, installed into .local/ on first use)
#   - the Debian packages listed in scripts/apt-packages.txt, when running as root
#   - `prodflow` (a launcher) and `uv` on the PATH of a fresh login shell (scripts/install-launcher.sh)
set -euo pipefail

_pf_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PRODFLOW_TOOLS_DIR="${PRODFLOW_TOOLS_DIR:-$_pf_root/.local}"
export PATH="$HOME/.local/bin:$PATH"

_pf_apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || { echo "bootstrap: cannot install $* (not root or no apt-get)" >&2; return 0; }
  if [ -z "${_PF_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; _PF_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

_pf_missing_apt=()
while read -r pkg; do
  case "$pkg" in ''|'#'*) continue ;; esac
  dpkg -s "$pkg" >/dev/null 2>&1 || _pf_missing_apt+=("$pkg")
done < "$_pf_root/scripts/apt-packages.txt"
command -v node >/dev/null || _pf_missing_apt+=(nodejs npm)
command -v git >/dev/null || _pf_missing_apt+=(git)
if [ "${#_pf_missing_apt[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${_pf_missing_apt[*]}" >&2
  _pf_apt_install "${_pf_missing_apt[@]}"
fi

if ! command -v uv >/dev/null; then
  echo "bootstrap: installing uv with pip" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
cd "$_pf_root"
# Bytecode at install: where PYTHONDONTWRITEBYTECODE is set (as on CI) every interpreter start otherwise compiled
# its imports again (a service ~3 s of CPU, a CLI call ~1 s).
uv sync --locked --quiet --compile-bytecode
bash "$_pf_root/scripts/install-launcher.sh" || echo "bootstrap: could not put prodflow on the login PATH" >&2
