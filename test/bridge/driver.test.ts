import t from 'tap'
import { FakeLinkDriver } from '../harness/kernel-fake.js'
import { BridgeDriver } from '../../src/bridge/driver.js'
import { IPV6_CONF_KEYS, planReconcile, type Ipv6ConfKey } from '../../src/bridge/plan.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'
import { withUndo } from '../../src/util/undo.js'
import { ErrorList } from '../../src/errors/errors.js'
import { endpointRecord, networkRecord } from '../fixtures/records.js'

const V4 = networkRecord('a'.repeat(64), { subnet: '10.20.0.0/24', gateway: '10.20.0.1', mtu: 1450 })
const DUAL: NetworkRecord = { ...V4, subnet6: 'fd00:1::/64', gateway6: 'fd00:1::1', poolId6: 'p6', gatewayMode6: 'nat' }
const EP = endpointRecord('e'.repeat(64), { networkId: V4.id, address: '10.20.0.2', mac: '02:42:0a:14:00:02' })

function world () {
  const links = new FakeLinkDriver({ links: [{ name: 'eth0' }] })
  return { links, bridge: new BridgeDriver(links) }
}

/** What a reconcile would still do to this kernel for these records ([] = the kernel matches them). */
async function pending (links: FakeLinkDriver, nets: NetworkRecord[], eps: EndpointRecord[]) {
  const ipv6Conf = new Map<string, Map<Ipv6ConfKey, string>>()
  for (const n of nets.filter((n) => n.subnet6 !== undefined)) {
    ipv6Conf.set(n.bridge, new Map(await Promise.all(IPV6_CONF_KEYS.map(async (k) => [k, await links.getIpv6Conf(n.bridge, k) ?? ''] as const))))
  }
  return planReconcile(nets, eps, await links.listLinks(), await links.listAddresses(), { ipv6Conf })
}

for (const [family, net] of [['IPv4', V4], ['dual-stack', DUAL]] as const) {
  t.test(`${family}: ensureNetwork makes the bridge by the operations a reconcile plans for a missing one, and is idempotent`, async (t) => {
    const { links, bridge } = world()
    const planned = planReconcile([net], [], await links.listLinks(), await links.listAddresses())
    links.clearCalls()
    await bridge.ensureNetwork(net)
    t.same(links.mutations.map((c) => [c.op, ...c.args]), planned.map((op) => {
      switch (op.op) {
        case 'createBridge': return ['createBridge', op.name, { mtu: op.mtu, mac: op.mac }]
        case 'setIpv6Conf': return ['setIpv6Conf', op.name, op.key, op.value]
        case 'addAddress': return ['addAddress', op.name, op.cidr]
        case 'setUp': return ['setUp', op.name, true]
        default: throw new Error(`unexpected ${op.op}`)
      }
    }), 'the same operations, in the same order')
    t.match(await links.getLink(net.bridge), { kind: 'bridge', mtu: 1450, mac: '02:42:0a:14:00:01', up: true })
    t.same((await links.listAddresses()).filter((a) => a.ifname === net.bridge).map((a) => a.cidr),
      net.subnet6 === undefined ? ['10.20.0.1/24'] : ['10.20.0.1/24', 'fd00:1::1/64'])
    if (net.subnet6 !== undefined) t.equal(await links.getIpv6Conf(net.bridge, 'accept_ra'), '0')
    t.same(await pending(links, [net], []), [], 'a reconcile finds nothing to do')
    links.clearCalls()
    await bridge.ensureNetwork(net)
    t.same(links.mutations, [], 'a second ensure changes nothing')
  })

  t.test(`${family}: addEndpoint makes a port of the bridge a reconcile finds right; removeEndpoint deletes the pair`, async (t) => {
    const { links, bridge } = world()
    await bridge.ensureNetwork(net)
    links.clearCalls()
    await bridge.addEndpoint(EP, net)
    t.same(links.mutations.map((c) => c.op), [
      'createVeth', ...(net.subnet6 === undefined ? [] : ['setIpv6Conf']), 'setMaster', 'setHairpin', 'setUp',
    ])
    t.same(links.callsOf('createVeth')[0]?.args, [EP.hostVeth, EP.containerVeth, { mtu: 1450, peerMac: EP.mac }], 'the container end gets the MAC')
    const host = await links.getLink(EP.hostVeth)
    t.match(host, { kind: 'veth', up: true, hairpin: true, master: (await links.getLink(net.bridge))?.index })
    t.equal(await links.getIpv6Conf(EP.hostVeth, 'disable_ipv6'), net.subnet6 === undefined ? '0' : '1', 'a dual-stack port takes no IPv6 address')
    t.same(await pending(links, [net], [EP]), [], 'a reconcile finds nothing to do')
    await bridge.removeEndpoint(EP)
    t.same((await links.listLinks()).map((l) => l.name).sort(), [net.bridge, 'eth0', 'lo'].sort())
    await t.resolves(bridge.removeEndpoint(EP), 'removing it again is fine')
  })
}

