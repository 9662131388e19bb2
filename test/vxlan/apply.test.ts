import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import { FakeLinkDriver } from '../harness/kernel-fake.js'
import { KernelOverlayDataPlane, batchStages } from '../../src/vxlan/apply.js'
import { batchLine, batchRuns, type BatchRunner } from '../../src/kernel/iproute.js'
import { VXLAN_OFFLOADS, overlayDevices, type PeerOp } from '../../src/vxlan/plan.js'
import type { NeighFdbFailure } from '../../src/kernel/types.js'

const D = overlayDevices({ name: 'ov1', vni: 4096, subnet: '10.30.0.0/16', gateway: '10.30.0.1' }, { vtep: '192.168.50.1', mtu: 1500, dev: 'eth0' })

function world (batch: BatchRunner | null = null) {
  const links = new FakeLinkDriver({ links: [{ name: 'eth0', mtu: 1500, up: true }] })
  const dp = new KernelOverlayDataPlane(links, { batch, batchThreshold: 4 })
  return { links, dp }
}

t.test('ensureDevices builds bridge + VXLAN device, idempotently', async (t) => {
  const { links, dp } = world()
  await links.addAddress('eth0', '192.168.50.1/24')
  await dp.ensureDevices(D)
  const br = await links.getLink(D.bridge)
  const vx = await links.getLink('fyv-1000')
  t.match(br, { kind: 'bridge', mtu: 1450, mac: '02:42:0a:1e:00:01', up: true }, 'deterministic bridge MAC from the gateway')
  t.match(vx, { kind: 'vxlan', mtu: 1450, up: true, master: br?.index })
  t.same(links.vxlanOf('fyv-1000'), { vni: 4096, port: 4789, local: '192.168.50.1', learning: false, proxy: true, udpCsum: true, mtu: 1450, dev: 'eth0' })
  t.same(await links.getFeatures('fyv-1000'), Object.keys(VXLAN_OFFLOADS).sort(), 'the offloads ferry sets, set at creation')
  t.same((await links.listAddresses()).filter((a) => a.ifname === D.bridge).map((a) => a.cidr), ['10.30.0.1/16'])
  links.clearCalls()
  await dp.ensureDevices(D)
  t.same(links.mutations.map((c) => c.op), ['addAddress', 'setMaster', 'setUp', 'setUp'], 'a second run creates nothing (nor sets the offloads again)')
  t.same(await dp.underlay('192.168.50.1'), { vtep: '192.168.50.1', mtu: 1500, dev: 'eth0' })
  await t.rejects(dp.underlay('192.168.50.9'), { code: 'INVALID_OPTION', message: 'the advertise address 192.168.50.9 is not an address of this host' })
})

t.test('ensureDevices of a dual-stack overlay: both gateways on the bridge, explicit IPv6 settings on the bridge and the VXLAN device', async (t) => {
  const { links, dp } = world()
  const D6 = overlayDevices({ name: 'ov1', vni: 4096, subnet: '10.30.0.0/16', gateway: '10.30.0.1', subnet6: 'fd00:30::/64', gateway6: 'fd00:30::1' },
    { vtep: '192.168.50.1', mtu: 1500, dev: 'eth0' })
  await dp.ensureDevices(D6)
  await links.addAddress(D6.bridge, 'fe80::42/64')
  await links.addAddress(D6.bridge, 'fd00:99::1/64')
  await dp.ensureDevices(D6)
  t.same((await links.listAddresses()).filter((a) => a.ifname === D6.bridge).map((a) => a.cidr).sort(), ['10.30.0.1/16', 'fd00:30::1/64', 'fe80::42/64'],
    'a stray IPv6 address goes; the link-local one stays')
  for (const dev of [D6.bridge, D6.vxlan]) {
    // The VXLAN device needs IPv6 on: the kernel keeps no IPv6 neighbour (proxy NDP) on a device with disable_ipv6=1.
    t.same([await links.getIpv6Conf(dev, 'disable_ipv6'), await links.getIpv6Conf(dev, 'accept_ra'), await links.getIpv6Conf(dev, 'autoconf')], ['0', '0', '0'], dev)
  }
  const { dp: dp4, links: links4 } = world()
  await dp4.ensureDevices(D)
  t.notOk(links4.mutations.some((c) => c.op === 'setIpv6Conf'), 'an IPv4-only overlay leaves IPv6 settings alone')
})

