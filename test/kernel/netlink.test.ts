/**
 * The real LinkDriver (dist/kernel/netlink.js, build first) against the kernel,
 * each subtest in a fresh namespace through the nsnode harness. Results are
 * checked against `ip -j` and `bridge -j` output.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { ipJson, netns, sh } from '../harness/netns.js'
import { REPO_ROOT, nsDriver, nsNode } from '../harness/nsnode.js'
import { AttrStream, Flags, FlagsNew, formatMessage, rt } from 'netlink'
import { brportMode, bufferToMac, encodeNeighFdb, hairpinBody, isolatedBody, macToBuffer, type NetlinkDriver } from '../../src/kernel/netlink.js'
import { execFile } from '../../src/kernel/exec.js'
import { ENTRY_BYTES, type NeighFdbOp } from '../../src/kernel/types.js'

interface IpLink {
  ifindex: number
  ifname: string
  mtu: number
  address: string
  flags: string[]
  master?: string
  link?: string
  linkinfo?: { info_kind: string, info_data?: Record<string, unknown> }
}
interface IpAddr { ifname: string, addr_info: Array<{ family: string, local: string, prefixlen: number, broadcast?: string }> }
interface BridgeFdb { mac: string, ifname: string, dst?: string, flags: string[], state?: string }
interface IpNeigh { dst: string, dev: string, lladdr?: string, state: string[] }
interface BridgeLink { ifname: string, master?: string, hairpin?: boolean }

const links = (ns: string): IpLink[] => ipJson<IpLink[]>(ns, ['-d', 'link', 'show'])
const linkOf = (ns: string, name: string): IpLink | undefined => links(ns).find((l) => l.ifname === name)
const bridgeLinks = (ns: string): BridgeLink[] => JSON.parse(sh(['bridge', '-n', ns, '-d', '-j', 'link', 'show']) || '[]') as BridgeLink[]
const fdbOf = (ns: string, dev: string): BridgeFdb[] => JSON.parse(sh(['bridge', '-n', ns, '-j', 'fdb', 'show', 'dev', dev]) || '[]') as BridgeFdb[]

if (!existsSync(`${REPO_ROOT}dist/kernel/netlink.js`)) {
  t.fail('dist/kernel/netlink.js is missing: run `npx tsc -p .` (npm test builds first)')
}

t.test('links: bridge, veth, vxlan, enslave, up, MTU, MAC', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)

  await d.call('createBridge', ['fy-br0', { mtu: 1400, mac: '02:AA:00:00:00:01' }])
  await d.call('createVeth', ['fy-ve0', 'fy-ve1', { mtu: 1400, mac: '02:aa:00:00:00:02', peerMac: '02:aa:00:00:00:03' }])
  let br = linkOf(ns, 'fy-br0')
  t.equal(br?.linkinfo?.info_kind, 'bridge')
  t.equal(br?.mtu, 1400)
  t.equal(br?.address, '02:aa:00:00:00:01', 'MAC set, stored lower-case')
  const ve0 = linkOf(ns, 'fy-ve0')
  const ve1 = linkOf(ns, 'fy-ve1')
  t.equal(ve0?.linkinfo?.info_kind, 'veth')
  t.same([ve0?.mtu, ve1?.mtu], [1400, 1400], 'MTU on both ends')
  t.same([ve0?.address, ve1?.address], ['02:aa:00:00:00:02', '02:aa:00:00:00:03'])

  await d.call('setMaster', ['fy-ve0', 'fy-br0'])
  await d.call('setUp', ['fy-br0', true])
  await d.call('setUp', ['fy-ve0', true])
  await d.call('setUp', ['fy-ve1', true])
  t.equal(linkOf(ns, 'fy-ve0')?.master, 'fy-br0', 'enslaved')
  for (const name of ['fy-br0', 'fy-ve0', 'fy-ve1']) t.ok(linkOf(ns, name)?.flags.includes('UP'), `${name} up`)
  br = linkOf(ns, 'fy-br0')
  t.equal(br?.mtu, 1400, 'bridge MTU not re-adjusted by enslaving')
  t.equal(br?.address, '02:aa:00:00:00:01', 'bridge keeps its MAC')

  await d.call('setMtu', ['fy-ve0', 1300])
  t.equal(linkOf(ns, 'fy-ve0')?.mtu, 1300)

  const listed = await d.call('listLinks')
  const kernel = links(ns)
  t.same(listed.map((l) => l.name).sort(), kernel.map((l) => l.ifname).sort(), 'listLinks names = ip link')
  for (const k of kernel) {
    const l = listed.find((x) => x.name === k.ifname)
    t.equal(l?.index, k.ifindex, `${k.ifname} index`)
    t.equal(l?.mtu, k.mtu, `${k.ifname} mtu`)
    t.equal(l?.mac, k.address, `${k.ifname} mac`)
    t.equal(l?.up, k.flags.includes('UP'), `${k.ifname} up`)
    t.equal(l?.kind, k.linkinfo?.info_kind, `${k.ifname} kind`)
  }
  const [l0, l1, lbr] = ['fy-ve0', 'fy-ve1', 'fy-br0'].map((n) => listed.find((l) => l.name === n))
  t.equal(l0?.master, lbr?.index, 'master index')
  t.equal(l0?.peerIndex, l1?.index, 'veth peer index')
  t.equal(l1?.peerIndex, l0?.index, 'veth peer index, other end')
  t.same(await d.call('getLink', ['fy-ve0']), l0, 'getLink = listLinks entry')
  t.equal(await d.call('getLink', ['fy-nope']), undefined, 'getLink of a missing link')

  await d.call('addAddress', ['fy-ve1', '10.99.0.1/24'])
  await d.call('createVxlan', ['fy-vx0', { vni: 4242, port: 4789, local: '10.99.0.1', dev: 'fy-ve1', learning: false, mtu: 1350, mac: '02:aa:00:00:00:04' }])
  await d.call('createVxlan', ['fy-vx1', { vni: 77, port: 8472, learning: true, udpCsum: false }])
  const vx0 = linkOf(ns, 'fy-vx0')
  t.equal(vx0?.linkinfo?.info_kind, 'vxlan')
  t.match(vx0?.linkinfo?.info_data, { id: 4242, port: 4789, local: '10.99.0.1', link: 'fy-ve1', learning: false })
  t.same([vx0?.mtu, vx0?.address], [1350, '02:aa:00:00:00:04'])
  t.match(linkOf(ns, 'fy-vx1')?.linkinfo?.info_data, { id: 77, port: 8472, learning: true }, 'port in network byte order')
  t.match(linkOf(ns, 'fy-vx1')?.linkinfo?.info_data, { udp_csum: false, udp_zero_csum6_tx: true, udp_zero_csum6_rx: true }, 'outer UDP checksums off when asked (both families\' attributes)')

  await d.call('setMaster', ['fy-ve0', undefined])
  t.equal(linkOf(ns, 'fy-ve0')?.master, undefined, 'released')
  await d.call('setUp', ['fy-ve0', false])
  t.notOk(linkOf(ns, 'fy-ve0')?.flags.includes('UP'), 'down')
})

t.test('MAC bytes to text and back: lower case, two digits per byte', async (t) => {
  t.equal(bufferToMac(Uint8Array.from([0x02, 0x42, 0x0a, 0xff, 0x00, 0x9c])), '02:42:0a:ff:00:9c')
  t.equal(bufferToMac(macToBuffer('02:42:0A:FF:00:9C')), '02:42:0a:ff:00:9c')
  t.equal(bufferToMac(new Uint8Array(0)), '')
})

t.test('hairpin message = the one `bridge link set dev X hairpin on` sends', async (t) => {
  // ifinfomsg (AF_BRIDGE, ifindex 4), IFLA_PROTINFO|NLA_F_NESTED { IFLA_BRPORT_MODE u8 1 }, as strace shows it
  t.equal(hairpinBody(4, true).toString('hex'), '07000000040000000000000000000000' + '0c000c80' + '05000400' + '01000000')
  t.equal(hairpinBody(4, false).toString('hex').slice(-8), '00000000', 'off = mode 0')
  t.equal(brportMode(Buffer.from('0500010003000000' + '0500040001000000', 'hex')), 1, 'mode read among other port attributes')
  t.equal(brportMode(Buffer.from('0500010003000000', 'hex')), undefined, 'no mode attribute')
})

t.test('isolated message = the one `bridge link set dev X isolated on` sends', async (t) => {
  // ifinfomsg (AF_BRIDGE, ifindex 4), IFLA_PROTINFO|NLA_F_NESTED { IFLA_BRPORT_ISOLATED (33) u8 1 }
  t.equal(isolatedBody(4, true).toString('hex'), '07000000040000000000000000000000' + '0c000c80' + '05002100' + '01000000')
  t.equal(isolatedBody(4, false).toString('hex').slice(-8), '00000000', 'off = 0')
})

t.test('hairpin and isolated on a bridge port', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('createBridge', ['fy-br0'])
  await d.call('createBridge', ['fy-br1'])
  await d.call('createVeth', ['fy-ve0', 'fy-ve1'])
  await d.call('setMaster', ['fy-ve0', 'fy-br0'])
  t.equal(bridgeLinks(ns).find((l) => l.ifname === 'fy-ve0')?.hairpin, false, 'off by default')
  t.equal((await d.call('getLink', ['fy-ve0']))?.hairpin, false, 'getLink reports it off')

  await d.call('setHairpin', ['fy-ve0', true])
  t.match(bridgeLinks(ns).find((l) => l.ifname === 'fy-ve0'), { master: 'fy-br0', hairpin: true }, 'bridge link shows hairpin on')
  t.equal((await d.call('getLink', ['fy-ve0']))?.hairpin, true, 'getLink reads it back')
  t.equal((await d.call('listLinks')).find((l) => l.name === 'fy-ve0')?.hairpin, true, 'listLinks reads it back')
  const [br, peer] = await Promise.all([d.call('getLink', ['fy-br0']), d.call('getLink', ['fy-ve1'])])
  t.notOk(br !== undefined && 'hairpin' in br, 'a bridge reports no hairpin')
  t.notOk(peer !== undefined && 'hairpin' in peer, 'a link outside any bridge reports no hairpin')
  await t.resolves(d.call('setHairpin', ['fy-ve0', true]), 'idempotent')

  await d.call('setMaster', ['fy-ve0', 'fy-br0'])
  t.equal((await d.call('getLink', ['fy-ve0']))?.hairpin, true, 'enslaving to the same bridge again keeps it')
  await d.call('setHairpin', ['fy-ve0', false])
  t.equal(bridgeLinks(ns).find((l) => l.ifname === 'fy-ve0')?.hairpin, false, 'off again')
  await d.call('setHairpin', ['fy-ve0', true])
  await d.call('setMaster', ['fy-ve0', 'fy-br1'])
  t.equal((await d.call('getLink', ['fy-ve0']))?.hairpin, false, 'moving to another bridge makes a new port, hairpin off')

  await t.rejects(d.call('setHairpin', ['fy-ve1', true]), { name: 'FerryError', code: 'KERNEL', message: 'cannot set hairpin on on fy-ve1: Operation not supported' }, 'not a bridge port')
  await t.rejects(d.call('setHairpin', ['fy-nope', true]), { name: 'FerryError', code: 'KERNEL', message: 'cannot set hairpin on on fy-nope: no such device fy-nope' }, 'missing link')

  // The isolated flag (a dual-stack host's two VXLAN devices), on the port fy-ve0 is now of fy-br1.
  t.equal((await d.call('getLink', ['fy-ve0']))?.isolated, undefined, 'isolated off by default: not reported')
  await d.call('setIsolated', ['fy-ve0', true])
  t.match(JSON.parse(sh(['bridge', '-n', ns, '-d', '-j', 'link', 'show', 'dev', 'fy-ve0'])), [{ ifname: 'fy-ve0', isolated: true }], 'bridge link shows isolated on')
  t.equal((await d.call('getLink', ['fy-ve0']))?.isolated, true, 'getLink reads it back')
  await t.resolves(d.call('setIsolated', ['fy-ve0', true]), 'idempotent')
  await d.call('setIsolated', ['fy-ve0', false])
  t.equal((await d.call('getLink', ['fy-ve0']))?.isolated, undefined, 'isolated off again')
  await t.rejects(d.call('setIsolated', ['fy-ve1', true]), { name: 'FerryError', code: 'KERNEL', message: 'cannot set isolated on on fy-ve1: Operation not supported' }, 'not a bridge port')
})

t.test('every operation is idempotent', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  const twice = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    await fn()
    await t.resolves(fn(), `${what} twice`)
  }
  await twice('createBridge', () => d.call('createBridge', ['fy-br0', { mtu: 1450 }]))
  await twice('createVeth', () => d.call('createVeth', ['fy-ve0', 'fy-ve1']))
  await t.resolves(d.call('createVeth', ['fy-ve1', 'fy-ve0']), 'createVeth with the ends swapped')
  await twice('createVxlan', () => d.call('createVxlan', ['fy-vx0', { vni: 10, port: 4789, learning: false }]))
  await twice('setMaster', () => d.call('setMaster', ['fy-ve0', 'fy-br0']))
  await twice('setUp', () => d.call('setUp', ['fy-br0', true]))
  await twice('setMtu', () => d.call('setMtu', ['fy-ve0', 1450]))
  await twice('addAddress', () => d.call('addAddress', ['fy-br0', '10.20.0.1/24']))
  await twice('addFdb', () => d.call('addFdb', [{ dev: 'fy-vx0', mac: '02:bb:00:00:00:01', dst: '192.0.2.1' }]))
  await twice('addFdb flood', () => d.call('addFdb', [{ dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' }]))
  await twice('addNeigh', () => d.call('addNeigh', [{ dev: 'fy-vx0', ip: '10.30.0.2', mac: '02:bb:00:00:00:01' }]))
  t.equal(links(ns).filter((l) => l.ifname === 'fy-br0').length, 1, 'one bridge')
  t.equal(ipJson<IpAddr[]>(ns, ['addr', 'show', 'dev', 'fy-br0'])[0]?.addr_info.filter((a) => a.family === 'inet').length, 1, 'one address')
  t.equal(fdbOf(ns, 'fy-vx0').filter((e) => e.dst === '192.0.2.1').length, 2, 'one unicast and one flood entry')
  t.equal((await d.call('listNeigh', ['fy-vx0'])).length, 1, 'one neighbour')

  await twice('deleteNeigh', () => d.call('deleteNeigh', [{ dev: 'fy-vx0', ip: '10.30.0.2', mac: '02:bb:00:00:00:01' }]))
  await twice('deleteFdb', () => d.call('deleteFdb', [{ dev: 'fy-vx0', mac: '02:bb:00:00:00:01', dst: '192.0.2.1' }]))
  await twice('deleteAddress', () => d.call('deleteAddress', ['fy-br0', '10.20.0.1/24']))
  await twice('release', () => d.call('setMaster', ['fy-ve0', undefined]))
  await twice('deleteLink', () => d.call('deleteLink', ['fy-ve0']))
  t.equal(linkOf(ns, 'fy-ve1'), undefined, 'deleting one veth end removes the pair')
  await t.resolves(d.call('deleteAddress', ['fy-gone', '10.20.0.1/24']), 'deleteAddress on a missing link')
  await t.resolves(d.call('deleteFdb', [{ dev: 'fy-gone', mac: '02:bb:00:00:00:01' }]), 'deleteFdb on a missing link')
  await t.resolves(d.call('deleteNeigh', [{ dev: 'fy-gone', ip: '10.30.0.2', mac: '02:bb:00:00:00:01' }]), 'deleteNeigh on a missing link')
  t.same(await d.call('listFdb', ['fy-gone']), [], 'listFdb of a missing link')
  t.same(await d.call('listNeigh', ['fy-gone']), [], 'listNeigh of a missing link')
})

t.test('errors are FerryErrors with readable messages', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('createBridge', ['fy-br0'])
  await d.call('createVeth', ['fy-ve0', 'fy-ve1'])
  await d.call('createVeth', ['fy-ve2', 'fy-ve3'])
  await d.call('createVxlan', ['fy-vx0', { vni: 42, port: 4789, learning: false }])
  const cases: Array<[string, () => Promise<unknown>, string, RegExp | string]> = [
    ['bridge over a veth', () => d.call('createBridge', ['fy-ve0']), 'NAME_CONFLICT', 'cannot create bridge fy-ve0: fy-ve0 exists as a veth device'],
    ['veth over a bridge', () => d.call('createVeth', ['fy-br0', 'fy-x']), 'NAME_CONFLICT', 'cannot create veth fy-br0 (peer fy-x): fy-br0 exists as a bridge device'],
    ['veth whose peer name is taken', () => d.call('createVeth', ['fy-new', 'fy-ve1']), 'KERNEL', 'cannot create veth fy-new (peer fy-ve1): File exists'],
    ['veth with another peer', () => d.call('createVeth', ['fy-ve0', 'fy-ve3']), 'NAME_CONFLICT', 'cannot create veth fy-ve0 (peer fy-ve3): fy-ve0 exists with another peer'],
    ['vxlan with a used VNI', () => d.call('createVxlan', ['fy-vx1', { vni: 42, port: 4789, learning: false }]), 'KERNEL', 'cannot create vxlan fy-vx1: File exists'],
    ['vxlan on a missing underlay', () => d.call('createVxlan', ['fy-vx2', { vni: 43, port: 4789, learning: false, dev: 'eth9' }]), 'KERNEL', 'cannot create vxlan fy-vx2: no such device eth9'],
    ['enslave to a veth', () => d.call('setMaster', ['fy-ve2', 'fy-ve0']), 'KERNEL', 'cannot enslave fy-ve2 to fy-ve0: Operation not supported'],
    ['enslave to a missing bridge', () => d.call('setMaster', ['fy-ve2', 'fy-nope']), 'KERNEL', 'cannot enslave fy-ve2 to fy-nope: no such device fy-nope'],
    ['enslave a missing link', () => d.call('setMaster', ['fy-nope', 'fy-br0']), 'KERNEL', 'cannot enslave fy-nope to fy-br0: No such device'],
    ['up a missing link', () => d.call('setUp', ['fy-nope', true]), 'KERNEL', 'cannot set fy-nope up: No such device'],
    ['absurd MTU', () => d.call('setMtu', ['fy-ve0', 10]), 'KERNEL', 'cannot set MTU 10 on fy-ve0: Invalid argument'],
    ['address on a missing link', () => d.call('addAddress', ['fy-nope', '10.1.0.1/24']), 'KERNEL', 'cannot add address 10.1.0.1/24 to fy-nope: no such device fy-nope'],
    ['FDB on a missing link', () => d.call('addFdb', [{ dev: 'fy-nope', mac: '02:00:00:00:00:01' }]), 'KERNEL', /^cannot add FDB entry 02:00:00:00:00:01 on fy-nope: /],
    ['name too long', () => d.call('createBridge', ['fy-0123456789abc']), 'INVALID_REQUEST', 'invalid interface name "fy-0123456789abc"'],
    ['bad MAC', () => d.call('createBridge', ['fy-br9', { mac: 'zz' }]), 'INVALID_REQUEST', 'invalid MAC address "zz"'],
    ['bad CIDR', () => d.call('addAddress', ['fy-br0', '10.1.0.1/40']), 'INVALID_CIDR', 'invalid CIDR "10.1.0.1/40"'],
  ]
  for (const [what, fn, code, message] of cases) {
    await t.rejects(fn(), { name: 'FerryError', code, message }, what)
  }
})

t.test('addresses and routes', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('createBridge', ['fy-br0'])
  await d.call('addAddress', ['fy-br0', '10.20.0.1/24'])
  await d.call('addAddress', ['fy-br0', '10.21.0.1/30'])
  await d.call('setUp', ['fy-br0', true])
  const info = ipJson<IpAddr[]>(ns, ['addr', 'show', 'dev', 'fy-br0'])[0]?.addr_info.filter((a) => a.family === 'inet')
  t.match(info, [{ local: '10.20.0.1', prefixlen: 24, broadcast: '10.20.0.255' }, { local: '10.21.0.1', prefixlen: 30, broadcast: '10.21.0.3' }])
  const addrs = await d.call('listAddresses')
  const index = (await d.call('getLink', ['fy-br0']))?.index
  t.same(addrs.filter((a) => a.ifname === 'fy-br0'), [
    { ifname: 'fy-br0', index, cidr: '10.20.0.1/24' },
    { ifname: 'fy-br0', index, cidr: '10.21.0.1/30' },
  ])
  t.ok(addrs.some((a) => a.ifname === 'lo' && a.cidr === '127.0.0.1/8'), 'loopback address listed')

  sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.20.0.254'])
  sh(['ip', '-n', ns, 'route', 'add', '172.30.0.0/16', 'dev', 'fy-br0', 'table', '100'])
  const routes = await d.call('listRoutes')
  t.same(routes.filter((r) => r.dev === 'fy-br0').sort((a, b) => a.dst.localeCompare(b.dst)), [
    { dst: '0.0.0.0/0', dev: 'fy-br0', gateway: '10.20.0.254', table: 254 },
    { dst: '10.20.0.0/24', dev: 'fy-br0', table: 254 },
    { dst: '10.21.0.0/30', dev: 'fy-br0', table: 254 },
    { dst: '172.30.0.0/16', dev: 'fy-br0', table: 100 },
  ])
  t.notOk(routes.some((r) => r.table === 255), 'local table left out')

  await d.call('deleteAddress', ['fy-br0', '10.21.0.1/30'])
  t.same((await d.call('listAddresses')).filter((a) => a.ifname === 'fy-br0').map((a) => a.cidr), ['10.20.0.1/24'])
})

t.test('FDB and neighbour entries', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('createVxlan', ['fy-vx0', { vni: 100, port: 4789, learning: false }])
  await d.call('setUp', ['fy-vx0', true])

  await d.call('addFdb', [{ dev: 'fy-vx0', mac: '02:CC:00:00:00:01', dst: '192.0.2.1' }])
  await d.call('addFdb', [{ dev: 'fy-vx0', mac: '02:cc:00:00:00:01', dst: '192.0.2.2' }])
  await d.call('addFdb', [{ dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' }])
  await d.call('addFdb', [{ dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' }])
  const kernel = fdbOf(ns, 'fy-vx0')
  t.match(kernel.find((e) => e.mac === '02:cc:00:00:00:01'), { dst: '192.0.2.2', flags: ['self'], state: 'permanent' }, 'unicast entry replaced')
  t.equal(kernel.filter((e) => e.mac === '02:cc:00:00:00:01').length, 1)
  t.same(kernel.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst).sort(), ['192.0.2.1', '192.0.2.2'], 'flood list appended')
  const listed = await d.call('listFdb', ['fy-vx0'])
  const byKey = (a: { mac: string, dst?: string }, b: { mac: string, dst?: string }): number => `${a.mac}${a.dst}`.localeCompare(`${b.mac}${b.dst}`)
  t.same(listed.sort(byKey), [
    { dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' },
    { dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.2' },
    { dev: 'fy-vx0', mac: '02:cc:00:00:00:01', dst: '192.0.2.2' },
  ], 'listFdb = bridge fdb')

  await d.call('deleteFdb', [{ dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.1' }])
  await d.call('deleteFdb', [{ dev: 'fy-vx0', mac: '02:cc:00:00:00:01', dst: '192.0.2.2' }])
  t.same(fdbOf(ns, 'fy-vx0').map((e) => [e.mac, e.dst]), [['00:00:00:00:00:00', '192.0.2.2']], 'only the deleted entries went')
  await d.call('addFdb', [{ dev: 'fy-vx0', mac: '00:00:00:00:00:00', dst: '192.0.2.3' }])
  await d.call('deleteFdb', [{ dev: 'fy-vx0', mac: '00:00:00:00:00:00' }])
  t.same(fdbOf(ns, 'fy-vx0'), [], 'without dst, every destination of the MAC goes')

  await d.call('addNeigh', [{ dev: 'fy-vx0', ip: '10.30.0.5', mac: '02:cc:00:00:00:01' }])
  await d.call('addNeigh', [{ dev: 'fy-vx0', ip: '10.30.0.5', mac: '02:CC:00:00:00:02' }])
  await d.call('addNeigh', [{ dev: 'fy-vx0', ip: '10.30.0.6', mac: '02:cc:00:00:00:03' }])
  const neigh = ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', 'fy-vx0'])
  t.same(neigh.map((n) => [n.dst, n.lladdr, n.state]).sort(), [['10.30.0.5', '02:cc:00:00:00:02', ['PERMANENT']], ['10.30.0.6', '02:cc:00:00:00:03', ['PERMANENT']]], 'replaced, permanent')
  t.same((await d.call('listNeigh', ['fy-vx0'])).sort((a, b) => a.ip.localeCompare(b.ip)), [
    { dev: 'fy-vx0', ip: '10.30.0.5', mac: '02:cc:00:00:00:02' },
    { dev: 'fy-vx0', ip: '10.30.0.6', mac: '02:cc:00:00:00:03' },
  ])
  await d.call('deleteNeigh', [{ dev: 'fy-vx0', ip: '10.30.0.5', mac: '02:cc:00:00:00:02' }])
  t.same(ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', 'fy-vx0']).map((n) => n.dst), ['10.30.0.6'])
})

t.test('FDB and neighbour dumps of many datagrams, read in a worker thread: the device\'s entries only', async (t) => {
  const ns = netns(t)
  const d = await nsNode<NetlinkDriver>(t, ns, { module: 'dist/kernel/netlink.js', factory: 'openLinkDriver' })
  const n = 3000 // some 30 replies of 32 KiB for the FDB dump, a dozen for the neighbours
  const mac = (dev: number, i: number): string => `02:e${dev}:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`
  const ops: NeighFdbOp[] = []
  for (const [k, dev] of ['fy-vx0', 'fy-vx1'].entries()) {
    await d.call('createVxlan', [dev, { vni: 100 + k, port: 4789, local: '192.0.2.1', learning: false }])
    await d.call('setUp', [dev, true])
    for (let i = 1; i <= n; i++) {
      ops.push({ op: 'addFdb', entry: { dev, mac: mac(k, i), dst: `192.0.2.${2 + (i % 200)}` } })
      ops.push({ op: 'addNeigh', entry: { dev, ip: i % 2 === 0 ? `10.3${k}.${i >> 8}.${i & 255}` : `fd0${k}::${i.toString(16)}`, mac: mac(k, i) } })
    }
  }
  t.same(await d.call('applyNeighFdb', [ops]), [])
  const before = await d.call('dumpsInWorkers')
  const fdb = await d.call('listFdb', ['fy-vx0'])
  const neigh = await d.call('listNeigh', ['fy-vx0'])
  t.equal(await d.call('dumpsInWorkers'), before + 2, 'both dumps read in a worker thread')
  const want = ops.filter((o) => o.entry.dev === 'fy-vx0')
  const key = (e: object): string => JSON.stringify(e)
  t.same(fdb.map(key).sort(), want.filter((o) => o.op === 'addFdb').map((o) => key(o.entry)).sort(), 'every FDB entry of fy-vx0, none of fy-vx1')
  t.same(neigh.map(key).sort(), want.filter((o) => o.op === 'addNeigh').map((o) => key({ dev: 'fy-vx0', ip: (o.entry as { ip: string }).ip, mac: o.entry.mac })).sort(),
    'every neighbour of fy-vx0, both families, none of fy-vx1')
  const kernel = fdbOf(ns, 'fy-vx0').filter((e) => e.dst !== undefined && e.state === 'permanent')
  t.equal(kernel.length, fdb.length, 'as many as bridge fdb shows')
  // The packed read (the periodic repair's): the same entries, ENTRY_BYTES each (its bytes travel here as JSON).
  for (const [method, list] of [['listFdbPacked', fdb], ['listNeighPacked', neigh]] as const) {
    const packed = await d.call(method, ['fy-vx0']) as unknown as { bytes: Record<string, number>, count: number }
    const bytes = Uint8Array.from(Object.values(packed.bytes))
    t.equal(packed.count, list.length, `${method}: as many entries`)
    t.ok(bytes.length >= packed.count * ENTRY_BYTES, `${method}: ENTRY_BYTES each`)
    t.same(Array.from({ length: packed.count }, (_, i) => bufferToMac(bytes.subarray(i * ENTRY_BYTES, i * ENTRY_BYTES + 6))).sort(), list.map((e) => e.mac).sort(), `${method}: the same MACs`)
  }
  t.same(await d.call('listFdbPacked', ['fy-gone']), { bytes: {}, count: 0 }, 'listFdbPacked of a missing link: none')
})

t.test('a batch\'s messages are written byte for byte as the package encodes the single calls\' (ACK aside)', async (t) => {
  const AF_BRIDGE = 7
  const single = (type: number, flags: number, data: rt.Neighbor, attrs: rt.NeighborAttrs): Buffer => {
    const s = new AttrStream()
    rt.formatNeighborMessage({ kind: 'neighbor', data, attrs }, s)
    return Buffer.concat(formatMessage({ type, flags: Flags.REQUEST | flags, seq: 77, port: 4242, data: s.bufs }))
  }
  const mac = macToBuffer('02:AB:00:00:00:09')
  const cases: Array<[NeighFdbOp, Buffer]> = [
    [{ op: 'addFdb', entry: { dev: 'v', mac: '02:AB:00:00:00:09', dst: '192.0.2.7' } },
      single(rt.MessageType.NEWNEIGH, FlagsNew.CREATE | FlagsNew.REPLACE, { family: AF_BRIDGE, ifindex: 9, state: { permanent: true }, flags: { self: true } }, { lladdr: mac, dst: Buffer.from([192, 0, 2, 7]) })],
    [{ op: 'addFdb', entry: { dev: 'v', mac: '00:00:00:00:00:00', dst: '2001:db8::1:2' } },
      single(rt.MessageType.NEWNEIGH, FlagsNew.CREATE | FlagsNew.APPEND, { family: AF_BRIDGE, ifindex: 9, state: { permanent: true }, flags: { self: true } },
        { lladdr: Buffer.alloc(6), dst: Buffer.from('20010db8000000000000000000010002', 'hex') })],
    [{ op: 'addFdb', entry: { dev: 'v', mac: '02:ab:00:00:00:09', master: true } },
      single(rt.MessageType.NEWNEIGH, FlagsNew.CREATE | FlagsNew.REPLACE, { family: AF_BRIDGE, ifindex: 9, flags: { master: true } }, { lladdr: mac })],
    [{ op: 'deleteFdb', entry: { dev: 'v', mac: '02:ab:00:00:00:09', dst: '192.0.2.7' } },
      single(rt.MessageType.DELNEIGH, 0, { family: AF_BRIDGE, ifindex: 9, state: { permanent: true }, flags: { self: true } }, { lladdr: mac, dst: Buffer.from([192, 0, 2, 7]) })],
    [{ op: 'addNeigh', entry: { dev: 'v', ip: '10.30.255.254', mac: '02:ab:00:00:00:09' } },
      single(rt.MessageType.NEWNEIGH, FlagsNew.CREATE | FlagsNew.REPLACE, { family: 2, ifindex: 9, state: { permanent: true } }, { dst: Buffer.from([10, 30, 255, 254]), lladdr: mac })],
    [{ op: 'addNeigh', entry: { dev: 'v', ip: 'fd00:30::ffff:1', mac: '02:ab:00:00:00:09' } },
      single(rt.MessageType.NEWNEIGH, FlagsNew.CREATE | FlagsNew.REPLACE, { family: 10, ifindex: 9, state: { permanent: true } }, { dst: Buffer.from('fd0000300000000000000000ffff0001', 'hex'), lladdr: mac })],
    [{ op: 'deleteNeigh', entry: { dev: 'v', ip: '10.30.0.5', mac: '02:ab:00:00:00:09' } },
      single(rt.MessageType.DELNEIGH, 0, { family: 2, ifindex: 9 }, { dst: Buffer.from([10, 30, 0, 5]) })],
  ]
  for (const [op, want] of cases) {
    const buf = Buffer.alloc(80, 0xee)
    const end = encodeNeighFdb(buf, 4, op, 9, 77, 4242)
    t.same(buf.subarray(4, 4 + buf.readUInt32LE(4)).toString('hex'), want.toString('hex'), `${op.op} ${JSON.stringify(op.entry)}`)
    t.equal(end % 4, 0, 'the next message starts on a 4-byte boundary')
    t.ok(buf.subarray(4 + want.length, end).every((b) => b === 0), 'padded with zeros')
    t.equal(buf[end], 0xee, 'nothing written past the message')
  }
  t.throws(() => encodeNeighFdb(Buffer.alloc(80), 0, { op: 'addNeigh', entry: { dev: 'v', ip: '10.30.0.5', mac: '02:ab:00:00:00' } }, 9, 1, 1), { code: 'INVALID_REQUEST' })
  t.throws(() => encodeNeighFdb(Buffer.alloc(80), 0, { op: 'addNeigh', entry: { dev: 'v', ip: '10.30.0.5', mac: '02:ab:00:00:00:0g' } }, 9, 1, 1), { code: 'INVALID_REQUEST' })
  t.throws(() => encodeNeighFdb(Buffer.alloc(80), 0, { op: 'addFdb', entry: { dev: 'v', mac: '02:ab:00:00:00:09', dst: '10.30.0.256' } }, 9, 1, 1), { code: 'INVALID_CIDR' })
})

t.test('a batch of FDB and neighbour changes: packed messages, each refusal named, the rest in', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('createVxlan', ['fy-vx0', { vni: 100, port: 4789, local: '192.0.2.1', learning: false }])
  await d.call('setUp', ['fy-vx0', true])
  const mac = (i: number): string => `02:ee:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`
  const ip = (i: number): string => `10.31.${i >> 8}.${i & 255}`
  const ops: NeighFdbOp[] = []
  for (let i = 1; i <= 300; i++) {
    ops.push({ op: 'addFdb', entry: { dev: 'fy-vx0', mac: mac(i), dst: `192.0.2.${1 + (i % 200)}` } })
    ops.push({ op: 'addNeigh', entry: { dev: 'fy-vx0', ip: ip(i), mac: mac(i) } })
  }
  // Refused by the kernel in the middle of a packed message (an IPv6 destination on an IPv4 VXLAN device) ...
  const bad = 301
  ops.splice(bad, 0, { op: 'addFdb', entry: { dev: 'fy-vx0', mac: '02:ee:ff:00:00:01', dst: '2001:db8::1' } })
  // ... an addition to a device that is not there, and deletions of what is not there (fine).
  ops.push({ op: 'addNeigh', entry: { dev: 'fy-none', ip: '10.31.200.1', mac: mac(1) } })
  ops.push({ op: 'deleteNeigh', entry: { dev: 'fy-vx0', ip: '10.31.200.2', mac: mac(1) } })
  ops.push({ op: 'deleteFdb', entry: { dev: 'fy-vx0', mac: '02:ee:ff:00:00:02', dst: '192.0.2.9' } })
  ops.push({ op: 'deleteFdb', entry: { dev: 'fy-none', mac: mac(2) } })

  const failures = await d.call('applyNeighFdb', [ops])
  t.same(failures.map((f) => [f.index, f.code]), [[bad, 'EAFNOSUPPORT'], [ops.length - 4, 'ENODEV']], 'the refused ones, by their place in the batch')
  t.match(failures[0]?.message, /^cannot add FDB entry 02:ee:ff:00:00:01 dst 2001:db8::1 on fy-vx0: /, 'named in a sentence')
  t.same(failures[0]?.op, ops[bad])
  const fdb = fdbOf(ns, 'fy-vx0').filter((e) => e.dst !== undefined)
  t.equal(fdb.length, 300, 'every other FDB entry is in')
  t.notOk(fdb.some((e) => e.mac === '02:ee:ff:00:00:01'))
  const neigh = ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', 'fy-vx0'])
  t.equal(neigh.length, 300, 'every neighbour entry is in')
  t.same(neigh.find((n) => n.dst === ip(150)), { dst: ip(150), lladdr: mac(150), state: ['PERMANENT'] })

  // The same batch again replaces (no EEXIST); then every entry goes in one more batch.
  t.same((await d.call('applyNeighFdb', [ops])).map((f) => f.index), [bad, ops.length - 4], 'replacing is idempotent')
  const removal: NeighFdbOp[] = ops.filter((o) => o.entry.dev === 'fy-vx0' && o.op.startsWith('add') && o !== ops[bad])
    .map((o) => (o.op === 'addFdb' ? { op: 'deleteFdb', entry: o.entry } : { op: 'deleteNeigh', entry: o.entry }) as NeighFdbOp)
  t.same(await d.call('applyNeighFdb', [removal]), [], 'deleted')
  t.same(fdbOf(ns, 'fy-vx0').filter((e) => e.dst !== undefined), [])
  t.same(ipJson(ns, ['neigh', 'show', 'dev', 'fy-vx0']), [])

  // An entry that is no MAC is refused at its place without being sent; its neighbours in the datagram go in.
  const odd: NeighFdbOp[] = [
    { op: 'addNeigh', entry: { dev: 'fy-vx0', ip: ip(1), mac: mac(1) } },
    { op: 'addNeigh', entry: { dev: 'fy-vx0', ip: ip(2), mac: '02:ee:00:00:00' } },
    { op: 'addNeigh', entry: { dev: 'fy-vx0', ip: ip(3), mac: mac(3) } },
  ]
  const refused = await d.call('applyNeighFdb', [odd])
  t.same(refused.map((f) => [f.index, f.code]), [[1, 'INVALID_REQUEST']])
  t.match(refused[0]?.message, /^cannot add neighbour 10\.31\.0\.2 lladdr 02:ee:00:00:00 on fy-vx0: invalid MAC address/)
  t.same(ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', 'fy-vx0']).map((n) => n.dst).sort(), [ip(1), ip(3)])
})

t.test('teardown returns the namespace to clean', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('createBridge', ['fy-br0', { mtu: 1400 }])
  await d.call('createVeth', ['fy-ve0', 'fy-ve1', { mtu: 1400 }])
  await d.call('createVxlan', ['fy-vx0', { vni: 5, port: 4789, learning: false }])
  await d.call('setMaster', ['fy-ve0', 'fy-br0'])
  await d.call('setMaster', ['fy-vx0', 'fy-br0'])
  await d.call('addAddress', ['fy-br0', '10.20.0.1/24'])
  for (const name of ['fy-br0', 'fy-ve0', 'fy-vx0']) await d.call('setUp', [name, true])
  await d.call('addFdb', [{ dev: 'fy-vx0', mac: '02:dd:00:00:00:01', dst: '192.0.2.9' }])
  await d.call('addNeigh', [{ dev: 'fy-br0', ip: '10.20.0.9', mac: '02:dd:00:00:00:01' }])

  for (const name of ['fy-vx0', 'fy-ve0', 'fy-br0']) await d.call('deleteLink', [name])

  t.same(links(ns).map((l) => l.ifname), ['lo'], 'only lo is left')
  const addrs = ipJson<IpAddr[]>(ns, ['addr', 'show'])
  t.same(addrs.map((a) => a.ifname), ['lo'])
  t.same(JSON.parse(sh(['bridge', '-n', ns, '-j', 'fdb', 'show']) || '[]'), [], 'no FDB entries')
  t.same(ipJson(ns, ['neigh', 'show']), [], 'no neighbours')
  t.same(await d.call('listRoutes'), [], 'no routes')
})

// The time these steps take is printed (bench/bridge.ts measures the whole path); the test checks what they made.
t.test('bridge + veth pair + enslave + up, one call each', async (t) => {
  const ns = netns(t)
  const d = await nsDriver(t, ns)
  await d.call('listLinks') // warm up the socket and the code paths
  const steps = [
    await d.timed('createBridge', ['fy-br0', { mtu: 1450 }]),
    await d.timed('createVeth', ['fy-ve0', 'fy-ve1', { mtu: 1450 }]),
    await d.timed('setMaster', ['fy-ve0', 'fy-br0']),
    await d.timed('setUp', ['fy-br0', true]),
    await d.timed('setUp', ['fy-ve0', true]),
  ]
  const total = steps.reduce((sum, s) => sum + s.ms, 0)
  t.comment(`bridge + veth + enslave + up: ${total.toFixed(2)} ms (${steps.map((s) => s.ms.toFixed(2)).join(' + ')})`)
  const [br, ve0, ve1] = ['fy-br0', 'fy-ve0', 'fy-ve1'].map((n) => linkOf(ns, n))
  t.same([br?.mtu, ve0?.mtu, ve1?.mtu], [1450, 1450, 1450], 'the bridge and both ends have the MTU asked for')
  t.equal(ve0?.master, 'fy-br0', 'one end is enslaved to the bridge')
  t.equal(ve1?.master, undefined, 'the other is not')
  t.same([br?.flags.includes('UP'), ve0?.flags.includes('UP'), ve1?.flags.includes('UP')], [true, true, false], 'the bridge and the enslaved end are up')
})

t.test('dumps interrupted by concurrent changes are retried', async (t) => {
  const ns = netns(t)
  const d = await nsNode<NetlinkDriver>(t, ns, { module: 'dist/kernel/netlink.js', factory: 'openLinkDriver' })
  // Enough addresses that a dump spans several messages, so a change in between interrupts it.
  sh(['ip', '-n', ns, 'link', 'add', 'fy-d', 'type', 'bridge'])
  const many = Array.from({ length: 600 }, (_, i) => `addr add 10.1.${i >> 8}.${i & 255}/32 dev fy-d`).join('\n') + '\n'
  sh(['ip', '-n', ns, '-batch', '-'], { input: many })
  // Another process adds and deletes an address every few ms meanwhile (asynchronously).
  let stop = false
  const churner = (async () => {
    for (let i = 0; !stop && i < 2000; i++) {
      await execFile(['ip', '-n', ns, '-batch', '-'], { input: `addr add 10.2.0.${i % 250}/32 dev fy-d\naddr del 10.2.0.${i % 250}/32 dev fy-d\n` })
    }
  })()
  try {
    for (let i = 0; i < 40; i++) {
      const cidrs = (await d.call('listAddresses')).map((a) => a.cidr)
      t.equal(cidrs.filter((c) => c.startsWith('10.1.')).length, 600, `dump ${i}: every stable address`)
      t.equal(new Set(cidrs).size, cidrs.length, `dump ${i}: no duplicates`)
    }
  } finally {
    stop = true
    await churner
  }
  t.comment(`dumps retried: ${await d.call('retriedDumps')}`)
})
