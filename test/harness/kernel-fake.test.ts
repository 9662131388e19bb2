/**
 * Semantics of the in-memory FakeLinkDriver: the same idempotency and error
 * wording as the real driver (see test/kernel/netlink.test.ts), call recording
 * and failure injection.
 */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import { FakeLinkDriver } from './kernel-fake.js'

t.test('starts with lo and the seeded links', async (t) => {
  const d = new FakeLinkDriver({ links: [{ name: 'eth0', mtu: 9000, mac: '52:54:00:AA:BB:CC', up: true }] })
  t.same(await d.listLinks(), [
    { index: 1, name: 'lo', mtu: 65536, mac: '00:00:00:00:00:00', up: true },
    { index: 2, name: 'eth0', mtu: 9000, mac: '52:54:00:aa:bb:cc', up: true },
  ])
})

t.test('bridge, veth, vxlan, master, up, MTU', async (t) => {
  const d = new FakeLinkDriver({ links: [{ name: 'eth0' }] })
  await d.createBridge('br0', { mtu: 1400, mac: '02:AA:00:00:00:01' })
  await d.createVeth('ve0', 've1', { mtu: 1400, peerMac: '02:aa:00:00:00:03' })
  await d.createVxlan('vx0', { vni: 42, port: 4789, learning: false, dev: 'eth0', local: '192.0.2.1', mtu: 1350 })
  await d.setMaster('ve0', 'br0')
  await d.setUp('br0', true)
  await d.setMtu('ve0', 1300)

  const br = await d.getLink('br0')
  const ve0 = await d.getLink('ve0')
  const ve1 = await d.getLink('ve1')
  t.match(br, { kind: 'bridge', mtu: 1400, mac: '02:aa:00:00:00:01', up: true })
  t.match(ve0, { kind: 'veth', mtu: 1300, master: br?.index, peerIndex: ve1?.index, up: false })
  t.match(ve1, { kind: 'veth', mtu: 1400, mac: '02:aa:00:00:00:03', peerIndex: ve0?.index })
  t.notOk(ve1 !== undefined && 'master' in ve1, 'peer not enslaved')
  t.match(await d.getLink('vx0'), { kind: 'vxlan', mtu: 1350 })
  t.same(d.vxlanOf('vx0'), { vni: 42, port: 4789, learning: false, dev: 'eth0', local: '192.0.2.1', mtu: 1350 })
  t.match(ve0?.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, 'generated MAC')
  t.equal(await d.getLink('nope'), undefined)

  await d.setMaster('ve0', undefined)
  t.notOk('master' in ((await d.getLink('ve0')) ?? {}), 'released')
})

t.test('hairpin on a bridge port, as the real driver', async (t) => {
  const d = new FakeLinkDriver()
  await d.createBridge('br0')
  await d.createBridge('br1')
  await d.createVeth('ve0', 've1')
  await d.setMaster('ve0', 'br0')
  t.equal((await d.getLink('ve0'))?.hairpin, false, 'a port reports hairpin off by default')
  await d.setHairpin('ve0', true)
  t.equal((await d.getLink('ve0'))?.hairpin, true)
  t.equal((await d.listLinks()).find((l) => l.name === 've0')?.hairpin, true, 'listLinks reports it')
  t.notOk('hairpin' in ((await d.getLink('br0')) ?? {}), 'a bridge reports no hairpin')
  t.notOk('hairpin' in ((await d.getLink('ve1')) ?? {}), 'a non-port reports no hairpin')
  await t.resolves(d.setHairpin('ve0', true), 'idempotent')
  await d.setMaster('ve0', 'br0')
  t.equal((await d.getLink('ve0'))?.hairpin, true, 'enslaving to the same bridge again keeps it')
  await d.setHairpin('ve0', false)
  t.equal((await d.getLink('ve0'))?.hairpin, false, 'off again')
  await d.setHairpin('ve0', true)
  await d.setMaster('ve0', 'br1')
  t.equal((await d.getLink('ve0'))?.hairpin, false, 'another bridge: a new port, hairpin off')
  await d.setHairpin('ve0', true)
  await d.deleteLink('br1')
  await d.setMaster('ve0', 'br0')
  t.equal((await d.getLink('ve0'))?.hairpin, false, 'the port went with its bridge')
  await t.rejects(d.setHairpin('ve1', true), { code: 'KERNEL', message: 'cannot set hairpin on on ve1: Operation not supported' })
  await t.rejects(d.setHairpin('nope', true), { code: 'KERNEL', message: 'cannot set hairpin on on nope: no such device nope' })
  t.same(d.callsOf('setHairpin').map((c) => c.args), [['ve0', true], ['ve0', true], ['ve0', false], ['ve0', true], ['ve0', true], ['ve1', true], ['nope', true]], 'recorded')
})

