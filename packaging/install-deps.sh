#!/usr/bin/env bash
# Installs, from Debian's packages, what umlkit needs to build, run its demo
# and run its tests (the real UML peers included). Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: run as root (sudo)" >&2; exit 1; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  user-mode-linux uml-utilities vde2 busybox-static e2fsprogs fuse2fs fuse \
  iproute2 libpcap-dev telnet inetutils-telnetd debootstrap uidmap make gcc git ca-certificates \
  rpm zsh fish man-db tmux screen slirp iperf3 systemd dbus-daemon dbus-user-session cpio zstd xz-utils fdisk \
  >/tmp/umlkit-apt.log 2>&1 || { tail -50 /tmp/umlkit-apt.log; exit 1; }
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps.sh: Go 1.26 is needed (https://go.dev/dl, into /usr/local/go); Debian 12's golang-go is too old" >&2
  exit 1
fi
