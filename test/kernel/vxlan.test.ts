/**
 * The overlay data plane against real kernels: three network namespaces as
 * "hosts" joined by an underlay bridge in a fourth, each with the overlay's
 * bridge + VXLAN device built by the executor (running inside the namespace,
 * through nsNode) and a "container" namespace attached by a veth. The control
 * plane is real too: a redis-server on loopback, one RedisClusterStore and one
 * PeerSync per host in this process. Build first (`npm run build`): the
 * executor runs from dist/.
 */
import t from 'tap'
import { RedisClusterStore } from '../../src/cluster/redis.js'
import { PeerSync } from '../../src/vxlan/peers.js'
import type { OverlayDataPlane } from '../../src/vxlan/apply.js'
import { VXLAN_OFFLOADS, diffPeers, overlayDevices, overlayMac, planPeers, vxlanDevices, type OverlayDevices, type RemotePeer } from '../../src/vxlan/plan.js'
import type { LinkDriver } from '../../src/kernel/types.js'
import { PeerPlanner, indexPacked, type PackedPeers } from '../../src/vxlan/plan.js'
import { ipJson, netns, nsExec, sh } from '../harness/netns.js'
import { nsNode, type NsNode } from '../harness/nsnode.js'
import { redisServer } from '../harness/redis.js'
import { until } from '../harness/until.js'