t.test('ensureDevices repairs: MTU, stray address, the VXLAN device of an old VNI', async (t) => {
  const { links, dp } = world()
  await dp.ensureDevices(overlayDevices({ name: 'ov1', vni: 77, subnet: '10.30.0.0/16', gateway: '10.30.0.1' }, { vtep: '192.168.50.1', mtu: 1500 }))
  await links.setMtu(D.bridge, 1500)
  await links.addAddress(D.bridge, '10.99.0.1/24')
  await dp.ensureDevices(D)
  t.equal((await links.getLink(D.bridge))?.mtu, 1450)
  t.same((await links.listAddresses()).filter((a) => a.ifname === D.bridge).map((a) => a.cidr), ['10.30.0.1/16'])
  t.equal(await links.getLink('fyv-4d'), undefined, 'the old VNI\'s device is gone')
  t.ok(await links.getLink('fyv-1000'))
})

t.test('ensureDevices undoes what it created when a step fails, and refuses foreign names', async (t) => {
  const { links, dp } = world()
  links.failOn('setMaster', 1, new Error('injected'))
  await t.rejects(dp.ensureDevices(D), /injected/)
  t.same((await links.listLinks()).map((l) => l.name), ['lo', 'eth0'], 'nothing left')
  const w2 = world()
  await w2.links.createVeth('fyv-1000', 'peer0')
  await t.rejects(w2.dp.ensureDevices(D), { code: 'NAME_CONFLICT', message: /fyv-1000 exists as a veth device/ })
  t.equal(await w2.links.getLink(D.bridge), undefined, 'checked before anything is created')
})

t.test('the offloads: a kernel without ethtool netlink keeps its defaults; any other refusal undoes the devices', async (t) => {
  const { links, dp } = world()
  links.failOn('setFeatures', 1, new FerryError('UNSUPPORTED', 'the kernel has no ethtool netlink interface'))
  await dp.ensureDevices(D)
  t.ok(await links.getLink(D.vxlan), 'built all the same')
  const w2 = world()
  w2.links.failOn('setFeatures', 1)
  await t.rejects(w2.dp.ensureDevices(D), { code: 'KERNEL', message: /injected failure of setFeatures/ })
  t.same((await w2.links.listLinks()).map((l) => l.name), ['lo', 'eth0'], 'nothing left')
})

t.test('removeDevices is idempotent', async (t) => {
  const { links, dp } = world()
  await dp.ensureDevices(D)
  await dp.removeDevices(D)
  await dp.removeDevices(D)
  t.same((await links.listLinks()).map((l) => l.name), ['lo', 'eth0'])
})

const ADD: PeerOp[] = [
  { op: 'addFdb', entry: { dev: 'fyv-1000', mac: '02:42:0a:1e:00:02', dst: '192.168.50.2' } },
  { op: 'addNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02' } },
]

t.test('few peer operations go through the LinkDriver', async (t) => {
  let batches = 0
  const { links, dp } = world(async () => { batches++; return '' })
  await dp.ensureDevices(D)
  await dp.applyPeerOps(ADD)
  t.equal(batches, 0)
  t.same(await dp.readPeers('fyv-1000'), { fdb: [ADD[0]!.entry], neigh: [ADD[1]!.entry] })
  await dp.applyPeerOps([{ op: 'deleteNeigh', entry: ADD[1]!.entry }, { op: 'deleteFdb', entry: ADD[0]!.entry as never }])
  t.same(await dp.readPeers('fyv-1000'), { fdb: [], neigh: [] })
  t.same(await dp.readPeers('nonexistent'), { fdb: [], neigh: [] })
  await dp.applyPeerOps([])
})

