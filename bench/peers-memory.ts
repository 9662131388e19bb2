/**
 * In-process heap probe of the remote-endpoint state at scale (issue 16), not a test:
 *   npm run bench:memory [-- 100000 --long-ids]
 *
 * A fake store hands PeerSync one snapshot of `endpoints` remote endpoints on up to
 * 1,000 hosts (100 each; names as bench:overlay publishes them, `--long-ids`: 64-hex
 * endpoint ids as Docker's); the overlay is attached on a data plane that keeps
 * nothing; the agent's DNS records (AgentRecordSource) and the DNS server's index
 * (RecordSet) are built from the vetted view. Prints the JS heap and the array buffers
 * (the compact tables' columns live there, outside the JS heap) after a GC at each
 * step, and the process's peak RSS (the snapshot itself is made by the fake store, in
 * the read).
 */
import type { ClusterEvent, ClusterHandler, ClusterSnapshot, ClusterStore } from '../src/cluster/types.js'
import type { OverlayDataPlane } from '../src/vxlan/apply.js'
import { PeerSync } from '../src/vxlan/peers.js'
import { AgentRecordSource } from '../src/dns/source.js'
import { RecordSet } from '../src/dns/records.js'
import { PeerPlanner, overlayDevices, overlayMac } from '../src/vxlan/plan.js'
import { helpAndExit } from './usage.js'

helpAndExit(import.meta.url)

const N = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 100_000)
const LONG = process.argv.includes('--long-ids')
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with node --expose-gc')
const OV = { name: 'scale', subnet: '10.64.0.0/14', gateway: '10.64.0.1', vni: 4096 }

/** The JS heap in use and the array buffers' memory (typed arrays' backing stores are not in the heap), MiB. */
function heapMiB (): number { gc!(); gc!(); const m = process.memoryUsage(); return (m.heapUsed + m.arrayBuffers) / 2 ** 20 }

function snapshot (): ClusterSnapshot {
  const hosts = Math.min(1000, Math.ceil(N / 100))
  const endpoints = []
  const claims = []
  for (let i = 0; i < N; i++) {
    const h = i % hosts
    const n = 0x0a400000 + 256 + i
    const ip = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
    const endpointId = LONG ? (i.toString(16).padStart(8, '0')).repeat(8) : `f${h}e${i}`
    endpoints.push({ endpointId, ip, mac: overlayMac(ip), hostId: `sim-${h}`, vtep: `10.99.${h >> 8}.${h & 255}`, names: [`f${h}e${i}`] })
    claims.push({ ip, endpointId })
  }
  return {
    rev: 1, time: Date.now(),
    hosts: Array.from({ length: hosts }, (_, h) => ({ hostId: `sim-${h}`, vtep: `10.99.${h >> 8}.${h & 255}`, version: 'x', lastHeartbeat: 0, expiresAt: 0, registeredAt: 0 })),
    overlays: [{ definition: { ...OV, createdBy: 'sim-0', createdAt: 0 }, hosts: [], endpoints, claims }],
  }
}

let handler: ClusterHandler | undefined
const store = {
  hostId: 'self', vtep: '10.98.0.1',
  subscribe (h: ClusterHandler) { handler = h; return () => {} },
  snapshot: async () => snapshot(),
  revision: async () => 1,
  endpoints: async () => [],
} as unknown as ClusterStore
const dp: OverlayDataPlane = {
  ensureDevices: async () => {}, removeDevices: async () => {},
  readPeers: async () => ({ fdb: [], neigh: [] }),
  applyPeerOps: async () => {},
  underlay: async (vtep: string) => ({ vtep, mtu: 1500, dev: 'eth0' }),
} as unknown as OverlayDataPlane

/** The heap a full plan's operations take while they are held (the planner of the overlay, diffed against an empty kernel). */
async function planOps (): Promise<number> {
  const planner = new PeerPlanner(devices, { hostId: 'self', vtep: '10.98.0.1' })
  planner.load(sync.remoteTables().get(OV.name)?.values() ?? [])
  const loaded = heapMiB()
  const ops = planner.opsFrom({ fdb: [], neigh: [] })
  const after = heapMiB()
  return ops.length > 0 ? after - loaded : 0
}

const devices = overlayDevices({ name: OV.name, vni: OV.vni, subnet: OV.subnet, gateway: OV.gateway }, { vtep: '10.98.0.1', mtu: 1500 })
const rows: Array<[string, number]> = []
const base = heapMiB()
const sync = new PeerSync({ store, dataPlane: dp, fullReconcileMs: 0 })
sync.start()
handler?.({ kind: 'resync' } as ClusterEvent)
await sync.settled()
rows.push(['vetted view (PeerSync, after the full read)', heapMiB() - base])
await sync.attach({ name: OV.name, vni: OV.vni, subnet: OV.subnet, gateway: OV.gateway })
const afterPlan = heapMiB()
rows.push(['+ the planner (attach: full plan)', afterPlan - base])
const records = new AgentRecordSource()
records.setRemote(new Map([[OV.name, sync.remoteTables().get(OV.name) ?? []]]), 'self')
const afterRecords = heapMiB()
rows.push(['+ the DNS records (AgentRecordSource)', afterRecords - base])
// Built as the DNS server builds it: the entries one at a time (AgentRecordSource.each), no list of them.
const set = RecordSet.from(records.each())
const afterIndex = heapMiB()
rows.push(['+ the DNS server index (RecordSet)', afterIndex - base])
const all = records.records()
const withArray = heapMiB() - afterIndex
// Made only while a full plan or a rebuild of the DNS index runs (then garbage):
const ops = await planOps()
const transient: Array<[string, number]> = [['every record as an array (records(): the UDP helpers\' push; an index build takes them one at a time)', withArray], ['a full plan\'s 200,000 operations as one array (opsFrom; a reconcile applies them in chunks of 8,192 as they are made)', ops]]
console.log(`${N} remote endpoints${LONG ? ' (64-hex ids)' : ''}; JS heap + array buffers after GC, MiB above the start (${base.toFixed(1)} MiB):`)
for (const [what, mib] of rows) console.log(`  ${what.padEnd(48)} ${mib.toFixed(1)}`)
console.log('transient, MiB while alive:')
for (const [what, mib] of transient) console.log(`  ${what.padEnd(60)} ${mib.toFixed(1)}`)
console.log(`  (${all.length} records)`)
console.log(`  process RSS now ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB, peak ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; records in ${set.networks().length} scope(s)`)
sync.stop()
