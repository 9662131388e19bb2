#!/bin/sh
# Entrypoint of ferry's Docker managed plugin: maps the plugin's settings (`docker plugin set`)
# to `ferry agent` flags. The engine serves /run/docker/plugins of the plugin as its socket
# directory; the interface socket is ferry.sock. No setting is evaluated by the shell.
set -eu
# The engine gives every plugin a read-only /proc/sys (its default OCI spec); the agent sets its
# sysctls (ip_forward, the bridges' and veths' settings) there, in the host's network namespace
# it shares. CAP_SYS_ADMIN in the plugin's own mount namespace makes it writable again.
mount -o remount,bind,rw /proc/sys 2>/dev/null || umount /proc/sys
# The host's /run and /var/lib are at /host/run and /host/var/lib (config.json's mounts).
mkdir -p -m 0700 /host/run/ferry /host/var/lib/ferry
# iptables takes its lock in /run/xtables.lock: the host's, shared with the engine and the admin.
ln -sf /host/run/xtables.lock /run/xtables.lock
set -- --plugin-name ferry --plugin-dir /run/docker/plugins --state-dir /host/var/lib/ferry \
  --api-socket /host/run/ferry/ferry.sock --docker-host "${DOCKER_HOST:-unix:///host/run/docker.sock}" --log-level "${LOG_LEVEL:-info}"
if [ -n "${CLUSTER:-}" ]; then set -- "$@" --cluster "$CLUSTER"; fi
if [ -n "${ADVERTISE_ADDR:-}" ]; then set -- "$@" --advertise-addr "$ADVERTISE_ADDR"; fi
if [ -n "${FIREWALL_BACKEND:-}" ]; then set -- "$@" --firewall-backend "$FIREWALL_BACKEND"; fi
# ARGS and FERRY_NODE_FLAGS (node's flags, config.json's default: src/install/node-flags.ts) are
# split on spaces on purpose (one flag per word); globbing is off.
set -f
# shellcheck disable=SC2086
exec /usr/local/bin/node ${FERRY_NODE_FLAGS:-} /opt/ferry/bin/ferry agent "$@" ${ARGS:-}
