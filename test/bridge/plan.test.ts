import t from 'tap'
import { BRIDGE_IPV6_CONF, bridgeSetupOps, desiredBridge, hostVethOps, planReconcile } from '../../src/bridge/plan.js'
import type { NetworkRecord } from '../../src/model/types.js'
import type { Ipv6ConfKey } from '../../src/kernel/types.js'

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
