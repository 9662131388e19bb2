#!/usr/bin/env bash
# Builds (once, cached) a Debian root with a current Docker engine, for benchmarks and the optional
# e2e test that compare ferry on that engine with the host's (Debian 12's docker.io is 20.10):
#
#   scripts/engine-root.sh [--suite trixie] [--cache DIR] [--mirror URL]
#
# As root. Prints the root's path (default /tmp/ferry-debian-cache/engine-trixie) on stdout; a second
# run finds it and only prints it. Steps:
#   1. debootstrap --variant=minbase SUITE into DIR/debian-SUITE, unless it is there already (the same
#      cache scripts/check-debian.sh keeps);
#   2. a copy of it, in which `apt-get install -y docker.io docker-cli containerd runc` runs in a chroot with apt's
#      archives in DIR/archives-SUITE (shared with check-debian.sh); the root has a policy-rc.d that
#      forbids starting services, so nothing runs after the install;
#   3. ROOT/.ferry-engine/bin: links to the engine's programs (dockerd, containerd,
#      containerd-shim-runc-v2, docker-proxy, docker, runc), run from the host with the host's C library
#      (bench/bridge.ts --engine-root, test/harness/dockerd.ts binDir). A program of the root that does
#      not start on this host (trixie's runc needs glibc 2.38, Debian 12 has 2.36) is replaced by the
#      host's own, and ROOT/.ferry-engine/versions says which came from where.
#
# Everything happens in a private mount namespace (unshare --mount): the chroot's /proc, /sys, /dev and
# the archives' bind mount vanish with it. The root is built under a temporary name and renamed when
# complete, so a failed run leaves nothing that looks finished. Nothing is ever deleted from the cache.
# Arguments are never evaluated by the shell.
set -euo pipefail

suite=trixie
cache=/tmp/ferry-debian-cache
mirror=http://deb.debian.org/debian
inner=
usage() { echo "usage: $0 [--suite NAME] [--cache DIR] [--mirror URL]" >&2; exit 2; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    --suite) [ "$#" -ge 2 ] || usage; suite=$2; shift 2 ;;
    --cache) [ "$#" -ge 2 ] || usage; cache=$2; shift 2 ;;
    --mirror) [ "$#" -ge 2 ] || usage; mirror=$2; shift 2 ;;
    --inner) [ "$#" -ge 2 ] || usage; inner=$2; shift 2 ;; # the re-run inside the mount namespace
    *) usage ;;
  esac
done
case "$suite" in *[!a-z0-9]* | '') echo "engine-root: --suite must be a Debian codename (letters, digits)" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "engine-root: must run as root (debootstrap, chroot, unshare)" >&2; exit 2; }
cache=$(mkdir -p "$cache" && cd "$cache" && pwd)
root=$cache/engine-$suite
say() { printf 'engine-root: %s\n' "$*" >&2; }

if [ -z "$inner" ]; then
  if [ -x "$root/.ferry-engine/bin/dockerd" ]; then echo "$root"; exit 0; fi
  for tool in debootstrap unshare chroot; do
    command -v "$tool" >/dev/null || { say "$tool is not installed"; exit 2; }
  done
  work=$root.tmp
  rm -rf --one-file-system "$work"
  trap 'rm -rf --one-file-system "$work"' EXIT
  unshare --mount --propagation private -- "$0" --inner "$work" --suite "$suite" --cache "$cache" --mirror "$mirror" >&2
  mv "$work" "$root"
  trap - EXIT
  echo "$root"
  exit 0
fi
work=$inner

base=$cache/debian-$suite
if [ ! -d "$base" ]; then
  say "debootstrap --variant=minbase $suite into $base (once)"
  rm -rf "$base.tmp"
  mkdir -p "$cache/debs"
  debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$base.tmp" "$mirror"
  mv "$base.tmp" "$base"
fi

say "copy of $base in $work"
cp -a --reflink=auto "$base" "$work"
cp /etc/resolv.conf "$work/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
chmod 755 "$work/usr/sbin/policy-rc.d"
mount -t proc proc "$work/proc"
mount -t sysfs sysfs "$work/sys"
mount --rbind /dev "$work/dev"
mount -t tmpfs -o mode=755 run "$work/run"
mkdir -p "$cache/archives-$suite/partial"
mount --bind "$cache/archives-$suite" "$work/var/cache/apt/archives"
rm -f "$work/etc/apt/apt.conf.d/docker-clean"
in_root() { chroot "$work" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
say "apt-get install -y docker.io docker-cli containerd runc (in the chroot)"
in_root apt-get update
in_root apt-get install -y --no-install-recommends docker.io docker-cli containerd runc
umount "$work/var/cache/apt/archives"
umount -R "$work/dev" "$work/sys" "$work/proc" "$work/run"

# The programs, as the host runs them: the root's where they start here, else the host's.
bin=$work/.ferry-engine/bin
mkdir -p "$bin"
: >"$work/.ferry-engine/versions"
starts_here() { [ -x "$1" ] && ! ldd "$1" 2>&1 | grep -q 'not found'; } # every library (and symbol version) it needs is on this host
version_of() { "$1" "$2" 2>&1 | head -n 1 || true; }
link() { # link NAME PATH-IN-ROOT VERSION-ARG
  local name=$1 own=$root${2} probe=$work${2} host
  if starts_here "$probe"; then
    ln -s "$own" "$bin/$name"
    printf '%s\t%s\t%s\n' "$name" "$own" "$(version_of "$probe" "$3")" >>"$work/.ferry-engine/versions"
    return 0
  fi
  host=$(command -v "$name") || { say "$name of the root does not start on this host, and the host has none"; return 1; }
  say "$name of the root does not start on this host ($(ldd "$probe" 2>&1 | grep 'not found' | head -n 1)): the host's $host instead"
  ln -s "$host" "$bin/$name"
  printf '%s\t%s (host)\t%s\n' "$name" "$host" "$(version_of "$host" "$3")" >>"$work/.ferry-engine/versions"
}
link dockerd /usr/sbin/dockerd --version
link docker-proxy /usr/sbin/docker-proxy --version
link docker /usr/bin/docker --version
link containerd /usr/bin/containerd --version
link containerd-shim-runc-v2 /usr/bin/containerd-shim-runc-v2 -v
link runc /usr/sbin/runc --version
cat "$work/.ferry-engine/versions" >&2
