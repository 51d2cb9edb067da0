#!/usr/bin/env bash
# QEMU's own Python QMP library (`qemu.qmp`, the package PyPI ships as qemu-qmp) for the shared
# QMP socket's tests: a client nobody here wrote. PyPI is not reachable from CI and Debian 12 has
# no binary package of it, so it is taken from Debian's source package of the QEMU we run
# (qemu_7.2+dfsg.orig.tar.xz, checked against its SHA-256) and unpacked into the cache, never
# into the repo. Idempotent: a second run only checks.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/virtq/qemu-qmp"
marker="$cache/python/qemu/qmp/qmp_client.py"
[ -f "$marker" ] && exit 0

url="http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2+dfsg.orig.tar.xz"
sha256="91aca71520040edc40b8d437aa3004dae614f58e286cf653ee8996c07af2962f"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsS --retry 3 -o "$tmp/src.tar.xz" "$url"
echo "$sha256  $tmp/src.tar.xz" | sha256sum -c --quiet -
mkdir -p "$tmp/out"
tar -xJf "$tmp/src.tar.xz" -C "$tmp/out" --strip-components=1 qemu-7.2.0/python/qemu/qmp
rm -rf "$cache.new"
mkdir -p "$cache.new"
mv "$tmp/out/python" "$cache.new/python"
rm -rf "$cache"
mv "$cache.new" "$cache"
echo "fetch-qemu-qmp: qemu.qmp from QEMU 7.2's Debian source in $cache/python"
