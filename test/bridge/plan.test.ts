import t from 'tap'
import { BRIDGE_IPV6_CONF, bridgeSetupOps, desiredBridge, desiredVeth, hostVethOps, planBridge, planReconcile, planVeth } from '../../src/bridge/plan.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'
import type { AddressInfo, Ipv6ConfKey, LinkInfo } from '../../src/kernel/types.js'

const NET: NetworkRecord = {
  id: 'a'.repeat(64), bridge: 'fy-aaaaaaaaaaaa', ownsBridge: true, subnet: '10.20.0.0/24', gateway: '10.20.0.1', poolId: 'p1',
  mtu: 1450, icc: true, masquerade: true, internal: false, hostBindingIp: '0.0.0.0', options: {}, createdAt: '2026-01-01T00:00:00Z',
}
const EP: EndpointRecord = {
  id: 'e'.repeat(64), networkId: NET.id, address: '10.20.0.2', prefixLen: 24, mac: '02:42:0a:14:00:02',
  hostVeth: 'fyheeeeeeeeeeee', containerVeth: 'fyceeeeeeeeeeee', joined: true, portRequests: [], ports: [], exposed: [], createdAt: '2026-01-01T00:00:00Z',
}
const linkAt = (index: number, name: string, o: Partial<LinkInfo> = {}): LinkInfo => ({ index, name, mtu: 1450, mac: '02:42:0a:14:00:01', up: true, ...o })
const BR = linkAt(10, NET.bridge, { kind: 'bridge' })
const HOST = linkAt(11, EP.hostVeth, { kind: 'veth', master: 10, hairpin: true })
const ADDR: AddressInfo = { ifname: NET.bridge, index: 10, cidr: '10.20.0.1/24' }

t.test('desired bridge and veth', async (t) => {
  t.same(desiredBridge(NET), { name: NET.bridge, mtu: 1450, addresses: ['10.20.0.1/24'], ipv6Conf: [], mac: '02:42:0a:14:00:01' })
  t.same(desiredVeth(EP, NET), { host: EP.hostVeth, container: EP.containerVeth, mtu: 1450, mac: EP.mac, master: NET.bridge })
})

t.test('an IPv6-only network: the IPv6 gateway alone, the IPv6 settings, a MAC from the gateway\'s last four bytes', async (t) => {
  const { subnet: _s, gateway: _g, poolId: _p, ...rest } = NET
  const only6: NetworkRecord = { ...rest, subnet6: 'fd00:20::/64', gateway6: 'fd00:20::1', poolId6: 'p6' }
  t.same(desiredBridge(only6), { name: NET.bridge, mtu: 1450, addresses: ['fd00:20::1/64'], ipv6Conf: BRIDGE_IPV6_CONF, mac: '02:42:00:00:00:01' })
  t.same(hostVethOps('fyh1', only6), [{ op: 'setIpv6Conf', name: 'fyh1', key: 'disable_ipv6', value: '1' }])
  t.throws(() => desiredBridge(rest), { code: 'INTERNAL', message: /has no gateway in either family/ }, 'a record with no family cannot be planned')
})

t.test('an empty kernel: the bridge is made, addressed and brought up; a missing veth is not recreated', async (t) => {
  t.same(planReconcile([NET], [EP], [], []), [
    { op: 'createBridge', name: NET.bridge, mtu: 1450, mac: '02:42:0a:14:00:01' },
    { op: 'addAddress', name: NET.bridge, cidr: '10.20.0.1/24' },
    { op: 'setUp', name: NET.bridge },
  ])
})

t.test('a kernel that matches: nothing to do', async (t) => {
  t.same(planReconcile([NET], [EP], [BR, HOST], [ADDR]), [])
})

t.test('drift: MTU, down links, a lost master, hairpin off', async (t) => {
  t.same(planReconcile([NET], [EP], [{ ...BR, mtu: 1500, up: false }, { ...HOST, up: false, master: undefined }], [ADDR]), [
    { op: 'setMtu', name: NET.bridge, mtu: 1450 },
    { op: 'setUp', name: NET.bridge },
    { op: 'setMaster', name: EP.hostVeth, master: NET.bridge },
    { op: 'setHairpin', name: EP.hostVeth },
    { op: 'setUp', name: EP.hostVeth },
  ])
  t.same(planReconcile([NET], [EP], [BR, { ...HOST, hairpin: false }], [ADDR]), [{ op: 'setHairpin', name: EP.hostVeth }], 'hairpin turned off')
  t.same(planReconcile([NET], [EP], [BR, { ...HOST, hairpin: undefined }], [ADDR]), [], 'an unreported hairpin mode is left alone')
  t.same(planReconcile([NET], [EP], [BR, HOST], [{ ...ADDR, cidr: '10.20.0.9/24' }]), [{ op: 'addAddress', name: NET.bridge, cidr: '10.20.0.1/24' }], 'another address does not count')
})

t.test('links ferry owns that nothing needs are deleted, unless the store lost changes; others stay', async (t) => {
  const stray = linkAt(20, 'fyh111111111111', { kind: 'veth' })
  const foreign = linkAt(21, 'eth0')
  const ops = planReconcile([NET], [], [BR, stray, foreign, HOST], [ADDR])
  t.same(ops.map((o) => o.op === 'deleteLink' ? o.name : o.op), ['fyh111111111111', EP.hostVeth])
  t.same(planReconcile([NET], [], [BR, stray, foreign], [ADDR], { keepUnexplained: true }), [], 'keepUnexplained keeps them')
})

