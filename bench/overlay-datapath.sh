#!/usr/bin/env bash
# Hand measurement of the overlay's data path (docs/overlay.md, "Throughput against the underlay"):
# two simulated hosts (network namespaces t16-h1, t16-h2) joined by an underlay bridge (t16-ul),
# several VXLAN overlays between them, one per variant, each with a container pair (namespaces), and
# paired interleaved rounds of iperf3 (h2 side → h1 side) over the underlay and every variant.
#
#   flock /tmp/ferry-heavy.lock bench/overlay-datapath.sh [ROUNDS] [SECONDS] [VARIANTS]
#
# VARIANTS (comma-separated; the underlay is always measured):
#   bridge   as ferry builds it: container veth → overlay bridge → VXLAN device
#   macvlan  the container's interface a macvlan (bridge mode) whose parent is the VXLAN device
#   thread   bridge, plus GRO on the containers' veths (veth NAPI) and threaded NAPI on them
#   gro      bridge, plus GRO on the containers' veths (both ends: veth NAPI, no threads)
#   notrack  bridge, with its own VTEP addresses whose VXLAN packets are not tracked (nft, priority raw,
#            prerouting and output: udp dport 4789 notrack), as Cilium and Calico do
#   nocsum   bridge, outer UDP checksums off (noudpcsum)
#   remcsum  bridge, remote checksum offload (udpcsum remcsumtx remcsumrx)
#   rps      bridge, plus RPS over all CPUs on the receiving host's VXLAN device
#   brhost   bridge without the container: the overlay bridge's own address in each host namespace
#   vxhost   VXLAN alone: an address on the VXLAN device in each host namespace (no bridge, no veth)
#   routed   no VXLAN: the container behind its own bridge, routed over the underlay
# Each host namespace has conntrack active (an inet table with a ct state rule and a masquerade,
# as ferry's firewall has) and net.bridge.bridge-nf-call-iptables=1 (as Docker sets).
# Prints per-round Mbit/s and the median (IQR) of the per-round ratio of each variant to the underlay.
# PERF=variant: one transfer of that path under `perf record -a -g` (PERF_OUT, default /tmp/t16-perf.data) instead.
# Everything it creates is removed on exit, even on failure. Touches nothing outside its namespaces.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi
ROUNDS=${1:-7}
SECS=${2:-2}
VARIANTS=${3:-bridge,macvlan}
P=t16
NS=()
cleanup () {
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT
mkns () { ip netns add "$1"; NS+=("$1"); ip -n "$1" link set lo up; }
x () { local n=$1; shift; ip netns exec "$n" "$@"; }

mkns $P-ul; mkns $P-h1; mkns $P-h2
x $P-ul ip link add br0 type bridge; x $P-ul ip link set br0 up
for i in 1 2; do
  ip link add $P-u$i netns $P-ul type veth peer name eth0 netns $P-h$i
  x $P-ul ip link set $P-u$i master br0 up
  x $P-h$i ip addr add 192.168.77.$i/24 dev eth0
  x $P-h$i ip link set eth0 up
  x $P-h$i sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  x $P-h$i nft -f - <<EOF
table inet t16 {
  chain c_fwd { type filter hook forward priority 0; ct state established,related accept; accept; }
  chain c_post { type nat hook postrouting priority 100; ip saddr 10.99.0.0/16 ip daddr != 10.99.0.0/16 masquerade; }
}
EOF
done

# variant index k: VNI 100+k, container subnet 10.99.k.0/24 (h1's container .11, h2's .12)
k=0
declare -A SRV
for v in ${VARIANTS//,/ }; do
  k=$((k + 1))
  for i in 1 2; do
    c=$P-c$k$i; dev=eth0
    case $v in brhost|vxhost) c=$P-h$i ;; *) mkns "$c" ;; esac
    case $v in
      bridge|thread|gro|rps|notrack|nocsum|remcsum)
        vtep=192.168.77.$i
        if [ "$v" = notrack ]; then
          vtep=192.168.77.1$i; x $P-h$i ip addr add $vtep/24 dev eth0
          x $P-h$i nft -f - <<EOF