t.test('idempotency and conflicts match the real driver', async (t) => {
  const d = new FakeLinkDriver()
  await d.createBridge('br0')
  await d.createVeth('ve0', 've1')
  await d.createVxlan('vx0', { vni: 42, port: 4789, learning: false })
  await t.resolves(d.createBridge('br0', { mtu: 1000 }), 'bridge again')
  t.equal((await d.getLink('br0'))?.mtu, 1500, 'existing bridge left alone')
  await t.resolves(d.createVeth('ve0', 've1'), 'veth again')
  await t.resolves(d.createVeth('ve1', 've0'), 'veth again, ends swapped')
  await t.resolves(d.createVxlan('vx0', { vni: 42, port: 4789, learning: false }), 'vxlan again')
  await t.resolves(d.deleteLink('nope'), 'delete missing')
  await t.resolves(d.setMaster('ve0', 'br0'))
  await t.resolves(d.setMaster('ve0', 'br0'), 'enslave again')

  await t.rejects(d.createBridge('ve0'), new FerryError('NAME_CONFLICT', 'cannot create bridge ve0: ve0 exists as a veth device'))
  await t.rejects(d.createVeth('new', 've1'), { code: 'KERNEL', message: 'cannot create veth new (peer ve1): File exists' })
  await d.createVeth('ve2', 've3')
  await t.rejects(d.createVeth('ve0', 've3'), { code: 'NAME_CONFLICT', message: 'cannot create veth ve0 (peer ve3): ve0 exists with another peer' })
  await t.rejects(d.createVxlan('vx1', { vni: 42, port: 4789, learning: false }), { code: 'KERNEL', message: 'cannot create vxlan vx1: File exists' })
  await t.rejects(d.createVxlan('vx2', { vni: 43, port: 4789, learning: false, dev: 'eth9' }), { code: 'KERNEL', message: 'cannot create vxlan vx2: no such device eth9' })
  await t.rejects(d.setMaster('ve2', 've0'), { code: 'KERNEL', message: 'cannot enslave ve2 to ve0: Operation not supported' })
  await t.rejects(d.setMaster('ve2', 'nope'), { code: 'KERNEL', message: 'cannot enslave ve2 to nope: no such device nope' })
  await t.rejects(d.setMaster('nope', 'br0'), { code: 'KERNEL', message: 'cannot enslave nope to br0: No such device' })
  await t.rejects(d.setUp('nope', true), { code: 'KERNEL', message: 'cannot set nope up: No such device' })
  await t.rejects(d.setMtu('ve0', 10), { code: 'KERNEL', message: 'cannot set MTU 10 on ve0: Invalid argument' })
  await t.rejects(d.addAddress('nope', '10.1.0.1/24'), { code: 'KERNEL', message: 'cannot add address 10.1.0.1/24 to nope: no such device nope' })
  await t.rejects(d.createBridge('fy-0123456789abc'), { code: 'INVALID_REQUEST', message: 'invalid interface name "fy-0123456789abc"' })
  await t.rejects(d.createBridge('br9', { mac: 'zz' }), { code: 'INVALID_REQUEST', message: 'invalid MAC address "zz"' })
  await t.rejects(d.addAddress('br0', '10.1.0.1/40'), { code: 'INVALID_CIDR', message: 'invalid CIDR "10.1.0.1/40"' })
})

t.test('deleting links takes peers, ports and entries along', async (t) => {
  const d = new FakeLinkDriver()
  await d.createBridge('br0')
  await d.createVeth('ve0', 've1')
  await d.createVxlan('vx0', { vni: 1, port: 4789, learning: false })
  await d.setMaster('ve0', 'br0')
  await d.setMaster('vx0', 'br0')
  await d.addAddress('br0', '10.20.0.1/24')
  await d.addAddress('ve1', '10.21.0.1/24')
  await d.addFdb({ dev: 'vx0', mac: '02:00:00:00:00:01', dst: '192.0.2.1' })
  await d.addNeigh({ dev: 'br0', ip: '10.20.0.5', mac: '02:00:00:00:00:01' })

  await d.deleteLink('br0')
  t.notOk('master' in ((await d.getLink('ve0')) ?? {}), 'ports released')
  t.same((await d.listAddresses()).map((a) => a.ifname), ['ve1'], 'bridge address gone')
  t.same(await d.listNeigh('br0'), [])
  await d.deleteLink('ve1')
  t.equal(await d.getLink('ve0'), undefined, 'veth peer gone too')
  await d.deleteLink('vx0')
  t.same(await d.listFdb('vx0'), [])
  t.same((await d.listLinks()).map((l) => l.name), ['lo'])
  t.same(await d.listAddresses(), [])
})