t.test('many peer operations go in batches, in order, one run per tool change', async (t) => {
  const runs: Array<{ tool: string, lines: readonly string[] }> = []
  const { dp } = world(async (tool, lines) => { runs.push({ tool, lines }); return '' })
  const ops: PeerOp[] = [
    { op: 'deleteNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.9', mac: '02:42:0a:1e:00:09' } },
    { op: 'deleteFdb', entry: { dev: 'fyv-1000', mac: '02:42:0a:1e:00:09', dst: '192.168.50.3' } },
    ...ADD.slice(0, 1),
    { op: 'addFdb', entry: { dev: 'fyv-1000', mac: '00:00:00:00:00:00', dst: '192.168.50.2' } },
    ...ADD.slice(1),
  ]
  await dp.applyPeerOps(ops)
  t.same(runs, [
    { tool: 'ip', lines: ['neigh del 10.30.0.9 dev fyv-1000'] },
    { tool: 'bridge', lines: ['fdb del 02:42:0a:1e:00:09 dev fyv-1000 dst 192.168.50.3 self', 'fdb replace 02:42:0a:1e:00:02 dev fyv-1000 dst 192.168.50.2 self permanent',
      'fdb append 00:00:00:00:00:00 dev fyv-1000 dst 192.168.50.2 self permanent'] },
    { tool: 'ip', lines: ['neigh replace 10.30.0.2 lladdr 02:42:0a:1e:00:02 dev fyv-1000 nud permanent'] },
  ])
})

t.test('additions only: the FDB and neighbour batches run at once, one per tool; a removal keeps its place', async (t) => {
  const started: string[] = []
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const runs: Array<{ tool: string, lines: readonly string[] }> = []
  const { dp } = world(async (tool, lines) => { started.push(tool); runs.push({ tool, lines }); await gate; return '' })
  const peer = (i: number): PeerOp[] => [
    { op: 'addFdb', entry: { dev: 'fyv-1000', mac: `02:42:0a:1e:00:${String(10 + i)}`, dst: '192.168.50.2' } },
    { op: 'addNeigh', entry: { dev: 'fyv-1000', ip: `10.30.0.${10 + i}`, mac: `02:42:0a:1e:00:${String(10 + i)}` } },
  ]
  const applied = dp.applyPeerOps([...peer(1), ...peer(2), ...peer(3)])
  await new Promise((resolve) => setImmediate(resolve))
  t.same(started, ['bridge', 'ip'], 'both started before either ended')
  release()
  await applied
  t.same(runs.map((r) => [r.tool, r.lines.length]), [['bridge', 3], ['ip', 3]], 'lines merged per tool, in their order')
  t.same(batchStages([...peer(1), { op: 'deleteNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.9', mac: '02:42:0a:1e:00:09' } }, ...peer(2)])
    .map((stage) => stage.map((r) => `${r.tool}:${r.lines.length}`)), [['bridge:1'], ['ip:2'], ['bridge:1', 'ip:1']],
  'a run with a removal is a stage alone')
})

t.test('a partly failed batch: only entries really missing are an error', async (t) => {
  // A runner that applies the lines to the fake kernel, failing deletes of what is not there (as `bridge`/`ip` do).
  const links = new FakeLinkDriver({ links: [{ name: 'eth0' }] })
  const apply: BatchRunner = async (_tool, lines) => {
    const errors: string[] = []
    for (const line of lines) {
      const w = line.split(' ')
      if (w[0] === 'neigh' && w[1] === 'replace') await links.addNeigh({ dev: w[6]!, ip: w[2]!, mac: w[4]! })
      else if (w[0] === 'fdb' && w[1] === 'replace') await links.addFdb({ dev: w[4]!, mac: w[2]!, dst: w[6]! })
      else if (w[1] === 'del') errors.push(`RTNETLINK answers: No such file or directory\nCommand failed -:${lines.indexOf(line) + 1}`)
      else if (w[0] === 'fdb' && w[1] === 'broken') errors.push('x')
    }
    return errors.join('\n')
  }
  const dp = new KernelOverlayDataPlane(links, { batch: apply, batchThreshold: 1 })
  await dp.ensureDevices(D)
  await dp.applyPeerOps([{ op: 'deleteNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.9', mac: '02:42:0a:1e:00:09' } }, ...ADD])
  t.same((await dp.readPeers('fyv-1000')).neigh, [ADD[1]!.entry], 'deleting what is gone is not an error')
  const lying = new KernelOverlayDataPlane(links, { batch: async () => 'RTNETLINK answers: Invalid argument', batchThreshold: 1 })
  await t.rejects(lying.applyPeerOps([
    { op: 'addFdb', entry: { dev: 'fyv-1000', mac: '02:42:0a:1e:00:05', dst: '192.168.50.2' } },
    { op: 'addNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.5', mac: '02:42:0a:1e:00:05' } },
  ]), { code: 'KERNEL', message: 'cannot program 2 of 2 peer entries: RTNETLINK answers: Invalid argument' })
})

