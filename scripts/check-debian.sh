#!/usr/bin/env bash
# Checks that the README's quick start works as written on a fresh Debian (default: 13, trixie):
#
#   scripts/check-debian.sh [--suite trixie|bookworm] [--cache DIR] [--mirror URL] [--node-from-host] [--extra-ca FILE]
#
# As root. Steps, each reported PASS or FAIL, then a summary line (exit 0 only when all passed):
#   1. debootstrap --variant=minbase SUITE (cached in --cache, default /tmp/ferry-debian-cache, keyed by
#      the suite: the first run takes ~1.5 min, later ones copy it) into a fresh temporary root;
#   2. chroot: `apt-get update && apt-get install -y $(cat .ci/packages.txt)`, every name as it stands
#      (no service is started: the root gets a policy-rc.d that forbids it);
#   3. the suite's own `nodejs` and `npm` (apt-get install nodejs npm), then Node.js >= 20 is asked for;
#      --node-from-host copies this host's node (and its npm) instead, for Debian 12, whose nodejs is 18;
#   4. a copy of this checkout (no node_modules, dist, build): `npm ci && npm run build`;
#   5. `bin/ferry --version` prints package.json's version;
#   6. `bin/ferry agent` in a fresh network namespace (unshare --net), with its own state directory and
#      sockets under /tmp, for a few seconds: `bin/ferry status` must reach it through its API socket.
#
# --extra-ca FILE: a CA certificate (PEM) the root trusts besides Debian's, for a network whose HTTPS goes
# through an intercepting proxy (npm's registry is reached over HTTPS); given to Node.js as NODE_EXTRA_CA_CERTS.
#
# Everything happens in a private mount namespace (unshare --mount): /proc, /sys, /dev and /run of the
# chroot vanish with it; the temporary root is removed at the end, even on failure. Downloads are
# cached (apt's archives and npm's cache under --cache), so a second run downloads almost nothing.
# Arguments are never evaluated by the shell.
set -euo pipefail

suite=trixie
cache=/tmp/ferry-debian-cache
mirror=http://deb.debian.org/debian
node_from_host=0
extra_ca=
inner=
usage() { echo "usage: $0 [--suite NAME] [--cache DIR] [--mirror URL] [--node-from-host] [--extra-ca FILE]" >&2; exit 2; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    --suite) [ "$#" -ge 2 ] || usage; suite=$2; shift 2 ;;
    --cache) [ "$#" -ge 2 ] || usage; cache=$2; shift 2 ;;
    --mirror) [ "$#" -ge 2 ] || usage; mirror=$2; shift 2 ;;
    --node-from-host) node_from_host=1; shift ;;
    --extra-ca) [ "$#" -ge 2 ] || usage; extra_ca=$(readlink -f -- "$2"); [ -f "$extra_ca" ] || { echo "check-debian: --extra-ca $2 is not a file" >&2; exit 2; }; shift 2 ;;
    --inner) [ "$#" -ge 2 ] || usage; inner=$2; shift 2 ;; # the re-run inside the mount namespace
    *) usage ;;
  esac
done
case "$suite" in *[!a-z0-9]* | '') echo "check-debian: --suite must be a Debian codename (letters, digits)" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "check-debian: must run as root (debootstrap, chroot, unshare)" >&2; exit 2; }
for tool in debootstrap unshare chroot; do
  command -v "$tool" >/dev/null || { echo "check-debian: $tool is not installed" >&2; exit 2; }
done
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=$(mkdir -p "$cache" && cd "$cache" && pwd)

# The work happens in a private mount namespace; this outer part only removes the temporary root.
if [ -z "$inner" ]; then
  work=$(mktemp -d /tmp/ferry-debian-XXXXXX)
  trap 'rm -rf --one-file-system "$work"' EXIT
  set +e
  args=(--inner "$work" --suite "$suite" --cache "$cache" --mirror "$mirror")
  [ "$node_from_host" = 1 ] && args+=(--node-from-host)
  [ -n "$extra_ca" ] && args+=(--extra-ca "$extra_ca")
  unshare --mount --propagation private -- "$0" "${args[@]}"
  rc=$?
  set -e
  exit "$rc"
fi
work=$inner
root=$work/root
log=$work/log
results=()
failed=0
say() { printf 'check-debian: %s\n' "$*" >&2; }
step() { # step NAME COMMAND...: runs it, output to the log, records PASS/FAIL
  local name=$1; shift
  say "$name ..."
  local t0=$SECONDS
  if "$@" >>"$log" 2>&1; then
    results+=("PASS  $name ($((SECONDS - t0)) s)")
    return 0
  fi
  results+=("FAIL  $name ($((SECONDS - t0)) s)")
  failed=1
  say "FAIL $name; the log's tail:"
  tail -n 25 "$log" >&2
  return 1
}
summary() {
  printf '\n== ferry quick start on Debian %s (%s) ==\n' "$suite" "$(date -u +%Y-%m-%dT%H:%MZ)"
  printf '%s\n' "${results[@]}"
  if [ "$failed" = 0 ]; then echo "PASS: all ${#results[@]} steps"; else echo "FAIL"; fi
}
trap summary EXIT
: >"$log"
root_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
[ -n "$extra_ca" ] && root_env+=(NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/check-debian-extra.crt)
in_root() { chroot "$root" /usr/bin/env -i "${root_env[@]}" "$@"; }

