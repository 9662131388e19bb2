/**
 * Timings of the pure planners, moved out of the unit tests (which assert what the planners compute,
 * never how long they take): `npm run bench:planners`. Each figure is the median of RUNS runs, printed
 * beside its goal; a figure over its goal is printed as such, nothing fails.
 */
import { performance } from 'node:perf_hooks'
import type { PortRequest } from '../src/model/types.js'
import { allocatePorts, type PortUse } from '../src/nat/ports.js'
import { pickAutoSubnet } from '../src/ipam/pools.js'
import { GATEWAY_ADDRESS_TYPE, Ipam, REQUEST_ADDRESS_TYPE } from '../src/ipam/ipam.js'
import { MemoryStore } from '../src/store/store.js'
import { PeerPlanner, diffPeers, overlayDevices, overlayMac, planPeers, type RemotePeer } from '../src/vxlan/plan.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const RUNS = 9

function median (fn: () => void): number {
  const ms: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    fn()
    ms.push(performance.now() - t0)
  }
  ms.sort((a, b) => a - b)
  return ms[Math.floor(ms.length / 2)]!
}

function report (what: string, ms: number, goalMs: number): void {
  console.log(`${what}: ${ms.toFixed(2)} ms (goal < ${goalMs} ms${ms > goalMs ? ': OVER' : ''})`)
}

// VXLAN: plan and diff 10,000 peers (100 hosts × 100 endpoints), on an IPv4 and on a dual-stack overlay (an IPv6
// address per peer: one more neighbour entry each), and on a host with a VTEP of each family among hosts half of
// which advertise only IPv6 (mixed family: two VXLAN devices, each peer's entries on its family's); then one change
// among them through the incremental planner (in the mixed case, alternately to an IPv4 and an IPv6 VTEP).
for (const stack of ['IPv4', 'dual-stack', 'mixed family'] as const) {
  const dual = stack === 'dual-stack'
  const mixed = stack === 'mixed family'
  const vtepOf = (h: number): string => (mixed && h % 2 === 1 ? `fd00:51::${h + 1}` : `192.168.51.${h + 1}`)
  const peers: RemotePeer[] = []
  for (let h = 0; h < 100; h++) {
    for (let e = 0; e < 100; e++) {
      const n = 2 + h * 100 + e
      const ip = `10.30.${n >> 8}.${n & 255}`
      peers.push({ endpointId: `h${h}e${e}`, ip, ...(dual ? { ip6: `fd00:30::${n.toString(16)}` } : {}), mac: overlayMac(ip), vtep: vtepOf(h), hostId: `host${h}` })
    }
  }
  const dev = overlayDevices({ name: 'ov1', vni: 4096, subnet: '10.30.0.0/16', gateway: '10.30.0.1', ...(dual ? { subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' } : {}) },
    { vtep: '192.168.50.1', mtu: 1500, dev: 'eth0', ...(mixed ? { second: { vtep: 'fd00:50::1', mtu: 1500, dev: 'eth0' } } : {}) })
  report(`vxlan (${stack}): plan + 2 diffs of 10,000 peers`, median(() => {
    const p = planPeers(dev, { hostId: 'h1', vtep: '192.168.50.1' }, peers)
    diffPeers(p, { fdb: [], neigh: [] })
    diffPeers(p, p)
  }), 1000)
  const planner = new PeerPlanner(dev, { hostId: 'h1', vtep: '192.168.50.1' })
  planner.reset(peers)
  let k = 0
  report(`vxlan (${stack}): 1,000 single-peer changes among 10,000 peers`, median(() => {
    for (let i = 0; i < 1000; i++, k++) planner.upsert({ ...peers[k % peers.length]!, vtep: mixed && k % 2 === 1 ? `fd00:52::${(k % 200) + 1}` : `192.168.52.${(k % 200) + 1}` })
  }), 100)
}

// Host ports: an ephemeral pick past 1,000 publications.
const used: PortUse[] = Array.from({ length: 1000 }, (_, i) => ({
  endpointId: `e${i}`,
  binding: { proto: 'tcp', hostIp: '', hostPort: 10000 + i, hostPortEnd: 10000 + i, containerIp: '10.20.0.9', containerPort: 80, containerPortEnd: 80 },
}))
const req: PortRequest = { proto: 'tcp', hostIp: '', hostPort: 0, hostPortEnd: 0, containerPort: 80, containerPortEnd: 80 }
report('ports: ephemeral pick past 1,000 publications', median(() => {
  allocatePorts([req], used, { lo: 10000, hi: 60999 }, new Set(), () => false, { containerIp: '10.20.0.2' })
}), 200)

// IPAM: an automatic /24 in a /8 with 20,000 blockers.
const blockers: string[] = []
for (let i = 0; i < 20000; i++) blockers.push(`10.${i >> 8}.${i & 255}.0/24`)
report('ipam: auto /24 in a /8 past 20,000 blockers', median(() => { pickAutoSubnet([{ base: '10.0.0.0/8', size: 24 }], blockers) }), 500)

// IPAM over the in-memory store (moved from test/ipam/ipam.test.ts): serial allocations in a /16,
// more after releasing half of them behind the cursor, and allocations in a /8. Each run starts
// from a fresh IPAM; the figure is the median of RUNS runs.
async function medianAsync (fn: () => Promise<void>): Promise<number> {
  const ms: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    await fn()
    ms.push(performance.now() - t0)
  }
  ms.sort((a, b) => a - b)
  return ms[Math.floor(ms.length / 2)]!
}
const GW = { [REQUEST_ADDRESS_TYPE]: GATEWAY_ADDRESS_TYPE }
async function freshPool (cidr: string): Promise<{ ipam: Ipam, poolId: string }> {
  const ipam = new Ipam({ store: new MemoryStore(), hostNetworks: async () => [] })
  const { poolId } = await ipam.requestPool({ addressSpace: 'FerryLocal', pool: cidr, subPool: '', options: {}, v6: false })
  await ipam.requestAddress({ poolId, address: '', options: GW })
  return { ipam, poolId }
}
report('ipam: 10,000 serial allocations in a /16', await medianAsync(async () => {
  const { ipam, poolId } = await freshPool('10.64.0.0/16')
  for (let i = 0; i < 10000; i++) await ipam.requestAddress({ poolId, address: '', options: null })
}), 2000)
const released = await freshPool('10.64.0.0/16')
for (let i = 0; i < 10000; i++) await released.ipam.requestAddress({ poolId: released.poolId, address: '', options: null })
for (let i = 2; i < 5000; i++) await released.ipam.releaseAddress(released.poolId, `10.64.${i >> 8}.${i & 255}`)
report('ipam: 1,000 allocations (each released again) after releasing 5,000 behind the cursor', await medianAsync(async () => {
  for (let i = 0; i < 1000; i++) {
    const { address } = await released.ipam.requestAddress({ poolId: released.poolId, address: '', options: null })
    await released.ipam.releaseAddress(released.poolId, address.split('/')[0]!)
  }
}), 1000)
report('ipam: 2,000 allocations in a /8', await medianAsync(async () => {
  const { ipam, poolId } = await freshPool('11.0.0.0/8')
  for (let i = 0; i < 2000; i++) await ipam.requestAddress({ poolId, address: '', options: null })
}), 1000)