t.test('overlay networks and endpoints of unknown networks are not the bridge plan\'s', async (t) => {
  const ov: NetworkRecord = { ...NET, id: 'b'.repeat(64), bridge: 'fy-bbbbbbbbbbbb', overlay: { name: 'ov1', vni: 4096 } }
  t.same(planReconcile([ov], [{ ...EP, networkId: 'nope' }], [], []), [])
})

const v4: NetworkRecord = {
  id: 'n1', bridge: 'fy-n1', ownsBridge: true, subnet: '10.20.0.0/24', gateway: '10.20.0.1', poolId: 'p', mtu: 1500,
  icc: true, masquerade: true, internal: false, hostBindingIp: '', options: {}, createdAt: '',
}
const dual: NetworkRecord = { ...v4, id: 'n2', bridge: 'fy-n2', subnet6: 'fd00:1::/64', gateway6: 'fd00:1::1', poolId6: 'p6', gatewayMode6: 'nat' }
const link = (name: string, index: number) => ({ name, index, mtu: 1500, up: true, kind: 'bridge', mac: '02:42:0a:14:00:01' })

t.test('a dual-stack bridge: IPv6 settings, then both gateways, then up', async (t) => {
  t.same(desiredBridge(dual).addresses, ['10.20.0.1/24', 'fd00:1::1/64'])
  t.same(bridgeSetupOps(desiredBridge(dual)), [
    { op: 'setIpv6Conf', name: 'fy-n2', key: 'disable_ipv6', value: '0' },
    { op: 'setIpv6Conf', name: 'fy-n2', key: 'accept_ra', value: '0' },
    { op: 'setIpv6Conf', name: 'fy-n2', key: 'autoconf', value: '0' },
    { op: 'addAddress', name: 'fy-n2', cidr: '10.20.0.1/24' },
    { op: 'addAddress', name: 'fy-n2', cidr: 'fd00:1::1/64' },
    { op: 'setUp', name: 'fy-n2' },
  ])
  t.same(bridgeSetupOps(desiredBridge(v4)), [{ op: 'addAddress', name: 'fy-n1', cidr: '10.20.0.1/24' }, { op: 'setUp', name: 'fy-n1' }],
    'an IPv4-only bridge: no IPv6 setting (the kernel may have no IPv6)')
  t.same(hostVethOps('fyh1', dual), [{ op: 'setIpv6Conf', name: 'fyh1', key: 'disable_ipv6', value: '1' }])
  t.same(hostVethOps('fyh1', v4), [])
})

t.test('reconcile restores a missing IPv6 gateway and IPv6 settings that drifted, and nothing that is right', async (t) => {
  const good = new Map<Ipv6ConfKey, string>(BRIDGE_IPV6_CONF)
  const addrs = [{ ifname: 'fy-n2', index: 2, cidr: '10.20.0.1/24' }, { ifname: 'fy-n2', index: 2, cidr: 'fd00:1::1/64' }]
  t.same(planReconcile([dual], [], [link('fy-n2', 2)], addrs, { ipv6Conf: new Map([['fy-n2', good]]) }), [], 'all in place')
  const drifted = new Map(good).set('accept_ra', '1')
  t.same(planReconcile([dual], [], [link('fy-n2', 2)], addrs.slice(0, 1), { ipv6Conf: new Map([['fy-n2', drifted]]) }), [
    { op: 'setIpv6Conf', name: 'fy-n2', key: 'accept_ra', value: '0' },
    { op: 'addAddress', name: 'fy-n2', cidr: 'fd00:1::1/64' },
  ])
  const gone = planReconcile([dual], [], [], [])
  t.same(gone.map((o) => o.op), ['createBridge', 'setIpv6Conf', 'setIpv6Conf', 'setIpv6Conf', 'addAddress', 'addAddress', 'setUp'], 'a bridge recreated gets everything')
})

t.test('one planner per object: a veth pair a request makes, and what a reconcile repairs of it, in both families', async (t) => {
  for (const net of [v4, dual]) {
    const ep: EndpointRecord = { ...EP, networkId: net.id }
    t.same(planVeth(ep, net, undefined), [
      { op: 'createVeth', name: EP.hostVeth, peer: EP.containerVeth, mtu: 1500, peerMac: EP.mac },
      ...(net.subnet6 === undefined ? [] : [{ op: 'setIpv6Conf', name: EP.hostVeth, key: 'disable_ipv6', value: '1' }]),
      { op: 'setMaster', name: EP.hostVeth, master: net.bridge },
      { op: 'setHairpin', name: EP.hostVeth },
      { op: 'setUp', name: EP.hostVeth },
    ], `a new pair (${net.id})`)
    t.same(planVeth(ep, net, { up: true, master: net.bridge, hairpin: true }), [], 'a port as it should be')
    t.same(planVeth(ep, net, { up: true, master: 'fy-other' }), [
      { op: 'setMaster', name: EP.hostVeth, master: net.bridge }, { op: 'setHairpin', name: EP.hostVeth },
    ], 'moved to another bridge: enslaved back, hairpin again')
  }
})

t.test('one planner per object: a bridge a request makes is what a reconcile makes of a missing one', async (t) => {
  for (const net of [v4, dual]) {
    t.same(planBridge(desiredBridge(net), { link: undefined, addresses: [] }), planReconcile([net], [], [], []), net.id)
  }
  t.same(planBridge(desiredBridge(v4), { link: { ...link('fy-n1', 2), mtu: 9000 }, addresses: ['10.20.0.1/24'] }), [{ op: 'setMtu', name: 'fy-n1', mtu: 1500 }])
  t.same(planBridge(desiredBridge(dual), { link: link('fy-n2', 2), addresses: ['10.20.0.1/24', 'fd00:1::1/64'] }).map((o) => o.op),
    ['setIpv6Conf', 'setIpv6Conf', 'setIpv6Conf'], 'settings not read: all of them written')
})