base=$cache/debian-$suite
debootstrap_base() {
  [ -d "$base" ] && return 0
  rm -rf "$base.tmp"
  mkdir -p "$cache/debs"
  debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$base.tmp" "$mirror"
  mv "$base.tmp" "$base"
}
step "debootstrap --variant=minbase $suite (cached in $base)" debootstrap_base || exit 1

prepare_root() {
  cp -a --reflink=auto "$base" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=755 run "$root/run"
  mkdir -p "$cache/archives-$suite/partial" "$cache/npm" "$root/root/.npm"
  mount --bind "$cache/archives-$suite" "$root/var/cache/apt/archives"
  mount --bind "$cache/npm" "$root/root/.npm"
  rm -f "$root/etc/apt/apt.conf.d/docker-clean"
  if [ -n "$extra_ca" ]; then mkdir -p "$root/usr/local/share/ca-certificates"; cp "$extra_ca" "$root/usr/local/share/ca-certificates/check-debian-extra.crt"; fi
}
step "a fresh root from the cached base, /proc /sys /dev /run mounted" prepare_root || exit 1

packages() { grep -v '^[[:space:]]*\(#\|$\)' "$repo/.ci/packages.txt"; }
# The README's line, word for word: apt-get update && apt-get install -y $(cat .ci/packages.txt)
# shellcheck disable=SC2046
step "apt-get install -y \$(cat .ci/packages.txt) ($(packages | wc -l) packages)" \
  in_root sh -c 'apt-get update && apt-get install -y "$@"' sh $(packages) || exit 1

install_node() {
  if [ "$node_from_host" = 1 ]; then
    local node npm_dir
    node=$(command -v node); npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
    cp "$node" "$root/usr/local/bin/node"
    mkdir -p "$root/usr/local/lib/node_modules"
    cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  else
    in_root apt-get install -y nodejs npm
  fi
  in_root node -e 'const m = Number(process.versions.node.split(".")[0]); console.log("node", process.version); if (m < 20) { console.error("Node.js " + process.version + " is older than 20"); process.exit(1) }'
  in_root npm --version
}
step "Node.js >= 20 and npm ($([ "$node_from_host" = 1 ] && echo "this host's" || echo "$suite's nodejs and npm"))" install_node || exit 1

copy_repo() {
  mkdir -p "$root/opt/ferry"
  tar -C "$repo" --exclude=./node_modules --exclude=./dist --exclude=./build --exclude=./.git -cf - . | tar -C "$root/opt/ferry" -xf -
}
step "a copy of the checkout in /opt/ferry" copy_repo || exit 1
step "npm ci && npm run build" in_root sh -c 'cd /opt/ferry && npm ci --no-audit --no-fund && npm run build' || exit 1

want=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$repo/package.json" | head -n 1)
check_version() {
  local got
  got=$(in_root /opt/ferry/bin/ferry --version)
  echo "bin/ferry --version: $got"
  [ "$got" = "$want" ]
}
step "bin/ferry --version prints $want" check_version || exit 1

# The agent in a fresh network namespace (it vanishes with the unshare'd shell), its own paths under /tmp.
# shellcheck disable=SC2016
agent_script='
set -eu
ip link set lo up
d=$(mktemp -d /tmp/ferry-agent-XXXXXX)
/opt/ferry/bin/ferry agent --state-dir "$d/state" --plugin-dir "$d/plugins" --api-socket "$d/api.sock" \
  --docker-host "unix://$d/no-docker.sock" >"$d/agent.log" 2>&1 &
agent=$!
ok=1
for _ in $(seq 1 100); do
  if FERRY_API_SOCKET="$d/api.sock" /opt/ferry/bin/ferry status >"$d/status" 2>&1; then ok=0; break; fi
  kill -0 "$agent" 2>/dev/null || break
  sleep 0.2
done
cat "$d/status"
[ -S "$d/plugins/ferry.sock" ] && echo "plugin socket: $d/plugins/ferry.sock" || { echo "no plugin socket"; ok=1; }
kill -TERM "$agent" 2>/dev/null || true
wait "$agent" || true
echo "--- agent log (tail)"; tail -n 15 "$d/agent.log"
rm -rf "$d"
exit "$ok"
'
step "bin/ferry agent in a fresh network namespace answers bin/ferry status" in_root unshare --net -- sh -c "$agent_script" || exit 1
exit 0