t.test('batch lines never pass unchecked values', async (t) => {
  t.same(batchLine({ op: 'addNeigh', entry: { dev: 'fyv-1000', ip: '10.30.0.2', mac: '02:42:0A:1E:00:02' } }),
    { tool: 'ip', line: 'neigh replace 10.30.0.2 lladdr 02:42:0a:1e:00:02 dev fyv-1000 nud permanent' })
  t.same(batchLine({ op: 'deleteFdb', entry: { dev: 'fyv-1000', mac: '02:42:0a:1e:00:02' } }), { tool: 'bridge', line: 'fdb del 02:42:0a:1e:00:02 dev fyv-1000 self' })
  t.throws(() => batchLine({ op: 'addNeigh', entry: { dev: 'x y', ip: '10.30.0.2', mac: '02:42:0a:1e:00:02' } }), { code: 'INTERNAL' })
  t.throws(() => batchLine({ op: 'addNeigh', entry: { dev: 'fyv-1', ip: '10.30.0.2\nlink del eth0', mac: '02:42:0a:1e:00:02' } }), { code: 'INTERNAL' })
  t.throws(() => batchLine({ op: 'addFdb', entry: { dev: 'fyv-1', mac: '02:42:0a:1e:00:02', dst: '1.2.3.4 ; x' } }), { code: 'INTERNAL' })
  t.same(batchRuns([]), [])
})

t.test("peer operations, few or many, go to the LinkDriver's own batch when it has one: each refused entry named", async (t) => {
  const links = new FakeLinkDriver({ links: [{ name: 'eth0', mtu: 1500, up: true }] })
  const seen: PeerOp[][] = []
  let refuse: number[] = []
  const withBatch = Object.assign(links, {
    applyNeighFdb: async (ops: readonly PeerOp[]): Promise<NeighFdbFailure[]> => {
      seen.push([...ops])
      return refuse.map((index) => ({ index, op: ops[index]!, code: 'EINVAL', message: `entry ${index} refused: Invalid argument` }))
    },
  })
  const dp = new KernelOverlayDataPlane(withBatch, { batchThreshold: 4 })
  await links.addAddress('eth0', '192.168.50.1/24')
  await dp.ensureDevices(D)
  const ops: PeerOp[] = Array.from({ length: 12 }, (_, i) => ({ op: 'addNeigh', entry: { dev: 'fyv-1000', ip: `10.30.0.${i + 2}`, mac: `02:42:0a:1e:00:${(i + 2).toString(16).padStart(2, '0')}` } }))
  await dp.applyPeerOps(ops.slice(0, 2))
  t.same(seen, [ops.slice(0, 2)], "a delta's few go in one batch too (one datagram, not a round trip each)")
  t.same(await links.listNeigh('fyv-1000'), [], 'none of them went one by one')
  seen.length = 0
  await dp.applyPeerOps([])
  t.same(seen, [], 'nothing to do: no batch')
  await dp.applyPeerOps(ops)
  t.same(seen, [ops], 'many go in one batch, in order')
  refuse = [1]
  await t.rejects(dp.applyPeerOps(ops.slice(0, 2)), { code: 'KERNEL', message: 'cannot program 1 of 2 peer entries: entry 1 refused: Invalid argument' })
  refuse = [1, 2, 3, 4, 5, 6, 7]
  await t.rejects(dp.applyPeerOps(ops), {
    code: 'KERNEL',
    message: 'cannot program 7 of 12 peer entries: entry 1 refused: Invalid argument; entry 2 refused: Invalid argument; entry 3 refused: Invalid argument; ' +
      'entry 4 refused: Invalid argument; entry 5 refused: Invalid argument (and 2 more)',
  })
  const given = new KernelOverlayDataPlane(withBatch, { batchThreshold: 4, batch: async () => '' })
  seen.length = 0
  await given.applyPeerOps(ops)
  t.same(seen, [], 'a BatchRunner given explicitly is used instead')
})