table inet t16raw {
  chain c_pre { type filter hook prerouting priority raw; ip daddr $vtep udp dport 4789 counter notrack; }
  chain c_out { type filter hook output priority raw; ip saddr $vtep udp dport 4789 counter notrack; }
}
EOF
        fi
        # remote checksum offload is a receive flag of the UDP socket: a port of its own (4790)
        opts=(dstport 4789); case $v in nocsum) opts+=(noudpcsum) ;; remcsum) opts=(dstport 4790 udpcsum remcsumtx remcsumrx) ;; esac
        x $P-h$i ip link add vx$k type vxlan id $((100 + k)) local $vtep dev eth0 "${opts[@]}"
        x $P-h$i ip link add br$k type bridge
        x $P-h$i ip link set vx$k master br$k up
        x $P-h$i ip link set br$k up
        x $P-h$i ip link add ve$k type veth peer name eth0 netns "$c"
        x $P-h$i ip link set ve$k master br$k up
        x "$c" ip link set eth0 mtu 1450
        if [ "$v" = rps ]; then x $P-h$i sh -c "echo 3 > /sys/class/net/vx$k/queues/rx-0/rps_cpus"; fi
        ;;
      brhost)
        x $P-h$i ip link add vx$k type vxlan id $((100 + k)) local 192.168.77.$i dstport 4789 dev eth0
        x $P-h$i ip link add br$k type bridge
        x $P-h$i ip link set vx$k master br$k up
        dev=br$k
        ;;
      vxhost)
        x $P-h$i ip link add vx$k type vxlan id $((100 + k)) local 192.168.77.$i dstport 4789 dev eth0
        dev=vx$k
        ;;
      macvlan)
        x $P-h$i ip link add vx$k type vxlan id $((100 + k)) local 192.168.77.$i dstport 4789 dev eth0
        x $P-h$i ip link set vx$k up
        x $P-h$i ip link add mv$k link vx$k type macvlan mode bridge
        x $P-h$i ip link set mv$k netns "$c" name eth0
        ;;
      routed)
        x $P-h$i ip link add br$k type bridge
        x $P-h$i ip addr add 10.98.$i.1/24 dev br$k
        x $P-h$i ip link set br$k up
        x $P-h$i ip link add ve$k type veth peer name eth0 netns "$c"
        x $P-h$i ip link set ve$k master br$k up
        x $P-h$i ip route add 10.98.$((3 - i)).0/24 via 192.168.77.$((3 - i))
        ;;
      *) echo "unknown variant $v" >&2; exit 2 ;;
    esac
    if [ "$v" = routed ]; then
      x "$c" ip addr add 10.98.$i.2/24 dev eth0; x "$c" ip link set eth0 up; x "$c" ip route add default via 10.98.$i.1
    else
      x "$c" ip addr add 10.99.$k.1$i/24 dev $dev; x "$c" ip link set $dev up
      dst=192.168.77.$((3 - i)); if [ "$v" = notrack ]; then dst=192.168.77.1$((3 - i)); fi
      x $P-h$i bridge fdb append 00:00:00:00:00:00 dev vx$k dst $dst
    fi
    if [ "$v" = thread ] || [ "$v" = gro ]; then x $P-h$i ethtool -K ve$k gro on; x "$c" ethtool -K eth0 gro on; fi
    if [ "$v" = thread ]; then
      x $P-h$i sh -c "echo 1 > /sys/class/net/ve$k/threaded"; x "$c" sh -c 'echo 1 > /sys/class/net/eth0/threaded'
    fi
  done
  if [ "$v" = routed ]; then SRV[$v]=10.98.1.2; else SRV[$v]=10.99.$k.11; fi
done

LABELS=(underlay); CLI=($P-h2); SRVNS=($P-h1); ADDR=(192.168.77.1)
k=0
for v in ${VARIANTS//,/ }; do
  k=$((k + 1)); LABELS+=("$v"); ADDR+=("${SRV[$v]}")
  case $v in brhost|vxhost) CLI+=($P-h2); SRVNS+=($P-h1) ;; *) CLI+=($P-c${k}2); SRVNS+=($P-c${k}1) ;; esac
done
n=${#LABELS[@]}
for ns in $(printf '%s\n' "${SRVNS[@]}" | sort -u); do x "$ns" iperf3 -s -D -p 5202 >/dev/null 2>&1; done
sleep 0.5
for j in $(seq 0 $((n - 1))); do x "${CLI[$j]}" ping -c1 -W2 "${ADDR[$j]}" >/dev/null; done

# PERF=variant [PERF_OUT=file]: instead of the rounds, one transfer of that path under `perf record -a -g`.
if [ -n "${PERF:-}" ]; then
  for j in $(seq 0 $((n - 1))); do
    if [ "${LABELS[$j]}" = "$PERF" ]; then
      perf record -a -g -o "${PERF_OUT:-/tmp/$P-perf.data}" -- ip netns exec "${CLI[$j]}" iperf3 -c "${ADDR[$j]}" -p 5202 -t "$SECS" 2>&1 | tail -4
    fi
  done
  exit 0
fi
order () { # rotate by round, reverse every other round (as bench/lib.ts roundOrder)
  local r=$1 s=() i
  for i in $(seq 0 $((n - 1))); do s+=($(((i + r / 2) % n))); done
  if [ $((r % 2)) = 1 ]; then for ((i = n - 1; i >= 0; i--)); do printf '%s ' "${s[$i]}"; done; else printf '%s ' "${s[@]}"; fi
}
OUT=$(mktemp)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); variants: ${LABELS[*]}; $ROUNDS rounds of $SECS s"
for r in $(seq 0 $((ROUNDS - 1))); do
  for j in $(order "$r"); do
    m=$(x "${CLI[$j]}" iperf3 -c "${ADDR[$j]}" -p 5202 -t "$SECS" -J | jq '.end.sum_received.bits_per_second / 1e6')
    echo "$r ${LABELS[$j]} $m" >> "$OUT"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ",$VARIANTS," == *,notrack,* ]]; then echo "h1's notrack counters: $(x $P-h1 nft list table inet t16raw | grep -o 'packets [0-9]*' | tr '\n' ' ')"; fi
python3 - "$OUT" "${LABELS[@]}" <<'EOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
labels = sys.argv[2:]
by = {l: {} for l in labels}
for r, l, m in rows: by[l][int(r)] = float(m)
def q(xs, p):
    xs = sorted(xs); i = (len(xs) - 1) * p; lo = int(i); hi = min(lo + 1, len(xs) - 1); return xs[lo] + (xs[hi] - xs[lo]) * (i - lo)
for l in labels:
    ms = list(by[l].values())
    line = f"{l:10s} median {st.median(ms):8.0f} Mbit/s"
    if l != 'underlay':
        rs = [by[l][r] / by['underlay'][r] for r in by[l]]
        line += f"  ratio {q(rs,.5):.2f} (IQR {q(rs,.25):.2f}-{q(rs,.75):.2f}, range {min(rs):.2f}-{max(rs):.2f}, {len(rs)} rounds)"
    if 'bridge' in by and l not in ('underlay', 'bridge'):
        rb = [by[l][r] / by['bridge'][r] for r in by[l]]
        line += f"  / bridge {q(rb,.5):.2f} (IQR {q(rb,.25):.2f}-{q(rb,.75):.2f})"
    print(line)
EOF
rm -f "$OUT"
