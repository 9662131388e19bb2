#!/bin/sh
# Prepare the mount namespace that `ip netns exec` made for a test Docker
# engine, then run a program in it (dockerd, or a placeholder that keeps the
# namespace alive while dockerd restarts):
#
#   ip netns exec NS sh test/harness/dockerd-in-netns.sh [--tmpfs DIR]... PROGRAM [ARG...]
#
# - `ip netns exec` remounts /sys for the namespace, which hides
#   /sys/fs/cgroup. The cgroup hierarchies are mounted again, the same ones the
#   host has (read from /proc/self/cgroup).
# - containerd keeps its shims' sockets in the fixed /run/containerd/s and
#   creates /opt/containerd: both get a private tmpfs so nothing is left on the
#   host (an empty /run/containerd directory is created once as mount point).
# - Each `--tmpfs DIR` (the engine's data-root) gets a private tmpfs: the vfs
#   storage driver copies the image for every container, three times faster
#   in memory than on this disk, and it all vanishes with the namespace.
#
# All mounts live only in that private mount namespace and vanish with its last
# process. `-n` keeps mount(8) from writing /run/mount/utab on the host.
# Arguments are never interpreted by the shell: the script ends in exec "$@".
set -eu

usage() {
  echo "usage: $0 [--tmpfs /DIR]... PROGRAM [ARG...]" >&2
  exit 2
}

while [ "$#" -ge 2 ] && [ "$1" = --tmpfs ]; do
  case "$2" in /*) ;; *) usage ;; esac
  mkdir -p "$2"
  mount -n -t tmpfs -o mode=711 engine-data "$2"
  shift 2
done
[ "$#" -ge 1 ] || usage

root=/sys/fs/cgroup

if ! grep -q -v '^0::' /proc/self/cgroup; then
  # Pure cgroup v2 host: one unified hierarchy at the root.
  mount -n -t cgroup2 cgroup2 "$root"
else
  # v1 or hybrid: a tmpfs with one directory per hierarchy.
  mount -n -t tmpfs -o mode=755 cgroup "$root"
  while IFS=: read -r id controllers _path; do
    if [ "$id" = 0 ]; then
      mkdir -p "$root/unified"
      mount -n -t cgroup2 cgroup2 "$root/unified"
      continue
    fi
    case "$controllers" in
      name=*) dir=${controllers#name=}; opts="none,$controllers" ;;
      *) dir=$controllers; opts=$controllers ;;
    esac
    mkdir -p "$root/$dir"
    mount -n -t cgroup -o "$opts" cgroup "$root/$dir"
    # Co-mounted controllers (cpu,cpuacct) also get one link per controller.
    case "$controllers" in
      name=*) ;;
      *,*)
        old_ifs=$IFS; IFS=,
        for c in $controllers; do ln -s "$dir" "$root/$c"; done
        IFS=$old_ifs ;;
    esac
  done < /proc/self/cgroup
fi

mkdir -p /run/containerd
mount -n -t tmpfs -o mode=711 containerd-run /run/containerd
if [ -d /opt/containerd ]; then
  mount -n -t tmpfs -o mode=755 containerd-opt /opt/containerd
elif [ -d /opt ]; then
  mount -n -t tmpfs -o mode=755 opt /opt
fi

exec "$@"