type T = Parameters<Parameters<typeof t.test>[1]>[0]
const OV = { name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' }

/** The data plane running in a namespace, seen as a local object. */
function remote (node: NsNode<OverlayDataPlane>): OverlayDataPlane {
  return {
    ensureDevices: (d) => node.call('ensureDevices', [d]),
    removeDevices: (d) => node.call('removeDevices', [d]),
    readPeers: (v) => node.call('readPeers', [v]),
    applyPeerOps: (ops) => node.call('applyPeerOps', [ops]),
    underlay: (v) => node.call('underlay', [v]),
    close: () => {},
  }
}

interface SimHost { ns: string, vtep: string, node: NsNode<OverlayDataPlane>, dp: OverlayDataPlane }

/** An underlay bridge in its own namespace and `n` host namespaces on it (192.168.77.<i>/24 on eth0). */
async function underlay (t: T, n: number, mtu = 1500): Promise<SimHost[]> {
  const u = netns(t, 'fyvu')
  sh(['ip', '-n', u, 'link', 'add', 'ubr', 'type', 'bridge'])
  sh(['ip', '-n', u, 'link', 'set', 'ubr', 'up'])
  const hosts: SimHost[] = []
  for (let i = 1; i <= n; i++) {
    const ns = netns(t, 'fyvh')
    const vtep = `192.168.77.${i}`
    sh(['ip', '-n', ns, 'link', 'add', 'eth0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', `uh${i}`, 'mtu', String(mtu), 'netns', u])
    sh(['ip', '-n', u, 'link', 'set', `uh${i}`, 'master', 'ubr', 'up'])
    sh(['ip', '-n', ns, 'addr', 'add', `${vtep}/24`, 'dev', 'eth0'])
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    const node = await nsNode<OverlayDataPlane>(t, ns, { module: 'dist/vxlan/apply.js', factory: 'openOverlayDataPlane' })
    hosts.push({ ns, vtep, node, dp: remote(node) })
  }
  return hosts
}

/** A "container": a namespace with eth0 (the overlay address, its deterministic MAC) attached to `bridge` in `host`. */
function container (t: T, host: string, bridge: string, ip: string, mtu: number, tag: string): string {
  const c = netns(t, 'fyvc')
  sh(['ip', '-n', host, 'link', 'add', `fyh${tag}`, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', c])
  sh(['ip', '-n', host, 'link', 'set', `fyh${tag}`, 'master', bridge, 'up'])
  sh(['ip', '-n', c, 'link', 'set', 'eth0', 'address', overlayMac(ip), 'up'])
  sh(['ip', '-n', c, 'addr', 'add', `${ip}/16`, 'dev', 'eth0'])
  sh(['ip', '-n', c, 'route', 'add', 'default', 'via', OV.gateway])
  return c
}

/** One ping (busybox: the VM has no iputils). `size` is the ICMP payload. */
function pings (from: string, to: string, size = 56): boolean {
  return nsExec(from, ['busybox', 'ping', '-c1', '-W1', '-s', String(size), to], { allowFailure: true }).includes('1 packets received')
}

async function pingsSoon (from: string, to: string, tries = 5): Promise<boolean> {
  for (let i = 0; i < tries; i++) if (pings(from, to)) return true
  return false
}

interface JsonNeigh { dst: string, lladdr?: string, state?: string[] }
interface JsonFdb { mac: string, dst?: string, flags?: string[], state?: string }

function kernelPeers (ns: string, dev: string): { neigh: string[], fdb: string[] } {
  const neigh = ipJson<JsonNeigh[]>(ns, ['neigh', 'show', 'dev', dev]).map((n) => `${n.dst} ${n.lladdr ?? ''} ${(n.state ?? []).join(',')}`)
  const fdb = (JSON.parse(sh(['bridge', '-n', ns, '-j', 'fdb', 'show', 'dev', dev]) || '[]') as JsonFdb[])
    .filter((f) => f.dst !== undefined)
    .map((f) => `${f.mac} ${f.dst ?? ''} ${f.state ?? ''}`)
  return { neigh: neigh.sort(), fdb: fdb.sort() }
}

function overlayLinks (ns: string): string[] {
  return ipJson<Array<{ ifname: string }>>(ns, ['link', 'show']).map((l) => l.ifname).filter((n) => n.startsWith('fyv') || n.startsWith('fyo'))
}

t.test('three hosts: containers ping across hosts; a withdrawn peer goes; teardown leaves nothing', async (t) => {
  const redis = await redisServer(t)
  const hosts = await underlay(t, 3)
  const stores: RedisClusterStore[] = []
  const syncs: PeerSync[] = []
  for (const [i, h] of hosts.entries()) {
    const store = new RedisClusterStore({ url: redis.url, hostId: `host${i + 1}`, advertiseAddr: h.vtep, heartbeatMs: 0 })
    t.teardown(() => store.close())
    await store.start()
    const sync = new PeerSync({ store, dataPlane: h.dp, fullReconcileMs: 0 })
    sync.start()
    t.teardown(() => sync.stop())
    stores.push(store)
    syncs.push(sync)
  }
  // CreateNetwork on every host: define (or join) the overlay, then build its devices.
  const containers: string[] = []
  const ips = ['10.30.0.11', '10.30.0.12', '10.30.0.13']
  for (const [i, h] of hosts.entries()) {
    const def = await stores[i]!.defineOverlay(OV)
    const d = await syncs[i]!.attach({ ...OV, vni: def.vni })
    t.match(d, { vxlan: 'fyv-1000', mtu: 1450, local: h.vtep, dev: 'eth0' })
    // CreateEndpoint + Join: a cluster-wide address, a veth on the bridge, the endpoint published.
    const ip = await stores[i]!.allocateAddress('ov1', ips[i])
    containers.push(container(t, h.ns, d.bridge, ip, d.mtu, `c${i + 1}`))
    await stores[i]!.publishEndpoint({ overlay: 'ov1', endpointId: `ep${i + 1}`, ip, mac: overlayMac(ip) })
  }
  await until('every host programmed its two peers', async () => {
    await Promise.all(syncs.map((s) => s.settled()))
    return syncs.every((s) => s.status().overlays[0]?.peers === 2)
  })

  const [h1] = hosts
  const d1 = syncs[0]!.devices('ov1')!
  const link = ipJson<Array<{ mtu: number, master?: string, linkinfo: { info_kind: string, info_data: Record<string, unknown> } }>>(h1!.ns, ['-d', 'link', 'show', 'fyv-1000'])[0]
  t.match(link, { mtu: 1450, master: d1.bridge, linkinfo: { info_kind: 'vxlan', info_data: { id: 4096, port: 4789, local: '192.168.77.1', learning: false, proxy: true } } },
    'VXLAN device: VNI, port 4789, source = VTEP, learning off, proxy ARP on')
  t.match(ipJson<Array<{ address: string, mtu: number }>>(h1!.ns, ['link', 'show', d1.bridge])[0], { address: '02:42:0a:1e:00:01', mtu: 1450 })
  t.same(kernelPeers(h1!.ns, 'fyv-1000'), {
    neigh: ['10.30.0.12 02:42:0a:1e:00:0c PERMANENT', '10.30.0.13 02:42:0a:1e:00:0d PERMANENT'],
    fdb: ['02:42:0a:1e:00:0c 192.168.77.2 permanent', '02:42:0a:1e:00:0d 192.168.77.3 permanent'],
  }, 'static entries for the two remote endpoints only')

  t.ok(await pingsSoon(containers[0]!, '10.30.0.12'), 'c1 (host 1) pings c2 (host 2)')
  t.ok(await pingsSoon(containers[0]!, '10.30.0.13'), 'c1 (host 1) pings c3 (host 3)')
  t.ok(await pingsSoon(containers[2]!, '10.30.0.12'), 'c3 (host 3) pings c2 (host 2)')
  t.ok(await pingsSoon(containers[1]!, '10.30.0.1'), 'c2 pings the gateway (its own host\'s bridge)')
  t.ok(pings(containers[0]!, '10.30.0.12', 1450 - 28), 'a full-MTU packet (1450 bytes, 1500 once encapsulated) crosses')

  const report = await syncs[0]!.report('ov1')
  t.match(report, { source: 'cluster', differences: 0, conflicts: 0 })
  t.same(report.rows.map((r) => [r.ip, r.hostId, r.status]), [['10.30.0.12', 'host2', 'ok'], ['10.30.0.13', 'host3', 'ok']])

  // DeleteEndpoint on host 3: withdrawn; the others remove its entries.
  t.equal(await stores[2]!.withdrawEndpoint('ov1', 'ep3'), true)
  await until('the withdrawal reached hosts 1 and 2', async () => {
    await Promise.all(syncs.map((s) => s.settled()))
    return syncs.slice(0, 2).every((s) => s.status().overlays[0]?.peers === 1)
  })
  for (const h of hosts.slice(0, 2)) {
    const k = kernelPeers(h.ns, 'fyv-1000')
    t.notOk(k.neigh.some((n) => n.startsWith('10.30.0.13 ')) || k.fdb.some((f) => f.startsWith('02:42:0a:1e:00:0d ')), `host ${h.vtep}: c3's entries are gone`)
  }
  t.notOk(pings(containers[0]!, '10.30.0.13'), 'c1 no longer reaches c3')
  t.ok(await pingsSoon(containers[0]!, '10.30.0.12'), 'c1 still reaches c2')

  // DeleteNetwork on every host: devices go, the cluster forgets the overlay.
  for (const [i, h] of hosts.entries()) {
    await syncs[i]!.detach('ov1')
    await stores[i]!.removeOverlayHost('ov1')
    t.same(overlayLinks(h.ns), [], `host ${h.vtep}: no overlay device left`)
    t.same(ipJson<JsonNeigh[]>(h.ns, ['neigh', 'show']).filter((n) => n.dst.startsWith('10.30.')), [], `host ${h.vtep}: no overlay neighbour left`)
    t.same((JSON.parse(sh(['bridge', '-n', h.ns, '-j', 'fdb', 'show']) || '[]') as JsonFdb[]).filter((f) => f.mac.startsWith('02:42:0a:1e')), [], `host ${h.vtep}: no overlay FDB entry left`)
  }
  for (const s of stores) await s.leave()
  t.same(redis.keys('*'), [], 'no key left in Redis')
})

t.test('the executor in a namespace: planner-driven add and remove, idempotent devices', async (t) => {
  const [h] = await underlay(t, 1)
  const d = overlayDevices({ ...OV, vni: 77, port: 8472 }, await h!.dp.underlay(h!.vtep))
  await h!.dp.ensureDevices(d)
  await h!.dp.ensureDevices(d)
  t.match(ipJson<Array<{ linkinfo: { info_data: Record<string, unknown> } }>>(h!.ns, ['-d', 'link', 'show', d.vxlan])[0],
    { linkinfo: { info_data: { id: 77, port: 8472, proxy: true, learning: false } } })
  const self = { hostId: 'me', vtep: h!.vtep }
  const peers: RemotePeer[] = ['10.30.0.2', '10.30.0.3', '10.30.0.4'].map((ip, i) => ({ endpointId: `e${i}`, hostId: `h${i}`, ip, mac: overlayMac(ip), vtep: `192.168.77.${10 + i}` }))
  const program = async (list: RemotePeer[], flood = false): Promise<number> => {
    const ops = diffPeers(planPeers(d, self, list, { flood }), await h!.dp.readPeers(d.vxlan))
    await h!.dp.applyPeerOps(ops)
    return ops.length
  }
  t.equal(await program(peers), 6)
  t.equal(await program(peers), 0, 'nothing to do the second time: the kernel reads back what was planned')
  t.equal((await program(peers, true)), 3, 'flood entries added (one per remote VTEP)')
  t.equal(kernelPeers(h!.ns, d.vxlan).fdb.filter((f) => f.startsWith('00:00:00:00:00:00')).length, 3)
  t.equal(await program(peers.slice(0, 2), true), 2 + 1, 'a removed peer: its neighbour and FDB entry, and its VTEP\'s flood entry')
  t.equal(await program(peers.slice(0, 2)), 2, 'flood entries off again: the two that were left go')
  t.same(kernelPeers(h!.ns, d.vxlan), {
    neigh: ['10.30.0.2 02:42:0a:1e:00:02 PERMANENT', '10.30.0.3 02:42:0a:1e:00:03 PERMANENT'],
    fdb: ['02:42:0a:1e:00:02 192.168.77.10 permanent', '02:42:0a:1e:00:03 192.168.77.11 permanent'],
  })
  const moved = [{ ...peers[0]!, vtep: '192.168.77.99' }, peers[1]!]
  t.equal(await program(moved), 1, 'a peer that moved to another host: one replace')
  t.match(kernelPeers(h!.ns, d.vxlan).fdb, ['02:42:0a:1e:00:02 192.168.77.99 permanent', '02:42:0a:1e:00:03 192.168.77.11 permanent'])
  await h!.dp.removeDevices(d)
  await h!.dp.removeDevices(d)
  t.same(overlayLinks(h!.ns), [])
})

t.test('MTU follows the underlay (jumbo frames: 9000 - 50)', async (t) => {
  const [h] = await underlay(t, 1, 9000)
  const d = overlayDevices({ ...OV, vni: 4096 }, await h!.dp.underlay(h!.vtep))
  t.equal(d.mtu, 8950)
  await h!.dp.ensureDevices(d)
  t.same(ipJson<Array<{ ifname: string, mtu: number }>>(h!.ns, ['link', 'show']).filter((l) => l.ifname.startsWith('fy')).map((l) => l.mtu), [8950, 8950])
  await h!.dp.removeDevices(d)
})

t.test('the VXLAN device as ferry creates it: outer UDP checksums and offloads on, over an IPv4 and an IPv6 underlay (read back)', async (t) => {
  const [h] = await underlay(t, 1)
  sh(['ip', '-n', h!.ns, 'addr', 'add', 'fd77::1/64', 'dev', 'eth0', 'nodad'])
  const links = await nsNode<LinkDriver>(t, h!.ns, { module: 'dist/kernel/netlink.js', factory: 'openLinkDriver' })
  for (const [vtep, vni, mtu] of [[h!.vtep, 4100, 1450], ['fd77::1', 4101, 1430]] as const) {
    const d = overlayDevices({ ...OV, name: `ov${vni}`, vni }, await h!.dp.underlay(vtep))
    t.equal(d.mtu, mtu, `IPv${vtep.includes(':') ? 6 : 4} underlay: MTU 1500 - VXLAN's headers`)
    await h!.dp.ensureDevices(d)
    const data = ipJson<Array<{ linkinfo: { info_data: Record<string, unknown> } }>>(h!.ns, ['-d', 'link', 'show', d.vxlan])[0]?.linkinfo.info_data
    t.match(data, { id: vni, udp_csum: true, udp_zero_csum6_tx: false, udp_zero_csum6_rx: false }, `${d.vxlan}: outer UDP checksums computed and required`)
    // remote checksum offload stalled every TCP transfer over a veth underlay (docs/overlay.md, The data path split)
    t.same([data?.remcsum_tx ?? false, data?.remcsum_rx ?? false], [false, false], `${d.vxlan}: no remote checksum offload`)
    const active = await links.call('getFeatures', [d.vxlan])
    t.same(Object.keys(VXLAN_OFFLOADS).filter((f) => !active.includes(f)), [], `${d.vxlan}: every offload ferry sets is active (${active.join(' ')})`)
    await h!.dp.removeDevices(d)
  }
})

/** ICMP echo requests a namespace has received (/proc/net/snmp, Icmp InEchos). */
function echosIn (ns: string): number {
  const lines = nsExec(ns, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Icmp:'))
  const [names, values] = lines.map((l) => l.split(/\s+/))
  return Number(values?.[names?.indexOf('InEchos') ?? -1] ?? NaN)
}

t.test('mixed family: h1 IPv4 only, h2 IPv6 only, h3 both (two isolated VXLAN devices): h1<->h3 and h2<->h3 ping, h1<->h2 not even through h3; removal leaves nothing', async (t) => {
  const [h1, h2, h3] = await underlay(t, 3)
  sh(['ip', '-n', h2!.ns, 'addr', 'del', `${h2!.vtep}/24`, 'dev', 'eth0'])
  sh(['ip', '-n', h2!.ns, 'addr', 'add', 'fd77::2/64', 'dev', 'eth0', 'nodad'])
  sh(['ip', '-n', h3!.ns, 'addr', 'add', 'fd77::3/64', 'dev', 'eth0', 'nodad'])
  const vteps = { h1: h1!.vtep, h2: 'fd77::2', h3: h3!.vtep, h3v6: 'fd77::3' }
  const ov = { ...OV, vni: 4200 }
  const d1 = overlayDevices(ov, await h1!.dp.underlay(vteps.h1))
  const d2 = overlayDevices(ov, await h2!.dp.underlay(vteps.h2))
  const d3 = overlayDevices(ov, { ...await h3!.dp.underlay(vteps.h3), second: await h3!.dp.underlay(vteps.h3v6) })
  t.same([d1.mtu, d2.mtu, d3.mtu], [1450, 1430, 1430], 'h3 fits the IPv6 underlay\'s larger headers')
  for (const [h, d] of [[h1!, d1], [h2!, d2], [h3!, d3]] as const) await h.dp.ensureDevices(d)
  await h3!.dp.ensureDevices(d3)
  interface SlaveLink { ifname: string, linkinfo: { info_data: Record<string, unknown>, info_slave_kind?: string, info_slave_data?: { isolated?: boolean } } }
  const vx = (d: OverlayDevices): SlaveLink[] => vxlanDevices(d).map((name) => ipJson<SlaveLink[]>(h3!.ns, ['-d', 'link', 'show', name])[0]!)
  t.same(vx(d3).map((l) => [l.ifname, l.linkinfo.info_slave_kind, l.linkinfo.info_slave_data?.isolated]), [['fyv-1068', 'bridge', true], ['fyv-1068-6', 'bridge', true]],
    'two VXLAN devices of one VNI, both isolated ports of the overlay bridge (idempotent)')
  t.same(vx(d3).map((l) => [l.linkinfo.info_data.id, l.linkinfo.info_data.local ?? l.linkinfo.info_data.local6]), [[4200, '192.168.77.3'], [4200, 'fd77::3']], 'one per underlay family')
  const c1 = container(t, h1!.ns, d1.bridge, '10.30.0.11', d1.mtu, 'm1')
  const c2 = container(t, h2!.ns, d2.bridge, '10.30.0.12', d2.mtu, 'm2')
  const c3 = container(t, h3!.ns, d3.bridge, '10.30.0.13', d3.mtu, 'm3')
  const ep = (n: number, hostId: string, vtep: string): RemotePeer => ({ endpointId: `e${n}`, hostId, ip: `10.30.0.${10 + n}`, mac: overlayMac(`10.30.0.${10 + n}`), vtep })
  // Each host's peers with the VTEP PeerSync chooses (chooseVtep): h1 and h2 have no family in common.
  const plans: Array<[SimHost, OverlayDevices, RemotePeer[]]> = [
    [h1!, d1, [ep(2, 'h2', vteps.h2), ep(3, 'h3', vteps.h3)]],
    [h2!, d2, [ep(1, 'h1', vteps.h1), ep(3, 'h3', vteps.h3v6)]],
    [h3!, d3, [ep(1, 'h1', vteps.h1), ep(2, 'h2', vteps.h2)]],
  ]
  for (const [h, d, peers] of plans) {
    const plan = planPeers(d, { hostId: h.ns, vtep: d.local }, peers)
    const actual = await Promise.all(vxlanDevices(d).map((v) => h.dp.readPeers(v)))
    await h.dp.applyPeerOps(diffPeers(plan, { fdb: actual.flatMap((a) => a.fdb), neigh: actual.flatMap((a) => a.neigh) }))
    if (h === h1) t.same(plan.skipped.map((s) => [s.endpointId, s.reason]), [['e2', 'vtep-family']], 'h1 leaves h2\'s endpoint out')
  }
  t.same(kernelPeers(h3!.ns, 'fyv-1068'), { neigh: ['10.30.0.11 02:42:0a:1e:00:0b PERMANENT'], fdb: ['02:42:0a:1e:00:0b 192.168.77.1 permanent'] }, 'h3: h1 on the IPv4 device')
  t.same(kernelPeers(h3!.ns, 'fyv-1068-6'), { neigh: ['10.30.0.12 02:42:0a:1e:00:0c PERMANENT'], fdb: ['02:42:0a:1e:00:0c fd77::2 permanent'] }, 'h2 on the IPv6 device')
  t.ok(await pingsSoon(c1, '10.30.0.13'), 'h1 -> h3 (IPv4 underlay)')
  t.ok(await pingsSoon(c3, '10.30.0.11'), 'h3 -> h1')
  t.ok(await pingsSoon(c2, '10.30.0.13'), 'h2 -> h3 (IPv6 underlay)')
  t.ok(await pingsSoon(c3, '10.30.0.12'), 'h3 -> h2')
  t.notOk(pings(c1, '10.30.0.12'), 'h1 -> h2: no path')
  // Even if h1 sent h2's traffic to h3 (a forged or stale entry), h3's bridge does not relay it between its two tunnels.
  await h1!.dp.applyPeerOps([{ op: 'addFdb', entry: { dev: d1.vxlan, mac: overlayMac('10.30.0.12'), dst: vteps.h3 } }, { op: 'addNeigh', entry: { dev: d1.vxlan, ip: '10.30.0.12', mac: overlayMac('10.30.0.12') } }])
  const before = echosIn(c2)
  t.notOk(pings(c1, '10.30.0.12'), 'h1 -> h3 -> h2: refused')
  t.equal(echosIn(c2), before, 'no echo request reached h2\'s container: the isolated ports do not relay')
  sh(['bridge', '-n', h3!.ns, 'link', 'set', 'dev', 'fyv-1068', 'isolated', 'off'])
  pings(c1, '10.30.0.12')
  t.ok(echosIn(c2) > before, 'control: with the IPv4 port not isolated, h3 would relay h1\'s frames to h2')
  for (const [h, d] of [[h1!, d1], [h2!, d2], [h3!, d3]] as const) await h.dp.removeDevices(d)
  for (const h of [h1!, h2!, h3!]) t.same(overlayLinks(h.ns), [], `${h.ns}: nothing left`)
})

t.test('programming 10,000 peers (100 hosts x 100 endpoints) into a namespace', async (t) => {
  const [h] = await underlay(t, 1)
  const d = overlayDevices({ ...OV, vni: 4096 }, await h!.dp.underlay(h!.vtep))
  await h!.dp.ensureDevices(d)
  const peers: RemotePeer[] = []
  for (let host = 0; host < 100; host++) {
    for (let e = 0; e < 100; e++) {
      const n = 2 + host * 100 + e
      const ip = `10.30.${n >> 8}.${n & 255}`
      peers.push({ endpointId: `h${host}e${e}`, hostId: `host${host}`, ip, mac: overlayMac(ip), vtep: `192.168.78.${host + 1}` })
    }
  }
  const t0 = performance.now()
  const plan = planPeers(d, { hostId: 'me', vtep: h!.vtep }, peers)
  const read = await h!.node.timed('readPeers', [d.vxlan])
  const ops = diffPeers(plan, read.result)
  const applied = await h!.node.timed('applyPeerOps', [ops])
  const total = performance.now() - t0
  t.equal(ops.length, 20_000)
  const k = kernelPeers(h!.ns, d.vxlan)
  t.equal(k.neigh.length, 10_000, '10,000 neighbour entries')
  t.equal(k.fdb.length, 10_000, '10,000 FDB entries')
  t.comment(`10,000 peers: ${total.toFixed(0)} ms end to end (kernel read ${read.ms.toFixed(0)} ms, batched apply ${applied.ms.toFixed(0)} ms in the namespace)`)

  const r0 = performance.now()
  const again = diffPeers(plan, await h!.dp.readPeers(d.vxlan))
  t.equal(again.length, 0, 'the kernel reads back exactly the plan')
  t.comment(`full re-read and diff of 10,000 peers: ${(performance.now() - r0).toFixed(0)} ms`)

  // The periodic repair's read: packed, indexed and diffed as bytes (its bytes travel here as JSON).
  type Wire = { dev: string, fdb: { bytes: Record<string, number>, count: number }, neigh: { bytes: Record<string, number>, count: number } }
  const wire = await (h!.node as unknown as NsNode<{ readPeersPacked: (v: string) => Wire }>).call('readPeersPacked', [d.vxlan])
  const packed: PackedPeers = {
    dev: wire.dev,
    fdb: { bytes: Uint8Array.from(Object.values(wire.fdb.bytes)), count: wire.fdb.count },
    neigh: { bytes: Uint8Array.from(Object.values(wire.neigh.bytes)), count: wire.neigh.count },
  }
  t.same([packed.fdb.count, packed.neigh.count], [10_000, 10_000], 'the packed read: every entry')
  const planner = new PeerPlanner(d, { hostId: 'me', vtep: h!.vtep })
  planner.load(peers)
  const diff = async (p: PeerPlanner): Promise<unknown[]> => [...p.opsFromPackedSteps(await indexPacked([packed], 2048, async () => {}))].filter((o) => o !== null)
  t.same(await diff(planner), [], 'the packed read diffs to nothing against the plan')
  planner.remove(peers[0]!.endpointId)
  t.same(await diff(planner), diffPeers(planner.table(), plan), 'one peer fewer in the plan: its two entries go')

  const one = diffPeers(planPeers(d, { hostId: 'me', vtep: h!.vtep }, peers.slice(1)), { fdb: plan.fdb, neigh: plan.neigh })
  const inc = await h!.node.timed('applyPeerOps', [one])
  t.equal(one.length, 2)
  t.comment(`one peer removed (incremental, through netlink): ${inc.ms.toFixed(2)} ms`)

  const gone = await h!.node.timed('applyPeerOps', [diffPeers({ fdb: [], neigh: [] }, await h!.dp.readPeers(d.vxlan))])
  t.comment(`removing 9,999 peers: ${gone.ms.toFixed(0)} ms`)
  t.same(kernelPeers(h!.ns, d.vxlan), { neigh: [], fdb: [] })
  await h!.dp.removeDevices(d)
})

t.test('a fresh agent programs 10,000 peers from Redis (100 hosts x 100 endpoints)', async (t) => {
  const redis = await redisServer(t)
  const [h] = await underlay(t, 1)
  // 100 simulated hosts write their endpoints.
  const writers: RedisClusterStore[] = []
  for (let i = 0; i < 100; i++) {
    const s = new RedisClusterStore({ url: redis.url, hostId: `sim${i}`, advertiseAddr: `192.168.78.${i + 1}`, heartbeatMs: 0, hostTtlMs: 600_000 })
    t.teardown(() => s.close())
    writers.push(s)
  }
  await Promise.all(writers.map((s) => s.start()))
  const w0 = performance.now()
  await Promise.all(writers.map(async (s, i) => {
    await s.defineOverlay(OV)
    for (let e = 0; e < 100; e++) {
      const n = 2 + i * 100 + e
      // An address is published only by the host the cluster allocated it to.
      const ip = await s.allocateAddress('ov1', `10.30.${n >> 8}.${n & 255}`)
      await s.publishEndpoint({ overlay: 'ov1', endpointId: `sim${i}e${e}`, ip, mac: overlayMac(ip) })
    }
  }))
  t.comment(`100 hosts wrote 10,000 endpoints in ${(performance.now() - w0).toFixed(0)} ms (${writers.reduce((a, s) => a + s.status().commands, 0)} commands in all)`)

  const t0 = performance.now()
  const store = new RedisClusterStore({ url: redis.url, hostId: 'fresh', advertiseAddr: h!.vtep, heartbeatMs: 0 })
  t.teardown(() => store.close())
  await store.start()
  const sync = new PeerSync({ store, dataPlane: h!.dp, fullReconcileMs: 0 })
  sync.start()
  t.teardown(() => sync.stop())
  const def = await store.defineOverlay(OV)
  await sync.attach({ ...OV, vni: def.vni })
  await sync.settled()
  const total = performance.now() - t0
  const k = kernelPeers(h!.ns, 'fyv-1000')
  t.equal(k.neigh.length, 10_000)
  t.equal(k.fdb.length, 10_000)
  t.comment(`fresh agent: connect, snapshot, plan and program 10,000 peers: ${total.toFixed(0)} ms`)
  await sync.detach('ov1')
  await store.leave()
  await Promise.all(writers.map((s) => s.leave()))
  t.same(redis.keys('*'), [])
})
