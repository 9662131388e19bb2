/**
 * `ferry doctor`'s full-size probes: does a packet as large as the overlay
 * sends reach each peer host, or is it blackholed on the way (a link in the
 * middle with a smaller MTU drops it, or answers "fragmentation needed" that
 * nothing acts on)? For each peer host: `ping` with DF set (`-M do`) of exactly
 * the underlay's MTU to its VTEP (a plain overlay's full frame is that large on
 * the wire), and, while this host's WireGuard device is up, of the WireGuard
 * device's MTU to its tunnel address (through WireGuard: the encrypted packet is
 * again the underlay's MTU on the wire). A small ping first tells a host that
 * does not answer at all from a path that loses only large packets.
 *
 * The plan and the reading of ping's output are pure; the probe runs `ping`
 * (argv, never a shell) in the calling process's namespace.
 */
import { execFile } from '../kernel/exec.js'
import { isIp } from '../util/ip.js'
import { chooseVtep, overlayMtu } from '../vxlan/plan.js'
import { wgOverhead } from '../wireguard/plan.js'

export type MtuPath = 'underlay' | 'wireguard'

export interface MtuProbe {
  hostId: string
  path: MtuPath
  /** The peer's VTEP, or its tunnel address for the WireGuard path. */
  target: string
  family: 4 | 6
  /** The IP packet's size in bytes (headers included), DF set. */
  size: number
  /** The largest inner packet of the overlay this path carries (for the sentence). */
  overlayMtu: number
  /** This host's underlay MTU, which every link on the way must carry. */
  underlayMtu: number
}

export interface MtuProbeResult extends MtuProbe {
  /** A small ping was answered. */
  reachable: boolean
  /** The full-size ping was answered. */
  passed: boolean
  /** The path MTU the kernel reported (an ICMP "fragmentation needed"), when it did. */
  reportedMtu?: number
  /** The probe could not run (ping is not installed). */
  error?: string
}

/** What doctor reads of `GET /v1/cluster`. */
export interface ClusterView {
  hostId?: string
  /** This host's VTEPs (a dual-stack host has a second one, of the other family). */
  vtep?: string
  vtep2?: string
  hosts?: Array<{ hostId: string, vtep: string, vtep2?: string }>
  /** Hosts this host shares no underlay family with (a mixed-family cluster): not probed, reported by judgeFamilies. */
  peers?: { unreachableHosts?: Array<{ hostId: string, detail: string }> }
  wireguard?: { active?: boolean, peers?: Array<{ hostId: string, tunnel: string }> }
}

/** At most this many peer hosts are probed (a large cluster: the first ones by host id). */
export const MAX_PROBED_HOSTS = 32

/** The probes for every peer host (sorted by host id), pure. */
export function planMtuProbes (cluster: ClusterView, underlayMtu: number): MtuProbe[] {
  const out: MtuProbe[] = []
  const hosts = (cluster.hosts ?? []).filter((h) => h.hostId !== cluster.hostId && isIp(h.vtep))
    .sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0)).slice(0, MAX_PROBED_HOSTS)
  const tunnels = new Map(cluster.wireguard?.active === true ? (cluster.wireguard.peers ?? []).map((p) => [p.hostId, p.tunnel]) : [])
  const self = cluster.vtep === undefined ? undefined : { vtep: cluster.vtep, ...(cluster.vtep2 !== undefined ? { vtep2: cluster.vtep2 } : {}) }
  for (const h of hosts) {
    // The VTEP this host sends to (a mixed-family cluster: the family both have; none shared: nothing to probe).
    const target = self === undefined ? h.vtep : chooseVtep(self, h)
    if (target === undefined) continue
    const family = isIp(target, 4) ? 4 : 6
    out.push({ hostId: h.hostId, path: 'underlay', target, family, size: underlayMtu, overlayMtu: overlayMtu(underlayMtu, family, false), underlayMtu })
    const tunnel = tunnels.get(h.hostId)
    if (tunnel !== undefined && isIp(tunnel, 4)) {
      out.push({ hostId: h.hostId, path: 'wireguard', target: tunnel, family: 4, size: underlayMtu - wgOverhead(family), overlayMtu: overlayMtu(underlayMtu, family, true), underlayMtu })
    }
  }
  return out
}

/** `ping` of one packet size to a target, DF set; the ICMP payload is the size less the IP and ICMP headers. */
export function pingArgv (p: Pick<MtuProbe, 'target' | 'family'>, size?: number): string[] {
  const argv = ['ping', p.family === 4 ? '-4' : '-6', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '1']
  if (size !== undefined) argv.push('-M', 'do', '-s', String(size - (p.family === 4 ? 28 : 48)))
  argv.push(p.target)
  return argv
}

/** The path MTU in ping's output ("Frag needed and DF set (mtu = 1400)", "message too long, mtu=1400"), if any. */
export function reportedMtu (text: string): number | undefined {
  const m = /mtu\s*=\s*(\d{2,5})/i.exec(text)
  return m ? Number(m[1]) : undefined
}

/** Run one probe: a small ping, then the full-size one. */
export async function runMtuProbe (p: MtuProbe): Promise<MtuProbeResult> {
  let small
  try {
    small = await execFile(pingArgv(p), { allowFailure: true, timeoutMs: 10_000 })
  } catch (err) {
    return { ...p, reachable: false, passed: false, error: `cannot run ping: ${(err as Error).message}` }
  }
  if (small.code !== 0) return { ...p, reachable: false, passed: false }
  const full = await execFile(pingArgv(p, p.size), { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined)
  const r: MtuProbeResult = { ...p, reachable: true, passed: full !== undefined && full.code === 0 }
  const mtu = full === undefined ? undefined : reportedMtu(`${full.stdout}\n${full.stderr}`)
  if (!r.passed && mtu !== undefined) r.reportedMtu = mtu
  return r
}

/** Every probe, four at a time. */
export async function runMtuProbes (probes: readonly MtuProbe[]): Promise<MtuProbeResult[]> {
  const out: MtuProbeResult[] = new Array<MtuProbeResult>(probes.length)
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < probes.length; i = next++) out[i] = await runMtuProbe(probes[i]!)
  }
  await Promise.all([worker(), worker(), worker(), worker()])
  return out
}

/** The MTU of the interface that holds `address` (this host's VTEP), read with `ip -j address`; undefined when none does. */
export async function mtuOfAddress (address: string): Promise<number | undefined> {
  const r = await execFile(['ip', '-j', 'address', 'show'], { allowFailure: true, timeoutMs: 5000 }).catch(() => undefined)
  if (r === undefined || r.code !== 0) return undefined
  let links: unknown
  try { links = JSON.parse(r.stdout) } catch { return undefined }
  if (!Array.isArray(links)) return undefined
  for (const l of links as Array<{ mtu?: unknown, addr_info?: Array<{ local?: unknown }> }>) {
    if ((l.addr_info ?? []).some((a) => a.local === address) && typeof l.mtu === 'number') return l.mtu
  }
  return undefined
}
