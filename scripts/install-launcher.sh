#!/usr/bin/env bash
# Put `prodflow` (and `uv`) where a fresh login shell finds them, so the README's commands work as written:
#   root:        /usr/local/bin (on the PATH /etc/profile gives root)
#   other users: ~/.local/bin (Debian's default ~/.profile puts it on PATH when it exists at login)
# `prodflow` is a small launcher: it runs the prodflow of the checkout holding the current folder, else of the
# checkout that installed it last. Idempotent; never replaces a `prodflow` or `uv` it did not write.
# PRODFLOW_BIN_DIR chooses another folder. Called by scripts/bootstrap.sh (so by up.sh and test.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
if [ -n "${PRODFLOW_BIN_DIR:-}" ]; then
  bin="$PRODFLOW_BIN_DIR"
elif [ "$(id -u)" = 0 ]; then
  bin=/usr/local/bin
else
  bin="$HOME/.local/bin"
fi
marker="# prodflow launcher, written by scripts/install-launcher.sh"
quoted_root="'${root//\'/\'\\\'\'}'"  # single-quoted for sh

mkdir -p "$bin"
launcher="$(cat <<EOF
#!/bin/sh
$marker of a prodflow checkout.
# Runs the prodflow of the checkout that holds the current folder, else of the one that installed this launcher.
dir=\$(pwd -P)
while :; do
  if [ -x "\$dir/.venv/bin/prodflow" ] && [ -f "\$dir/scripts/install-launcher.sh" ]; then
    exec "\$dir/.venv/bin/prodflow" "\$@"
  fi
  [ "\$dir" = / ] && break
  dir=\$(dirname "\$dir")
done
installed=$quoted_root
if [ -x "\$installed/.venv/bin/prodflow" ]; then
  exec "\$installed/.venv/bin/prodflow" "\$@"
fi
echo "prodflow: no prodflow checkout here, nor at \$installed: run ./scripts/up.sh in a checkout" >&2
exit 127
EOF
)"

target="$bin/prodflow"
if [ -e "$target" ] && ! grep -qF "$marker" "$target"; then
  echo "install-launcher: $target exists and is not prodflow's launcher; left alone" >&2
elif [ ! -e "$target" ] || [ "$(cat "$target")" != "$launcher" ]; then
  printf '%s\n' "$launcher" > "$target.tmp.$$"
  chmod 755 "$target.tmp.$$"
  mv -f "$target.tmp.$$" "$target"
  echo "install-launcher: $target runs prodflow (this checkout: $root)" >&2
fi

# uv: bootstrap installs it with pip --user, into ~/.local/bin, which root's login PATH lacks.
uv_path="$(command -v uv || true)"
if [ -n "$uv_path" ] && [ ! -e "$bin/uv" ] && [ ! -L "$bin/uv" ] && [ "$(dirname "$uv_path")" != "$bin" ]; then
  case "$uv_path" in
    /usr/bin/uv | /bin/uv) ;;  # already on every login PATH
    *)
      ln -s "$uv_path" "$bin/uv"
      echo "install-launcher: $bin/uv -> $uv_path" >&2
      ;;
  esac
fi
