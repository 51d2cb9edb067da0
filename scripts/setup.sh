#!/usr/bin/env bash
# Installs what virtq needs on Debian 12 with Node 20: QEMU from Debian's packages, the npm
# dependencies (lockfile, no install scripts), the build, and the tiny test guest (cached
# outside the repo). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
# virtnetworkd's host plumbing (bridges, DHCP/DNS, NAT); tests run them in network namespaces of their own.
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
# systemd-analyze checks the generated units offline (test/e2e/install-units.test.ts); nothing is started.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The completion tests run the script `virtq completion zsh` prints in a real zsh.
command -v zsh >/dev/null 2>&1 || need+=(zsh)
# The web view's browser test drives Debian's chromium with puppeteer-core (over CDP: no chromedriver, no download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# qemu+ssh:// is tested against a real OpenSSH server the tests start on a loopback port (and the ssh client).
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)

# TLS tests make their CA and certificates with the openssl CLI.
command -v openssl >/dev/null 2>&1 || need+=(openssl)

# The shared QMP socket's tests speak raw QMP to it through socat, as an independent client.
command -v socat >/dev/null 2>&1 || need+=(socat)
# ...and with QEMU's own Python QMP library, fetched from Debian's QEMU source (scripts/fetch-qemu-qmp.sh).
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
# The etcd fleet's tests start a real three-member etcd cluster of their own on loopback ports.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's etcd-server enables and starts its own etcd on 2379/2380; tests start their own, so
# the packaged service is stopped and disabled (nothing to do where systemd is not running).
if [ -d /run/systemd/system ] && systemctl is-enabled etcd >/dev/null 2>&1; then
  as_root systemctl disable --now etcd >/dev/null 2>&1 || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
bash scripts/build-test-guest.sh >/dev/null
bash -c 'node scripts/build-idle-guest.mjs' >/dev/null
bash scripts/fetch-qemu-qmp.sh
echo "setup: ready (qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), node $(node --version))"