t.test('addresses and routes', async (t) => {
  const d = new FakeLinkDriver({ routes: [{ dst: '0.0.0.0/0', dev: 'eth0', gateway: '192.168.1.1', table: 254 }] })
  await d.createBridge('br0')
  await d.addAddress('br0', '10.20.0.1/24')
  await d.addAddress('br0', '10.20.0.1/24')
  t.same(await d.listAddresses(), [{ ifname: 'br0', index: 2, cidr: '10.20.0.1/24' }], 'added once')
  t.same(await d.listRoutes(), [{ dst: '0.0.0.0/0', dev: 'eth0', gateway: '192.168.1.1', table: 254 }], 'no connected route while down')
  await d.setUp('br0', true)
  t.same((await d.listRoutes())[1], { dst: '10.20.0.0/24', dev: 'br0', table: 254 }, 'connected route once up')
  await d.deleteAddress('br0', '10.20.0.1/24')
  await t.resolves(d.deleteAddress('br0', '10.20.0.1/24'), 'delete again')
  await t.resolves(d.deleteAddress('nope', '10.20.0.1/24'), 'delete on a missing link')
  t.same(await d.listAddresses(), [])
  t.equal((await d.listRoutes()).length, 1)
})

t.test('FDB: unicast replaces, flood entries append', async (t) => {
  const d = new FakeLinkDriver()
  await d.createVxlan('vx0', { vni: 1, port: 4789, learning: false })
  await d.addFdb({ dev: 'vx0', mac: '02:CC:00:00:00:01', dst: '192.0.2.1' })
  await d.addFdb({ dev: 'vx0', mac: '02:cc:00:00:00:01', dst: '192.0.2.2' })
  await d.addFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' })
  await d.addFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' })
  await d.addFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' })
  t.same(await d.listFdb('vx0'), [
    { dev: 'vx0', mac: '02:cc:00:00:00:01', dst: '192.0.2.2' },
    { dev: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' },
    { dev: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' },
  ])
  await d.deleteFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' })
  t.equal((await d.listFdb('vx0')).length, 2, 'one destination deleted')
  await d.deleteFdb({ dev: 'vx0', mac: '00:00:00:00:00:00' })
  t.same(await d.listFdb('vx0'), [{ dev: 'vx0', mac: '02:cc:00:00:00:01', dst: '192.0.2.2' }], 'without dst: every destination')
  await t.resolves(d.deleteFdb({ dev: 'vx0', mac: '00:00:00:00:00:00' }), 'delete again')
  await t.rejects(d.addFdb({ dev: 'nope', mac: '02:00:00:00:00:01' }), { code: 'KERNEL', message: /^cannot add FDB entry 02:00:00:00:00:01 on nope: / })
  t.same(await d.listFdb('nope'), [])
})

t.test('neighbours replace', async (t) => {
  const d = new FakeLinkDriver()
  await d.createBridge('br0')
  await d.addNeigh({ dev: 'br0', ip: '10.0.0.5', mac: '02:00:00:00:00:01' })
  await d.addNeigh({ dev: 'br0', ip: '10.0.0.5', mac: '02:00:00:00:00:0A' })
  t.same(await d.listNeigh('br0'), [{ dev: 'br0', ip: '10.0.0.5', mac: '02:00:00:00:00:0a' }])
  await d.deleteNeigh({ dev: 'br0', ip: '10.0.0.5', mac: '02:00:00:00:00:0a' })
  await t.resolves(d.deleteNeigh({ dev: 'br0', ip: '10.0.0.5', mac: '02:00:00:00:00:0a' }))
  t.same(await d.listNeigh('br0'), [])
})

t.test('records calls', async (t) => {
  const d = new FakeLinkDriver()
  const opts = { mtu: 1400 }
  await d.createBridge('br0', opts)
  opts.mtu = 1
  await d.listLinks()
  await d.setUp('br0', true)
  await t.rejects(d.setUp('nope', true))
  t.same(d.calls.map((c) => c.op), ['createBridge', 'listLinks', 'setUp', 'setUp'])
  t.same(d.calls[0]?.args, ['br0', { mtu: 1400 }], 'arguments copied at call time')
  t.same(d.mutations.map((c) => c.op), ['createBridge', 'setUp', 'setUp'], 'mutations leave reads out')
  t.match(d.callsOf('setUp')[1], { args: ['nope', true], error: { code: 'KERNEL' } }, 'failed call recorded with its error')
  d.clearCalls()
  t.same(d.calls, [])
  d.close()
  t.equal(d.closed, true)
  await t.rejects(d.listLinks(), { code: 'KERNEL', message: 'link driver is closed' })
})

t.test('failOn injects a failure on the Nth call of an op', async (t) => {
  const d = new FakeLinkDriver()
  await d.createBridge('br0')
  d.failOn('createVeth', 2)
  await d.createVeth('ve0', 've1')
  await t.rejects(d.createVeth('ve2', 've3'), new FerryError('KERNEL', 'injected failure of createVeth'))
  t.equal(await d.getLink('ve2'), undefined, 'the failed call changed nothing')
  await t.resolves(d.createVeth('ve2', 've3'), 'only that call fails')

  const boom = new Error('boom')
  d.failOn('addAddress', 1, boom)
  await t.rejects(d.addAddress('br0', '10.0.0.1/24'), boom)
  t.same(await d.listAddresses(), [])
  t.equal(d.callsOf('addAddress')[0]?.error, boom)
  await d.addAddress('br0', '10.0.0.1/24')
  t.equal((await d.listAddresses()).length, 1)
})
