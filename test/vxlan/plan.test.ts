import t from 'tap'
import { EndpointTable } from '../../src/cluster/endpoints.js'
import { isIp, normalizeIp } from '../../src/util/ip.js'
import {
  PeerPlanner, applyOpsToTable, chooseVtep, diffPeers, indexKernel, indexPacked, isOverlayLinkName, packPeers, noCommonFamily, overlayBridgeName, overlayDevices, overlayMac, overlayMtu, planPeers, tcpMss,
  vxlanDevices, vxlanFor, vxlanName, vxlanName2,
  type OverlayDevices, type PeerTable, type RemotePeer,
} from '../../src/vxlan/plan.js'
import { mulberry32 } from '../harness/random.js'
import { wgOverhead } from '../../src/wireguard/plan.js'

const SELF = { hostId: 'h1', vtep: '192.168.50.1' }
const OV = { name: 'ov1', vni: 4096, subnet: '10.30.0.0/16', gateway: '10.30.0.1' }
const U = { vtep: '192.168.50.1', mtu: 1500, dev: 'eth0' }

const OV6 = { ...OV, subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' }

function dev (): OverlayDevices { return overlayDevices(OV, U) }
function dev6 (): OverlayDevices { return overlayDevices(OV6, U) }

/** The IPv6 address of a dual-stack peer whose IPv4 address is `ip`: fd00:30:: plus its last two bytes. */
function v6Of (ip: string): string {
  const [, , c, d] = ip.split('.').map(Number) as [number, number, number, number]
  return `fd00:30::${((c << 8) + d).toString(16)}`
}

/** One random change of the planner and of the model `current`: `p` published (upsert), or `id` withdrawn (remove). */
function change (planner: PeerPlanner, current: Map<string, RemotePeer>, id: string, p: RemotePeer | undefined): ReturnType<PeerPlanner['remove']> {
  if (p === undefined) { current.delete(id); return planner.remove(id) }
  current.set(id, p)
  return planner.upsert(p)
}

function peer (id: string, ip: string, vtep: string, hostId = `host-${vtep}`, mac = isIp(ip) ? overlayMac(ip) : '02:42:00:00:00:99'): RemotePeer {
  return { endpointId: id, hostId, ip, mac, vtep }
}

t.test('deterministic names, at most 15 bytes, with ferry\'s prefixes', async (t) => {
  t.equal(vxlanName(4096), 'fyv-1000')
  t.equal(vxlanName(16777215), 'fyv-ffffff')
  t.equal(vxlanName(1), 'fyv-1')
  t.equal(overlayBridgeName('ov1'), overlayBridgeName('ov1'), 'stable')
  t.match(overlayBridgeName('ov1'), /^fyo-[0-9a-f]{11}$/)
  t.not(overlayBridgeName('ov1'), overlayBridgeName('ov2'))
  const longest = overlayBridgeName('x'.repeat(63))
  t.equal(Buffer.byteLength(longest), 15)
  t.ok(isOverlayLinkName('fyv-1000') && isOverlayLinkName(overlayBridgeName('a')))
  t.notOk(isOverlayLinkName('fy-abc') || isOverlayLinkName('eth0') || isOverlayLinkName('fyh1234'))
  t.equal(overlayMac('10.30.0.2'), '02:42:0a:1e:00:02')
  t.equal(overlayMac('255.0.1.16'), '02:42:ff:00:01:10')
})

t.test('devices: MTU from the underlay minus 50 unless set; port 4789 unless set', async (t) => {
  t.same(dev(), {
    overlay: 'ov1', vni: 4096, subnet: '10.30.0.0/16', gateway: '10.30.0.1', bridge: overlayBridgeName('ov1'), vxlan: 'fyv-1000',
    mtu: 1450, port: 4789, local: '192.168.50.1', dev: 'eth0', gatewayCidr: '10.30.0.1/16',
  })
  t.equal(overlayDevices(OV, { vtep: '192.168.50.1', mtu: 9000 }).mtu, 8950, 'jumbo underlay')
  t.equal(overlayDevices({ ...OV, mtu: 1400 }, U).mtu, 1400, 'user MTU wins')
  t.equal(overlayDevices({ ...OV, port: 8472 }, U).port, 8472)
  t.equal(overlayDevices({ ...OV, subnet: '10.30.5.5/16' }, U).subnet, '10.30.0.0/16', 'canonical subnet')
  t.equal(overlayDevices(OV, { vtep: '192.168.50.1', mtu: 1500 }).dev, undefined)
  t.throws(() => overlayDevices({ ...OV, vni: 0 }, U), { code: 'INVALID_OPTION' })
  t.throws(() => overlayDevices({ ...OV, vni: 2 ** 24 }, U), { code: 'INVALID_OPTION' })
  t.throws(() => overlayDevices({ ...OV, gateway: '10.31.0.1' }, U), { code: 'INVALID_OPTION', message: /not in 10.30.0.0\/16/ })
  t.throws(() => overlayDevices({ ...OV, port: 0 }, U), { code: 'INVALID_OPTION' })
  t.throws(() => overlayDevices(OV, { vtep: '192.168.50.1', mtu: 100 }), { code: 'INVALID_OPTION', message: /underlay MTU 100 - 50/ })
  t.throws(() => overlayDevices(OV, { vtep: 'x', mtu: 1500 }), { code: 'INVALID_OPTION' })
})

t.test('devices of a dual-stack overlay: the IPv6 subnet and the bridge\'s IPv6 address beside the IPv4 ones', async (t) => {
  t.same(dev6(), { ...dev(), subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1', gatewayCidr6: 'fd00:30::1/64' })
  t.equal(overlayDevices({ ...OV6, subnet6: 'fd00:30::7/64' }, U).subnet6, 'fd00:30::/64', 'canonical IPv6 subnet')
  t.throws(() => overlayDevices({ ...OV6, gateway6: 'fd00:31::1' }, U), { code: 'INVALID_OPTION', message: /IPv6 gateway fd00:31::1 is not in fd00:30::\/64/ })
  t.throws(() => overlayDevices({ ...OV6, gateway6: undefined }, U), { code: 'INVALID_OPTION', message: /needs an IPv6 gateway/ })
})

t.test('plan: one FDB and one neighbour entry per remote endpoint, sorted by IP', async (t) => {
  const peers = [
    peer('e3', '10.30.0.10', '192.168.50.3'),
    peer('e2', '10.30.0.9', '192.168.50.2'),
    peer('e1', '10.30.0.2', '192.168.50.2'),
  ]
  const p = planPeers(dev(), SELF, peers)
  t.same(p.fdb, [
    { dev: 'fyv-1000', mac: '02:42:0a:1e:00:02', dst: '192.168.50.2' },
    { dev: 'fyv-1000', mac: '02:42:0a:1e:00:09', dst: '192.168.50.2' },
    { dev: 'fyv-1000', mac: '02:42:0a:1e:00:0a', dst: '192.168.50.3' },
  ])
  t.same(p.neigh, [
    { dev: 'fyv-1000', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02' },
    { dev: 'fyv-1000', ip: '10.30.0.9', mac: '02:42:0a:1e:00:09' },
    { dev: 'fyv-1000', ip: '10.30.0.10', mac: '02:42:0a:1e:00:0a' },
  ])
  t.same(p.peers.map((x) => x.endpointId), ['e1', 'e2', 'e3'])
  t.same(p.skipped, [])
  t.same(planPeers(dev(), SELF, [...peers].reverse()), p, 'input order does not matter')
  t.same(planPeers(dev(), SELF, []), { fdb: [], neigh: [], peers: [], skipped: [] })
})

t.test('plan of a dual-stack overlay: one FDB entry per peer, one neighbour entry per address (ARP and NDP proxied alike)', async (t) => {
  const peers = [
    { ...peer('e3', '10.30.0.10', '192.168.50.3'), ip6: 'fd00:30::a' },
    { ...peer('e2', '10.30.0.9', '192.168.50.2') },
    { ...peer('e1', '10.30.0.2', '192.168.50.2'), ip6: 'fd00:30::2' },
  ]
  const p = planPeers(dev6(), SELF, peers)
  const v4 = planPeers(dev(), SELF, peers.map((x) => ({ ...x, ip6: undefined })))
  t.same(p.fdb, v4.fdb, 'the FDB entries of the IPv4 plan (above): one per peer, whatever its addresses')
  t.equal(p.fdb.length, 3)
  t.same(p.neigh, [
    { dev: 'fyv-1000', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02' },
    { dev: 'fyv-1000', ip: 'fd00:30::2', mac: '02:42:0a:1e:00:02' },
    { dev: 'fyv-1000', ip: '10.30.0.9', mac: '02:42:0a:1e:00:09' },
    { dev: 'fyv-1000', ip: '10.30.0.10', mac: '02:42:0a:1e:00:0a' },
    { dev: 'fyv-1000', ip: 'fd00:30::a', mac: '02:42:0a:1e:00:0a' },
  ], 'a peer without an IPv6 address has its IPv4 neighbour entry only')
  t.same(p.skipped, [])
  t.same(planPeers(dev6(), SELF, [...peers].reverse()), p, 'input order does not matter')
  t.same(diffPeers(p, { fdb: [], neigh: [] }).map((o) => o.op), ['addFdb', 'addFdb', 'addFdb', 'addNeigh', 'addNeigh', 'addNeigh', 'addNeigh', 'addNeigh'])
})

t.test('plan of a dual-stack overlay: what is left out of the IPv6 side, and why', async (t) => {
  const peers: RemotePeer[] = [
    { ...peer('outside6', '10.30.0.2', '192.168.50.2'), ip6: 'fd00:99::2' },
    { ...peer('gw6', '10.30.0.3', '192.168.50.2'), ip6: 'fd00:30::1' },
    { ...peer('v4-as-v6', '10.30.0.4', '192.168.50.2'), ip6: '10.30.0.44' },
    { ...peer('bad6', '10.30.0.5', '192.168.50.2'), ip6: 'fd00:30::zz' },
    { ...peer('a-first', '10.30.0.6', '192.168.50.2'), ip6: 'fd00:30::6' },
    { ...peer('b-dup6', '10.30.0.7', '192.168.50.3'), ip6: 'fd00:30::6' },
  ]
  const p = planPeers(dev6(), SELF, peers)
  t.same(p.peers.map((x) => x.endpointId), ['a-first'])
  t.same(p.skipped.map((s) => [s.endpointId, s.reason, s.ip, s.keptEndpointId]).sort(), [
    ['b-dup6', 'duplicate-ip', 'fd00:30::6', 'a-first'],
    ['bad6', 'invalid', '10.30.0.5 fd00:30::zz', undefined],
    ['gw6', 'gateway', 'fd00:30::1', undefined],
    ['outside6', 'outside-subnet', 'fd00:99::2', undefined],
    ['v4-as-v6', 'outside-subnet', '10.30.0.44', undefined],
  ])
  const v4only = planPeers(dev(), SELF, [{ ...peer('e1', '10.30.0.2', '192.168.50.2'), ip6: 'fd00:30::2' }])
  t.same(v4only.skipped.map((s) => [s.endpointId, s.reason]), [['e1', 'outside-subnet']], 'an IPv6 address on an IPv4-only overlay is refused')
})

t.test('an IPv6 underlay: 70 bytes of overhead, FDB entries to IPv6 VTEPs, peers behind a VTEP of the other family left out', async (t) => {
  const U6 = { vtep: 'fd00:ff::1', mtu: 1500, dev: 'eth0' }
  const SELF6 = { hostId: 'h1', vtep: 'fd00:ff::1' }
  const d = overlayDevices(OV6, U6)
  t.match(d, { mtu: 1430, local: 'fd00:ff::1' })
  t.throws(() => overlayDevices(OV, { ...U6, mtu: 130 }), { code: 'INVALID_OPTION', message: /underlay MTU 130 - 70/ })
  const p = planPeers(d, SELF6, [
    { ...peer('e2', '10.30.0.2', 'fd00:ff::2'), ip6: 'fd00:30::2' },
    peer('e3', '10.30.0.3', '192.168.50.3'),
  ], { flood: true })
  t.same(p.fdb, [{ dev: 'fyv-1000', mac: '02:42:0a:1e:00:02', dst: 'fd00:ff::2' }, { dev: 'fyv-1000', mac: '00:00:00:00:00:00', dst: 'fd00:ff::2' }])
  t.same(p.skipped.map((s) => [s.endpointId, s.reason]), [['e3', 'vtep-family']])
  t.same(planPeers(dev(), SELF, [peer('e2', '10.30.0.2', 'fd00:ff::2')]).skipped.map((s) => s.reason), ['vtep-family'], 'and the other way round')
})

t.test('plan: flood entries, one per remote VTEP, only when asked', async (t) => {
  const peers = [peer('e1', '10.30.0.2', '192.168.50.3'), peer('e2', '10.30.0.3', '192.168.50.2'), peer('e3', '10.30.0.4', '192.168.50.2')]
  const p = planPeers(dev(), SELF, peers, { flood: true })
  t.same(p.fdb.filter((e) => e.mac === '00:00:00:00:00:00'), [
    { dev: 'fyv-1000', mac: '00:00:00:00:00:00', dst: '192.168.50.2' },
    { dev: 'fyv-1000', mac: '00:00:00:00:00:00', dst: '192.168.50.3' },
  ])
  t.equal(planPeers(dev(), SELF, peers).fdb.length, 3)
})

t.test('plan: what is left out, and why', async (t) => {
  const peers: RemotePeer[] = [
    peer('local-by-host', '10.30.0.2', '192.168.50.9', 'h1'),
    peer('local-by-vtep', '10.30.0.3', '192.168.50.1', 'other'),
    peer('outside', '10.99.0.2', '192.168.50.2'),
    peer('gw', '10.30.0.1', '192.168.50.2'),
    peer('bad-mac', '10.30.0.4', '192.168.50.2', 'h2', 'zz'),
    peer('mcast-mac', '10.30.0.5', '192.168.50.2', 'h2', '01:00:5e:00:00:01'),
    peer('bad-ip', '10.30.0', '192.168.50.2'),
    peer('bad-vtep', '10.30.0.6', 'nowhere'),
    peer('a-first', '10.30.0.7', '192.168.50.2'),
    peer('b-second', '10.30.0.7', '192.168.50.3', 'h3', '02:42:0a:1e:00:77'),
    peer('c-mac', '10.30.0.8', '192.168.50.3', 'h3', overlayMac('10.30.0.7')),
    peer('UPPER', '10.30.0.9', '192.168.50.2', 'h2', '02:42:0A:1E:00:09'),
  ]
  const p = planPeers(dev(), SELF, peers)
  t.same(p.peers.map((x) => x.endpointId), ['a-first', 'UPPER'])
  t.equal(p.neigh[1]?.mac, '02:42:0a:1e:00:09', 'MACs are lower-cased')
  t.same(p.skipped.map((s) => [s.endpointId, s.reason, s.keptEndpointId]).sort(), [
    ['b-second', 'duplicate-ip', 'a-first'],
    ['bad-ip', 'invalid', undefined],
    ['bad-mac', 'invalid', undefined],
    ['bad-vtep', 'invalid', undefined],
    ['c-mac', 'duplicate-mac', 'a-first'],
    ['gw', 'gateway', undefined],
    ['local-by-host', 'local', undefined],
    ['local-by-vtep', 'local', undefined],
    ['mcast-mac', 'invalid', undefined],
    ['outside', 'outside-subnet', undefined],
  ])
  const swapped = planPeers(dev(), SELF, [peer('z', '10.30.0.7', '192.168.50.3'), peer('a', '10.30.0.7', '192.168.50.2', 'h2', '02:42:00:00:00:01')])
  t.same(swapped.peers.map((x) => x.endpointId), ['a'], 'the smallest endpoint id wins on every host, whatever the order')
})

const E = (mac: string, dst?: string) => (dst === undefined ? { dev: 'fyv-1000', mac } : { dev: 'fyv-1000', mac, dst })
const N = (ip: string, mac: string) => ({ dev: 'fyv-1000', ip, mac })

t.test('diff: adds, deletes, changes, in a safe order', async (t) => {
  const desired: PeerTable = {
    fdb: [E('02:42:0a:1e:00:02', '192.168.50.2'), E('02:42:0a:1e:00:03', '192.168.50.4'), E('02:42:0a:1e:00:05', '192.168.50.2')],
    neigh: [N('10.30.0.2', '02:42:0a:1e:00:02'), N('10.30.0.3', '02:42:0a:1e:00:03'), N('10.30.0.5', '02:42:0a:1e:00:05')],
  }
  const actual: PeerTable = {
    fdb: [E('02:42:0a:1e:00:02', '192.168.50.2'), E('02:42:0a:1e:00:03', '192.168.50.3'), E('02:42:0a:1e:00:04', '192.168.50.3')],
    neigh: [N('10.30.0.2', '02:42:0a:1e:00:02'), N('10.30.0.3', '02:42:0a:1e:00:33'), N('10.30.0.4', '02:42:0a:1e:00:04')],
  }
  t.same(diffPeers(desired, actual), [
    { op: 'deleteNeigh', entry: N('10.30.0.4', '02:42:0a:1e:00:04') },
    { op: 'deleteFdb', entry: E('02:42:0a:1e:00:04', '192.168.50.3') },
    { op: 'addFdb', entry: E('02:42:0a:1e:00:03', '192.168.50.4') },
    { op: 'addFdb', entry: E('02:42:0a:1e:00:05', '192.168.50.2') },
    { op: 'addNeigh', entry: N('10.30.0.3', '02:42:0a:1e:00:03') },
    { op: 'addNeigh', entry: N('10.30.0.5', '02:42:0a:1e:00:05') },
  ], 'a MAC that moved to another VTEP is one add (replace), never delete-then-add')
  t.same(diffPeers(desired, desired), [], 'nothing to do')
  t.same(diffPeers(desired, { fdb: [], neigh: [] }).map((o) => o.op), ['addFdb', 'addFdb', 'addFdb', 'addNeigh', 'addNeigh', 'addNeigh'])
  t.same(diffPeers({ fdb: [], neigh: [] }, desired).map((o) => o.op), ['deleteNeigh', 'deleteNeigh', 'deleteNeigh', 'deleteFdb', 'deleteFdb', 'deleteFdb'])
  t.same(diffPeers({ fdb: [E('02:42:0a:1e:00:02', '192.168.50.2')], neigh: [] }, { fdb: [E('02:42:0A:1E:00:02', '192.168.50.2')], neigh: [] }), [],
    'MAC case does not matter')
})

t.test('diff: flood entries are one per destination', async (t) => {
  const Z = '00:00:00:00:00:00'
  const ops = diffPeers({ fdb: [E(Z, '192.168.50.2'), E(Z, '192.168.50.3')], neigh: [] }, { fdb: [E(Z, '192.168.50.3'), E(Z, '192.168.50.4')], neigh: [] })
  t.same(ops, [{ op: 'deleteFdb', entry: E(Z, '192.168.50.4') }, { op: 'addFdb', entry: E(Z, '192.168.50.2') }])
})

t.test('diff then apply reaches the desired table, from any start (exhaustive over small tables)', async (t) => {
  const macs = ['02:42:0a:1e:00:02', '02:42:0a:1e:00:03']
  const vteps = ['192.168.50.2', '192.168.50.3']
  const ips = ['10.30.0.2', '10.30.0.3']
  // Every table with, per MAC, no entry or an entry to one of the VTEPs, and per IP no entry or one of the MACs.
  const tables: PeerTable[] = []
  const fdbChoices = [[], ...vteps.map((v) => [v])]
  const neighChoices = [[], ...macs.map((m) => [m])]
  for (const f0 of fdbChoices) for (const f1 of fdbChoices) for (const n0 of neighChoices) for (const n1 of neighChoices) {
    tables.push({
      fdb: [...f0.map((v) => E(macs[0]!, v)), ...f1.map((v) => E(macs[1]!, v))],
      neigh: [...n0.map((m) => N(ips[0]!, m)), ...n1.map((m) => N(ips[1]!, m))],
    })
  }
  let pairs = 0
  const failures: string[] = []
  const norm = (x: PeerTable) => JSON.stringify({ fdb: [...x.fdb].sort((a, b) => a.mac.localeCompare(b.mac)), neigh: [...x.neigh].sort((a, b) => a.ip.localeCompare(b.ip)) })
  for (const want of tables) {
    for (const have of tables) {
      const ops = diffPeers(want, have)
      const after = applyOpsToTable(have, ops)
      if (norm(after) !== norm(want)) failures.push(`from ${norm(have)} to ${norm(want)}: got ${norm(after)}`)
      else if (diffPeers(want, after).length !== 0) failures.push(`from ${norm(have)} to ${norm(want)}: not idempotent`)
      pairs++
    }
  }
  t.equal(pairs, tables.length ** 2, 'every start/goal pair was tried')
  t.same(failures, [], `all ${pairs} start/goal pairs converge in one diff, and a second diff is empty`)
})

// Its time is measured by bench/planners.ts (npm run bench:planners), not here.
t.test('plan of 10,000 peers: 20,000 operations from nothing, and its diff against itself is empty', async (t) => {
  const peers: RemotePeer[] = []
  for (let h = 0; h < 100; h++) {
    for (let e = 0; e < 100; e++) {
      const n = 2 + h * 100 + e
      const ip = `10.30.${n >> 8}.${n & 255}`
      peers.push(peer(`h${h}e${e}`, ip, `192.168.51.${h + 1}`, `host${h}`))
    }
  }
  const p = planPeers(dev(), SELF, peers)
  const ops = diffPeers(p, { fdb: [], neigh: [] })
  const again = diffPeers(p, p)
  t.equal(p.peers.length, 10_000)
  t.equal(ops.length, 20_000)
  t.equal(again.length, 0)
})

const rng = mulberry32

/** Tables as comparable text: entries sorted by key. */
function tableText (x: PeerTable): string {
  const f = x.fdb.map((e) => `${e.dev} ${e.mac.toLowerCase()} ${e.dst ?? ''}`).sort()
  const n = x.neigh.map((e) => `${e.dev} ${e.ip} ${e.mac.toLowerCase()}`).sort()
  return JSON.stringify({ f, n })
}

for (const flood of [false, true]) {
  t.test(`incremental planner: random deltas applied to a recording kernel equal the full plan of the final state${flood ? ' (flood)' : ''}`, async (t) => {
    const seeds = 40
    for (let seed = 1; seed <= seeds; seed++) {
      const r = rng(seed * 7919 + (flood ? 1 : 0))
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
      // Few addresses, MACs and hosts, so duplicates, moves, local and invalid peers all happen.
      const ips = ['10.30.0.2', '10.30.0.3', '10.30.0.4', '10.30.0.5', '10.30.0.1', '10.31.0.2', 'nope']
      const vteps = ['192.168.50.1', '192.168.50.2', '192.168.50.3', '192.168.50.4']
      const ids = ['a', 'b', 'c', 'd', 'e', 'f']
      const planner = new PeerPlanner(dev(), SELF, { flood })
      const current = new Map<string, RemotePeer>()
      let kernel: PeerTable = { fdb: [], neigh: [] }
      for (let step = 0; step < 60; step++) {
        const id = pick(ids)
        const ops = change(planner, current, id, r() < 0.3 ? undefined : (() => {
          const ip = pick(ips)
          const vtep = pick(vteps)
          const mac = r() < 0.8 ? (ip === 'nope' ? 'zz' : overlayMac(ip)) : pick(['02:42:00:00:00:01', '02:42:00:00:00:02', 'ff:ff:ff:ff:ff:ff'])
          return peer(id, ip, vtep, vtep === SELF.vtep && r() < 0.5 ? SELF.hostId : `host-${vtep}`, r() < 0.1 ? mac.toUpperCase() : mac)
        })())
        const before = kernel
        kernel = applyOpsToTable(kernel, ops)
        // opsFromPlanner (a resync's diff against the plan as programmed) = diffPeers of the two tables.
        const other = new PeerPlanner(dev(), SELF, { flood: r() < 0.5 ? flood : !flood })
        const others = [...current.values()].filter(() => r() < 0.7).map((p) => (r() < 0.2 ? { ...p, vtep: pick(vteps) } : p))
        // From a table of vetted endpoints (every one packs), as the peer sync loads a plain overlay, or one by one.
        const table = new EndpointTable()
        if (others.every((p) => table.set(p)) && r() < 0.5) other.loadTable(table)
        else other.load(others)
        for (const [from, to] of [[other, planner], [planner, other]] as const) {
          if (JSON.stringify(to.opsFromPlanner(from)) !== JSON.stringify(diffPeers(to.table(), from.table()))) {
            t.fail(`seed ${seed} step ${step}: opsFromPlanner differs from diffPeers of the tables`, { from: tableText(from.table()), to: tableText(to.table()) })
            return
          }
        }
        // opsFrom (a full reconcile's diff, without the table) = diffPeers against the table, whatever the kernel has:
        // the kernel before this change, plus an entry of another device and a stale neighbour and flood entry.
        const odd: PeerTable = {
          fdb: [...before.fdb, { dev: 'fyv-other', mac: '02:42:00:00:00:09', dst: '192.168.50.9' }, { dev: dev().vxlan, mac: '00:00:00:00:00:00', dst: pick(vteps) }],
          neigh: [...before.neigh, { dev: dev().vxlan, ip: pick(ips.slice(0, 4)), mac: '02:42:00:00:00:0a' }],
        }
        for (const actual of [before, kernel, odd, { fdb: [], neigh: [] }]) {
          if (JSON.stringify(planner.opsFrom(actual)) !== JSON.stringify(diffPeers(planner.table(), actual))) {
            t.fail(`seed ${seed} step ${step}: opsFrom differs from diffPeers of the table`, { actual: tableText(actual) })
            return
          }
        }
        const want = planPeers(dev(), SELF, [...current.values()], { flood })
        if (tableText(kernel) !== tableText(want)) {
          t.fail(`seed ${seed} step ${step}: the kernel after the deltas differs from the full plan`, { kernel: tableText(kernel), want: tableText(want) })
          return
        }
        if (tableText(planner.table()) !== tableText(want)) { t.fail(`seed ${seed} step ${step}: the planner's table differs`); return }
      }
    }
    t.ok(true, `${seeds} random sequences of 60 changes each match the full plan after every change (and opsFrom, opsFromPlanner = diffPeers of the tables)`)
  })
}

t.test('incremental planner over an IPv6 underlay, dual-stack peers (both families in its compact table): random deltas equal the full plan', async (t) => {
  const d = overlayDevices(OV6, { vtep: 'fd00:ff::1', mtu: 1500, dev: 'eth0' })
  const self = { hostId: 'h1', vtep: 'fd00:ff::1' }
  for (let seed = 1; seed <= 30; seed++) {
    const r = rng(seed * 104729)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
    // Shared and differently spelt IPv6 addresses, an IPv6 address outside the subnet, the IPv6 gateway, an IPv4 VTEP.
    const ip6s = ['fd00:30::2', 'FD00:30:0::2', 'fd00:30::3', 'fd00:30::4', 'fd00:30::1', 'fd00:99::5', undefined]
    const ips = ['10.30.0.2', '10.30.0.3', '10.30.0.4', '10.30.0.5']
    const vteps = ['fd00:ff::1', 'fd00:ff::2', 'fd00:ff:0::3', '192.168.50.4']
    const planner = new PeerPlanner(d, self, { flood: seed % 2 === 0 })
    const current = new Map<string, RemotePeer>()
    let kernel: PeerTable = { fdb: [], neigh: [] }
    for (let step = 0; step < 40; step++) {
      const id = pick(['a', 'b', 'c', 'd'])
      const ip6 = pick(ip6s)
      const ops = change(planner, current, id, r() < 0.25 ? undefined : { ...peer(id, pick(ips), pick(vteps)), ...(ip6 !== undefined ? { ip6 } : {}) })
      kernel = applyOpsToTable(kernel, ops)
      // The planner programs addresses as its table holds them: canonical.
      const canonical = [...current.values()].map((p) => ({ ...p, ...(p.ip6 !== undefined ? { ip6: normalizeIp(p.ip6) } : {}) }))
      const want = tableText(planPeers(d, self, canonical, { flood: seed % 2 === 0 }))
      if (tableText(kernel) !== want || tableText(planner.table()) !== want) {
        t.fail(`seed ${seed} step ${step}: the deltas differ from the full plan`, { kernel: tableText(kernel), want })
        return
      }
    }
  }
  t.ok(true, '30 random sequences of 40 changes match the full plan after every change')
})

/** The two stacks an overlay can have: IPv4, and dual-stack where every peer has an IPv6 address too (one more neighbour entry). */
const STACKS = [
  { name: 'IPv4', devices: dev, peer: (id: string, ip: string, vtep: string): RemotePeer => peer(id, ip, vtep), neigh: 1 },
  { name: 'dual-stack', devices: dev6, peer: (id: string, ip: string, vtep: string): RemotePeer => ({ ...peer(id, ip, vtep), ip6: v6Of(ip) }), neigh: 2 },
]

for (const stack of STACKS) {
  t.test(`incremental planner (${stack.name}): one change among 10,000 peers is O(1) kernel operations and no full plan`, async (t) => {
    const peers: RemotePeer[] = []
    for (let i = 0; i < 10_000; i++) {
      const n = 2 + i
      peers.push(stack.peer(`p${i}`, `10.30.${n >> 8}.${n & 255}`, `192.168.51.${(i % 200) + 1}`))
    }
    const neighs = (op: string): string[] => Array<string>(stack.neigh).fill(op)
    for (const flood of [false, true]) {
      const planner = new PeerPlanner(stack.devices(), SELF, { flood })
      const first = planner.reset(peers)
      t.equal(first.length, 10_000 * (1 + stack.neigh) + (flood ? 200 : 0), 'the first plan programs everything')
      t.equal(planner.fullPlans, 1)
      const added = planner.upsert(stack.peer('new', '10.30.200.1', '192.168.51.7'))
      t.same(added.map((o) => o.op), ['addFdb', ...neighs('addNeigh')], 'a new peer: its FDB entry and a neighbour entry per address')
      const moved = planner.upsert(stack.peer('new', '10.30.200.1', '192.168.52.9'))
      t.same(moved.map((o) => o.op), flood ? ['addFdb', 'addFdb'] : ['addFdb'], 'a move: the FDB entry is replaced (and the new VTEP\'s flood entry)')
      const renumbered = planner.upsert(stack.peer('new', '10.30.200.2', '192.168.52.9'))
      t.same(renumbered.map((o) => o.op).sort(), ['addFdb', ...neighs('addNeigh'), 'deleteFdb', ...neighs('deleteNeigh')], 'a new address: the old entries go, the new ones come')
      const gone = planner.remove('new')
      t.same(gone.map((o) => o.op), [...neighs('deleteNeigh'), 'deleteFdb', ...(flood ? ['deleteFdb'] : [])])
      t.same(planner.remove('p5').map((o) => o.op), [...neighs('deleteNeigh'), 'deleteFdb'])
      t.same(planner.upsert(peers[5]!).map((o) => o.op), ['addFdb', ...neighs('addNeigh')])
      t.same(planner.upsert(peers[5]!), [], 'the same peer again: nothing')
      t.equal(planner.fullPlans, 1, 'no change re-planned every peer')
      t.equal(planner.size().programmed, 10_000)
      t.equal(tableText(planner.table()), tableText(planPeers(stack.devices(), SELF, [...peers], { flood })), 'the same table as a full plan')
    }
  })
}

t.test('incremental planner (dual-stack): a peer that gains or loses its IPv6 address changes that neighbour entry only', async (t) => {
  const planner = new PeerPlanner(dev6(), SELF)
  const base = peer('e1', '10.30.0.2', '192.168.50.2')
  planner.reset([base, peer('e2', '10.30.0.3', '192.168.50.2')])
  t.same(planner.upsert({ ...base, ip6: 'fd00:30::2' }), [{ op: 'addNeigh', entry: { dev: 'fyv-1000', ip: 'fd00:30::2', mac: '02:42:0a:1e:00:02' } }])
  t.same(planner.upsert(base), [{ op: 'deleteNeigh', entry: { dev: 'fyv-1000', ip: 'fd00:30::2', mac: '02:42:0a:1e:00:02' } }])
  t.same(planner.upsert({ ...peer('e3', '10.30.0.4', '192.168.50.3'), ip6: 'fd00:30::2' }).map((o) => o.op), ['addFdb', 'addNeigh', 'addNeigh'])
  t.same(planner.upsert({ ...base, ip6: 'fd00:30::2' }), [
    { op: 'deleteNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.4', mac: '02:42:0a:1e:00:04' } },
    { op: 'deleteFdb', entry: { dev: 'fyv-1000', mac: '02:42:0a:1e:00:04', dst: '192.168.50.3' } },
    { op: 'addNeigh', entry: { dev: 'fyv-1000', ip: 'fd00:30::2', mac: '02:42:0a:1e:00:02' } },
  ], 'a peer that takes another\'s IPv6 address is planned in full: the smaller endpoint id wins it, the other peer goes')
  t.equal(planner.fullPlans, 2)
})

t.test('incremental planner: a duplicate address is planned in full, with the same winner as planPeers', async (t) => {
  const planner = new PeerPlanner(dev(), SELF)
  planner.reset([peer('b', '10.30.0.2', '192.168.50.2'), peer('c', '10.30.0.3', '192.168.50.3')])
  const ops = planner.upsert(peer('a', '10.30.0.2', '192.168.50.4', 'host-x', '02:42:00:00:00:aa'))
  t.equal(planner.fullPlans, 2)
  t.same(ops.map((o) => o.op).sort(), ['addFdb', 'addNeigh', 'deleteFdb'], 'the smaller id takes the address')
  t.same(planner.size(), { peers: 3, programmed: 2, skipped: 1 })
  planner.remove('a')
  t.equal(tableText(planner.table()), tableText(planPeers(dev(), SELF, [peer('b', '10.30.0.2', '192.168.50.2'), peer('c', '10.30.0.3', '192.168.50.3')])))
})

t.test('incremental planner: load takes every peer as reset does, without the operations', async (t) => {
  const peers = [peer('b', '10.30.0.2', '192.168.50.2'), peer('c', '10.30.0.3', '192.168.50.3'), peer('a', '10.30.0.2', '192.168.50.4', 'host-x', '02:42:00:00:00:aa')]
  for (const flood of [false, true]) {
    const loaded = new PeerPlanner(dev(), SELF, { flood })
    const reset = new PeerPlanner(dev(), SELF, { flood })
    loaded.load([peer('z', '10.30.0.9', '192.168.50.9')])
    loaded.load(peers)
    reset.reset(peers)
    t.equal(tableText(loaded.table()), tableText(reset.table()), 'the same table as reset')
    t.same(loaded.size(), reset.size())
    t.equal(tableText(loaded.table()), tableText(planPeers(dev(), SELF, peers, { flood })), 'the same table as planPeers')
    t.same(loaded.remove('c').map((o) => o.op), ['deleteNeigh', 'deleteFdb', ...(flood ? ['deleteFdb'] : [])], 'changes after it are deltas')
    // loadTable: the same from a table of the vetted endpoints (their rows copied), whatever it held before.
    const table = new EndpointTable()
    for (const p of peers) table.set({ ...p, names: [p.endpointId] })
    const copied = new PeerPlanner(dev(), SELF, { flood })
    copied.load([peer('z', '10.30.0.9', '192.168.50.9')])
    copied.loadTable(table)
    t.equal(tableText(copied.table()), tableText(reset.table()), 'loadTable: the same table as reset')
    t.same(copied.size(), reset.size())
    t.equal(copied.fullPlans, 2)
    t.same(copied.remove('c').map((o) => o.op), ['deleteNeigh', 'deleteFdb', ...(flood ? ['deleteFdb'] : [])], 'loadTable: changes after it are deltas')
  }
})

t.test('overlay MTU and TCP MSS from the underlay, by family, plain and encrypted, in one place', async (t) => {
  t.equal(overlayMtu(1500, 4, false), 1450)
  t.equal(overlayMtu(1500, 6, false), 1430)
  t.equal(overlayMtu(1500, 4, true), 1390, 'WireGuard 60 + VXLAN over the IPv4 tunnel 50')
  t.equal(overlayMtu(1500, 6, true), 1370, 'WireGuard over IPv6 80 + 50')
  t.equal(overlayMtu(9000, 4, true), 8890)
  t.equal(tcpMss(1390, 4), 1350)
  t.equal(tcpMss(1390, 6), 1330)
  // overlayDevices agrees: a plain overlay over the VTEP, an encrypted one over the WireGuard device (MTU underlay - 60/80, IPv4 tunnel).
  const o = { name: 'o', vni: 7, subnet: '10.9.0.0/24', gateway: '10.9.0.1' }
  t.equal(overlayDevices(o, { vtep: '192.0.2.1', mtu: 1500 }).mtu, overlayMtu(1500, 4, false))
  t.equal(overlayDevices(o, { vtep: '2001:db8::1', mtu: 1500 }).mtu, overlayMtu(1500, 6, false))
  for (const family of [4, 6] as const) {
    t.equal(overlayDevices(o, { vtep: '100.64.0.7', mtu: 1500 - wgOverhead(family) }).mtu, overlayMtu(1500, family, true), `encrypted, IPv${family} underlay`)
  }
})

// ---------------------------------------------------------------------------
// Mixed-family underlays: a dual-stack host has a VXLAN device per family.

/** A dual-stack host: IPv4 VTEP first (its primary), IPv6 second. */
const U46 = { vtep: '192.168.50.1', mtu: 1500, dev: 'eth0', second: { vtep: 'fd00:ff::1', mtu: 1500, dev: 'eth0' } }
const SELF46 = { hostId: 'h1', vtep: '192.168.50.1' }
function dev46 (): OverlayDevices { return overlayDevices(OV6, U46) }

t.test('mixed family: which VTEP of a remote host this host sends to', async (t) => {
  const v4 = { vtep: '192.168.50.1' }
  const v6 = { vtep: 'fd00:ff::1' }
  const both = { vtep: '192.168.50.1', vtep2: 'fd00:ff::1' }
  const both6 = { vtep: 'fd00:ff::1', vtep2: '192.168.50.1' }
  t.equal(chooseVtep(v4, { vtep: '192.168.50.2' }), '192.168.50.2', 'one family each, the same')
  t.equal(chooseVtep(v4, { vtep: 'fd00:ff::2' }), undefined, 'IPv4-only to IPv6-only: none')
  t.equal(chooseVtep(v6, { vtep: '192.168.50.2' }), undefined, 'IPv6-only to IPv4-only: none')
  t.equal(chooseVtep(both, { vtep: 'fd00:ff::2' }), 'fd00:ff::2', 'dual-stack to IPv6-only: its IPv6 VTEP')
  t.equal(chooseVtep(both6, { vtep: '192.168.50.2' }), '192.168.50.2', 'dual-stack (IPv6 first) to IPv4-only')
  t.equal(chooseVtep(v4, { vtep: 'fd00:ff::3', vtep2: '192.168.50.3' }), '192.168.50.3', 'to a dual-stack host whose primary this host lacks: its second')
  t.equal(chooseVtep(v6, { vtep: 'fd00:ff::3', vtep2: '192.168.50.3' }), 'fd00:ff::3')
  t.equal(chooseVtep(both, { vtep: 'fd00:ff::3', vtep2: '192.168.50.3' }), 'fd00:ff::3', 'both dual-stack: the remote host\'s primary')
  t.equal(chooseVtep(both6, { vtep: '192.168.50.3', vtep2: 'fd00:ff::3' }), '192.168.50.3', 'whichever this host\'s primary is')
  t.equal(noCommonFamily('h2', { vtep: 'fd00::2' }, v4), 'host h2 advertises only IPv6 (fd00::2); this host has no IPv6 VTEP')
  t.equal(noCommonFamily('h1', { vtep: '192.168.50.1' }, v6), 'host h1 advertises only IPv4 (192.168.50.1); this host has no IPv4 VTEP')
})

t.test('mixed family: a dual-stack host\'s devices, a second VXLAN device named by its family, the MTU of the tighter underlay', async (t) => {
  const d = dev46()
  t.same(d.second, { vxlan: 'fyv-1000-6', local: 'fd00:ff::1', family: 6, dev: 'eth0' })
  t.equal(d.vxlan, 'fyv-1000', 'the primary device keeps its name')
  t.equal(d.mtu, 1430, 'the IPv6 underlay\'s 70 bytes decide')
  t.equal(overlayDevices(OV, { ...U46, mtu: 1400 }).mtu, 1350, 'or the IPv4 one, when its device is smaller')
  t.equal(overlayDevices({ ...OV, mtu: 1300 }, U46).mtu, 1300, 'a user MTU wins')
  t.equal(vxlanName2(16777215, 4), 'fyv-ffffff-4')
  t.ok(Buffer.byteLength(vxlanName2(16777215, 6)) <= 15 && isOverlayLinkName(vxlanName2(1, 6)), 'fits IFNAMSIZ, with ferry\'s prefix')
  t.same(vxlanDevices(d), ['fyv-1000', 'fyv-1000-6'])
  t.same(vxlanDevices(dev()), ['fyv-1000'])
  t.equal(vxlanFor(d, '192.168.50.7'), 'fyv-1000')
  t.equal(vxlanFor(d, 'fd00:ff::7'), 'fyv-1000-6')
  t.equal(vxlanFor(dev(), 'fd00:ff::7'), undefined, 'a single-family host has no device of the other family')
  t.throws(() => overlayDevices(OV, { ...U46, second: { vtep: '192.168.60.1', mtu: 1500 } }), { code: 'INVALID_OPTION', message: /same family as the first: a host has at most one VTEP per family/ })
})

t.test('mixed family: each peer\'s entries go on the device of its VTEP\'s family; a peer of no family of this host is left out', async (t) => {
  const peers = [
    peer('e2', '10.30.0.2', '192.168.50.2'),
    { ...peer('e3', '10.30.0.3', 'fd00:ff::3'), ip6: 'fd00:30::3' },
  ]
  const p = planPeers(dev46(), SELF46, peers)
  t.same(p.fdb, [{ dev: 'fyv-1000', mac: overlayMac('10.30.0.2'), dst: '192.168.50.2' }, { dev: 'fyv-1000-6', mac: overlayMac('10.30.0.3'), dst: 'fd00:ff::3' }])
  t.same(p.neigh, [
    { dev: 'fyv-1000', ip: '10.30.0.2', mac: overlayMac('10.30.0.2') },
    { dev: 'fyv-1000-6', ip: '10.30.0.3', mac: overlayMac('10.30.0.3') },
    { dev: 'fyv-1000-6', ip: 'fd00:30::3', mac: overlayMac('10.30.0.3') },
  ])
  t.same(p.skipped, [])
  const flood = planPeers(dev46(), SELF46, peers, { flood: true })
  t.same(flood.fdb.slice(2), [{ dev: 'fyv-1000', mac: '00:00:00:00:00:00', dst: '192.168.50.2' }, { dev: 'fyv-1000-6', mac: '00:00:00:00:00:00', dst: 'fd00:ff::3' }], 'flood entries on their family\'s device too')
  const v4only = planPeers(dev6(), SELF, peers)
  t.same(v4only.skipped.map((s) => [s.endpointId, s.reason]), [['e3', 'vtep-family']], 'an IPv4-only host leaves the IPv6 peer out')
  t.same(planPeers(dev46(), SELF46, [peer('e9', '10.30.0.9', 'fd00:ff::1', 'other')]).skipped.map((s) => s.reason), ['local'], 'this host\'s second VTEP is local too')
})

for (const flood of [false, true]) {
  t.test(`mixed family: random deltas on a dual-stack host (peers of both families, moving between them) equal the full plan${flood ? ' (flood)' : ''}`, async (t) => {
    const seeds = 30
    for (let seed = 1; seed <= seeds; seed++) {
      const r = rng(seed * 15485863 + (flood ? 1 : 0))
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
      const ips = ['10.30.0.2', '10.30.0.3', '10.30.0.4', '10.30.0.5']
      const vteps = ['192.168.50.2', '192.168.50.3', 'fd00:ff::2', 'fd00:ff::3', 'fd00:ff::1']
      const d = dev46()
      const planner = new PeerPlanner(d, SELF46, { flood })
      const current = new Map<string, RemotePeer>()
      let kernel: PeerTable = { fdb: [], neigh: [] }
      for (let step = 0; step < 50; step++) {
        const id = pick(['a', 'b', 'c', 'd', 'e'])
        const ip = pick(ips)
        const ops = change(planner, current, id, r() < 0.25 ? undefined : { ...peer(id, ip, pick(vteps)), ip6: v6Of(ip) })
        const before = kernel
        kernel = applyOpsToTable(kernel, ops)
        const want = planPeers(d, SELF46, [...current.values()], { flood })
        if (tableText(kernel) !== tableText(want) || tableText(planner.table()) !== tableText(want)) {
          t.fail(`seed ${seed} step ${step}: the deltas differ from the full plan`, { kernel: tableText(kernel), want: tableText(want) })
          return
        }
        // A full reconcile (against the kernel of both devices) and a resync (against another plan) give what diffPeers gives.
        const other = new PeerPlanner(r() < 0.5 ? d : dev6(), SELF46, { flood })
        other.load([...current.values()].filter(() => r() < 0.7).map((p) => (r() < 0.3 ? { ...p, vtep: pick(vteps) } : p)))
        for (const [from, to] of [[other, planner], [planner, other]] as const) {
          if (JSON.stringify(to.opsFromPlanner(from)) !== JSON.stringify(diffPeers(to.table(), from.table()))) {
            t.fail(`seed ${seed} step ${step}: opsFromPlanner differs from diffPeers of the tables`, { from: tableText(from.table()), to: tableText(to.table()) })
            return
          }
        }
        for (const actual of [before, kernel, { fdb: [], neigh: [] }]) {
          if (JSON.stringify(planner.opsFrom(actual)) !== JSON.stringify(diffPeers(planner.table(), actual))) {
            t.fail(`seed ${seed} step ${step}: opsFrom differs from diffPeers of the table`, { actual: tableText(actual) })
            return
          }
        }
      }
    }
    t.ok(true, `${seeds} random sequences of 50 changes match the full plan after every change (and opsFrom, opsFromPlanner = diffPeers)`)
  })
}

t.test('mixed family: one change on a dual-stack host is that endpoint\'s entries only, on its family\'s device', async (t) => {
  const peers: RemotePeer[] = []
  for (let i = 0; i < 2000; i++) {
    const n = 2 + i
    peers.push(peer(`p${i}`, `10.30.${n >> 8}.${n & 255}`, i % 2 === 0 ? `192.168.51.${(i % 200) + 1}` : `fd00:51::${(i % 200) + 1}`))
  }
  const planner = new PeerPlanner(overlayDevices(OV, U46), SELF46)
  planner.reset(peers)
  const ops = planner.upsert(peer('new', '10.30.200.1', 'fd00:51::7'))
  t.same(ops, [
    { op: 'addFdb', entry: { dev: 'fyv-1000-6', mac: overlayMac('10.30.200.1'), dst: 'fd00:51::7' } },
    { op: 'addNeigh', entry: { dev: 'fyv-1000-6', ip: '10.30.200.1', mac: overlayMac('10.30.200.1') } },
  ])
  const moved = planner.upsert(peer('new', '10.30.200.1', '192.168.51.7'))
  t.same(moved.map((o) => `${o.op} ${o.entry.dev}`).sort(), ['addFdb fyv-1000', 'addNeigh fyv-1000', 'deleteFdb fyv-1000-6', 'deleteNeigh fyv-1000-6'], 'its host reached over the other family now: moved to that device')
  t.equal(planner.fullPlans, 1, 'no full plan')
})

/**
 * A random kernel read of `d`'s devices against `planner`'s table: some of its entries as they are, some
 * with another destination or MAC, duplicates (the same key twice, another value last), entries of the
 * other family's device, flood entries (to VTEPs in the plan and not), multicast ones, and strays of both
 * families; device by device, as PeerSync reads them.
 */
function randomKernel (r: () => number, d: OverlayDevices, planner: PeerPlanner): PeerTable {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  const devs = vxlanDevices(d)
  const want = planner.table()
  const dsts = ['192.168.50.2', '192.168.50.3', 'fd00:ff::2', 'fd00:ff::3', '192.168.50.9']
  const macs = ['02:42:0a:1e:00:02', '02:42:0a:1e:00:03', '02:42:0a:1e:00:09', '00:00:00:00:00:00', '01:00:5e:00:00:01']
  const ips = ['10.30.0.2', '10.30.0.3', '10.30.0.9', 'fd00:30::2', 'fd00:30::3', 'fd00:30::9']
  const fdb: PeerTable['fdb'] = []
  const neigh: PeerTable['neigh'] = []
  for (const e of want.fdb) {
    const x = r()
    if (x < 0.5) fdb.push(e)
    else if (x < 0.65) fdb.push({ ...e, dst: pick(dsts) })
    else if (x < 0.75) fdb.push({ ...e, dev: pick(devs) })
    else if (x < 0.85) { fdb.push(e); fdb.push({ ...e, dst: pick(dsts) }) }
  }
  for (const e of want.neigh) {
    const x = r()
    if (x < 0.5) neigh.push(e)
    else if (x < 0.65) neigh.push({ ...e, mac: pick(macs) })
    else if (x < 0.75) neigh.push({ ...e, dev: pick(devs) })
    else if (x < 0.85) { neigh.push({ ...e, mac: pick(macs) }); neigh.push(e) }
  }
  for (let i = Math.floor(r() * 6); i > 0; i--) {
    const e = r() < 0.5 ? { dev: pick(devs), mac: pick(macs), dst: pick(dsts) } : { dev: pick(devs), mac: pick(macs) }
    fdb.splice(Math.floor(r() * (fdb.length + 1)), 0, e)
    neigh.splice(Math.floor(r() * (neigh.length + 1)), 0, { dev: pick(devs), ip: pick(ips), mac: pick(macs) })
  }
  const byDev = <E extends { dev: string }>(xs: E[]): E[] => devs.flatMap((v) => xs.filter((e) => e.dev === v))
  return { fdb: byDev(fdb), neigh: byDev(neigh) }
}

for (const [name, d, self] of [['IPv4', dev(), SELF], ['dual-stack overlay', dev6(), SELF], ['dual-stack host', dev46(), SELF46]] as const) {
  t.test(`the packed kernel index and diff (the repair's) give the object path's operations, in its order: ${name}`, async (t) => {
    const seeds = 200
    let ops = 0
    for (let seed = 1; seed <= seeds; seed++) {
      const r = rng(seed * 7919 + name.length)
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
      const vteps = ['192.168.50.2', '192.168.50.3', 'fd00:ff::2', 'fd00:ff::3']
      const planner = new PeerPlanner(d, self, { flood: r() < 0.5 })
      const peers: RemotePeer[] = []
      for (let i = 0; i < 1 + Math.floor(r() * 8); i++) {
        const ip = `10.30.0.${2 + Math.floor(r() * 8)}`
        const p = peer(`e${i}`, ip, pick(vteps))
        peers.push(d.subnet6 !== undefined && r() < 0.7 ? { ...p, ip6: v6Of(ip) } : p)
      }
      planner.load(peers)
      const actual = randomKernel(r, d, planner)
      const want = [...planner.opsFromIndexEach(indexKernel(actual))]
      const index = await indexPacked(vxlanDevices(d).map((v) => packPeers(v, actual)), 1 + Math.floor(r() * 5), async () => {})
      const got = [...planner.opsFromPackedSteps(index, 1 + Math.floor(r() * 5))].filter((o) => o !== null)
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.same(got, want, `seed ${seed}: the packed diff differs`, { actual: tableText(actual), table: tableText(planner.table()) })
        return
      }
      const again = [...planner.opsFromPackedSteps(index)].filter((o) => o !== null)
      if (JSON.stringify(again) !== JSON.stringify(want)) { t.same(again, want, `seed ${seed}: a second diff of the same index differs`); return }
      ops += want.length
    }
    t.ok(ops > seeds, `${seeds} random tables and kernel reads: the same ${ops} operations`)
  })
}

t.test('the packed diff against an empty read adds everything; against the plan itself, nothing', async (t) => {
  const d = dev46()
  const planner = new PeerPlanner(d, SELF46, { flood: true })
  planner.load([peer('a', '10.30.0.2', '192.168.50.2'), { ...peer('b', '10.30.0.3', 'fd00:ff::2'), ip6: 'fd00:30::3' }])
  const none = await indexPacked([], 4, async () => {})
  t.same([...planner.opsFromPackedSteps(none)].filter((o) => o !== null), diffPeers(planner.table(), { fdb: [], neigh: [] }))
  const all = await indexPacked(vxlanDevices(d).map((v) => packPeers(v, planner.table())), 4, async () => {})
  t.same([...planner.opsFromPackedSteps(all)].filter((o) => o !== null), [])
})