t.test('a failed step after a create undoes the link it created, and only that', async (t) => {
  const { links, bridge } = world()
  const log: string[] = []
  links.failOn('setUp')
  await t.rejects(withUndo((undo) => bridge.ensureNetwork(V4, undo), (what) => log.push(what)), { code: 'KERNEL', message: 'injected failure of setUp' })
  t.equal(await links.getLink(V4.bridge), undefined, 'the bridge is gone again')
  await bridge.ensureNetwork(V4)
  links.failOn('setMaster')
  await t.rejects(withUndo((undo) => bridge.addEndpoint(EP, V4, { undo }), (what) => log.push(what)), { code: 'KERNEL' })
  t.same((await links.listLinks()).map((l) => l.name).sort(), [V4.bridge, 'eth0', 'lo'].sort(), 'no veth left, the bridge stays')
  links.failOn('createVeth')
  await t.rejects(withUndo((undo) => bridge.addEndpoint(EP, V4, { undo }), (what) => log.push(what)), { code: 'KERNEL' })
  t.same(links.callsOf('deleteLink').map((c) => c.args[0]), [V4.bridge, EP.hostVeth], 'a create that failed deletes nothing')
  t.same(log, [], 'no rollback step failed')
})

t.test('ensureNetwork repairs what drifted on an existing bridge, as the reconcile would', async (t) => {
  const { links, bridge } = world()
  await bridge.ensureNetwork(DUAL)
  await links.setMtu(DUAL.bridge, 1500)
  await links.deleteAddress(DUAL.bridge, 'fd00:1::1/64')
  await links.setIpv6Conf(DUAL.bridge, 'autoconf', '1')
  await links.setUp(DUAL.bridge, false)
  links.clearCalls()
  await bridge.ensureNetwork(DUAL)
  t.same(links.mutations.map((c) => [c.op, ...c.args]), [
    ['setMtu', DUAL.bridge, 1450], ['setIpv6Conf', DUAL.bridge, 'autoconf', '0'], ['addAddress', DUAL.bridge, 'fd00:1::1/64'], ['setUp', DUAL.bridge, true],
  ])
})

t.test('addEndpoint on an overlay forgets the MAC the bridge learned on the VXLAN port', async (t) => {
  const { links, bridge } = world()
  await bridge.ensureNetwork(V4)
  links.clearCalls()
  await bridge.addEndpoint(EP, V4, { forgetOn: 'fyv-1000' })
  t.same(links.mutations.at(-1), { op: 'deleteFdb', args: [{ dev: 'fyv-1000', mac: EP.mac, master: true }] })
})

t.test('upEndpoint brings the host end up, and says when it is gone', async (t) => {
  const { links, bridge } = world()
  await bridge.ensureNetwork(V4)
  await bridge.addEndpoint(EP, V4)
  await links.setUp(EP.hostVeth, false)
  t.equal(await bridge.upEndpoint(EP), true)
  t.equal((await links.getLink(EP.hostVeth))?.up, true)
  links.clearCalls()
  t.equal(await bridge.upEndpoint(EP), true)
  t.same(links.mutations, [], 'already up: nothing changed')
  await links.deleteLink(EP.hostVeth)
  t.equal(await bridge.upEndpoint(EP), false)
})

t.test('removeNetwork deletes only a bridge ferry owns', async (t) => {
  const { links, bridge } = world()
  await bridge.ensureNetwork(V4)
  links.clearCalls()
  await bridge.removeNetwork({ ...V4, ownsBridge: false })
  await bridge.removeNetwork({ ...V4, overlay: { name: 'ov1', vni: 4096 } })
  t.same(links.mutations, [], 'not its own, or an overlay\'s: left alone')
  await bridge.removeNetwork(V4)
  t.equal(await links.getLink(V4.bridge), undefined)
  await t.resolves(bridge.removeNetwork(V4), 'gone already is fine')
})

t.test('reconcile brings back what requests made, deletes what nothing needs, and returns what it did', async (t) => {
  const { links, bridge } = world()
  await bridge.ensureNetwork(DUAL)
  await bridge.addEndpoint(EP, DUAL)
  await links.createVeth('fyh111111111111', 'fyc111111111111')
  await links.deleteLink(DUAL.bridge) // its port is released with it
  t.same(await bridge.reconcile([DUAL], [EP], { keepUnexplained: true }).then((ops) => ops.filter((o) => o.op === 'deleteLink')), [], 'keepUnexplained deletes nothing')
  await links.deleteLink(DUAL.bridge)
  const ops = await bridge.reconcile([DUAL], [EP])
  t.same(ops.map((o) => o.op), ['createBridge', 'setIpv6Conf', 'setIpv6Conf', 'setIpv6Conf', 'addAddress', 'addAddress', 'setUp', 'setMaster', 'setHairpin', 'deleteLink', 'deleteLink'])
  t.same(await pending(links, [DUAL], [EP]), [], 'the kernel matches the records again')
  t.equal((await links.listLinks()).some((l) => l.name.endsWith('111111111111')), false, 'the stray pair is gone')
  t.same(await bridge.reconcile([DUAL], [EP]), [], 'a second reconcile does nothing')
})

t.test('removeEndpoint tries both ends: failures are thrown together, or go to the caller\'s list', async (t) => {
  const { links, bridge } = world()
  await bridge.ensureNetwork(V4)
  await bridge.addEndpoint(EP, V4)
  links.failOn('deleteLink', 1, new Error('EBUSY'))
  await t.rejects(bridge.removeEndpoint(EP), { message: `deleting veth ${EP.hostVeth}: EBUSY` })
  t.same(links.callsOf('deleteLink').map((c) => c.args[0]), [EP.hostVeth, EP.containerVeth], 'the second end was tried too')
  const errors = new ErrorList()
  links.failOn('deleteLink', 1, new Error('EBUSY'))
  await bridge.removeEndpoint(EP, errors)
  t.same(errors.errors.map((e) => (e as Error).message), [`deleting veth ${EP.hostVeth}: EBUSY`])
  await bridge.removeEndpoint(EP)
  t.same((await links.listLinks()).map((l) => l.name).sort(), [V4.bridge, 'eth0', 'lo'].sort())
})
