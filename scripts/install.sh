#!/usr/bin/env bash
# Installs virtq as a host service (docs/guide-install.md): the npm package, packed from this clone
# and installed globally (virtq, virtqemud, virtq-shim and the other daemons on PATH), then one
# systemd service per daemon with socket units for its read-write, read-only and admin sockets,
# enabled when systemd runs the host. Run from an installed package
# ($(npm root -g)/virtq/scripts/install.sh) it installs the units only. Safe to run again.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: bash scripts/install.sh [options]
  --prefix DIR     npm prefix to install the package into (default: npm's global prefix)
  --bin-dir DIR    where the binaries are, for the units (default: PREFIX/bin)
  --unit-dir DIR   where the unit files go (default: /etc/systemd/system)
  --no-units       install the package only
  --units-only     install the units only (the binaries are already installed)
  --no-enable      write the units but do not enable or start them
  --no-build       pack dist/ as it is (already built)
TXT
}

prefix='' bin_dir='' unit_dir=/etc/systemd/system package=1 units=1 enable=1 build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --unit-dir) unit_dir="$2"; shift 2 ;;
    --no-units) units=0; shift ;;
    --units-only) package=0; shift ;;
    --no-enable) enable=0; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo env PATH="$PATH" "$@"; fi; }
# Runs a command as root unless DIR (or the nearest directory above it that exists) is writable.
for_dir() {
  local d="$1"; shift
  while [ ! -e "$d" ]; do d="$(dirname "$d")"; done
  if [ -w "$d" ]; then "$@"; else as_root "$@"; fi
}
here="$(cd "$(dirname "$0")/.." && pwd)"
node_bin="$(command -v node)"
npm_prefix=(); [ -n "$prefix" ] && npm_prefix=(--prefix "$prefix")

if [ -f "$here/scripts/build.mjs" ]; then
  # A clone: build, pack and install the tarball (what `npm install -g virtq-*.tgz` does for anyone).
  pkg="$(npm root -g "${npm_prefix[@]}")/virtq"
  if [ "$package" = 1 ]; then
    [ "$build" = 0 ] || (cd "$here" && npm run --silent build)
    same=1
    for f in "$here"/dist/bin/*.js "$here/package.json"; do
      cmp -s "$f" "$pkg/${f#"$here"/}" || { same=0; break; }
    done
    if [ "$same" = 1 ]; then
      echo "install.sh: this build of virtq is installed already"
    else
      tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
      tarball="$(cd "$here" && npm pack --ignore-scripts --silent --pack-destination "$tmp" | tail -1)"
      for_dir "$(npm prefix -g "${npm_prefix[@]}")" npm install -g "${npm_prefix[@]}" --no-audit --no-fund --loglevel=error "$tmp/$tarball"
    fi
  else
    pkg="$here"
  fi
else
  # An installed package: its binaries are installed already.
  pkg="$here"; package=0
fi
[ -n "$bin_dir" ] || bin_dir="$(npm prefix -g "${npm_prefix[@]}")/bin"

if [ "$package" = 1 ]; then
  echo "install.sh: virtq $(node -p "require('$pkg/package.json').version") is installed in $bin_dir"
  case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "install.sh: $bin_dir is not on PATH; add it: export PATH=\"$bin_dir:\$PATH\"" ;; esac
fi
# The launchers check their startup snapshot against markers beside it without forking `stat`
# (scripts/launcher-head.mjs; npm pack drops them): made here for the node that runs the units, and
# only for the blob named after that very binary (size-mtime-inode), so none points it at a stale blob.
key="$(stat -L -c %s-%Y-%i -- "$node_bin")"
for b in "$pkg"/dist/bin/virtq-"$key".blob "$pkg"/dist/bin/virtqemud-"$key".blob; do
  [ -f "$b" ] || continue
  for_dir "$pkg/dist/bin" ln -sfn "$(readlink -f -- "$node_bin")" "$b.node"
  for_dir "$pkg/dist/bin" touch -r "$node_bin" "$b.mtime"
done
[ "$units" = 1 ] || exit 0

for d in "$bin_dir"/virtqemud "$bin_dir"/virtq-shim; do
  [ -x "$d" ] || { echo "install.sh: $d is missing: install the package first (or give --bin-dir)" >&2; exit 1; }
done
written="$(for_dir "$unit_dir" "$node_bin" "$pkg/dist/lib/scripts/install-units.js" --bin-dir "$bin_dir" --unit-dir "$unit_dir" --node "$node_bin")"
mapfile -t names <<<"$written"
echo "install.sh: wrote ${#names[@]} units to $unit_dir"

sockets=() services=()
for n in "${names[@]}"; do case "$n" in *.socket) sockets+=("$n") ;; *.service) services+=("$n") ;; esac; done
if [ "$enable" = 0 ]; then
  exit 0
elif [ ! -d /run/systemd/system ]; then
  echo "install.sh: systemd is not running this host; once it does: systemctl daemon-reload && systemctl enable --now ${sockets[*]} && systemctl enable ${services[*]}"
  exit 0
fi
as_root systemctl daemon-reload
as_root systemctl enable --now "${sockets[@]}"
# Started at boot too (autostart VMs, networks and pools), and on the first client before that.
as_root systemctl enable "${services[@]}"
echo "install.sh: sockets listening under /run/virtq; try: virtq list"
