import t from 'tap'
import { checkState } from '../../src/store/schema.js'

const net = {
  id: 'n1', bridge: 'fy-n1', ownsBridge: true, subnet: '10.20.0.0/24', gateway: '10.20.0.1', poolId: 'p', mtu: 1500,
  icc: true, masquerade: true, internal: false, hostBindingIp: '', options: {}, createdAt: '',
}
const ep = {
  id: 'e1', networkId: 'n1', address: '10.20.0.2', prefixLen: 24, mac: '02:42:0a:14:00:02', hostVeth: 'fyh1', containerVeth: 'fyc1',
  joined: true, portRequests: [], ports: [], exposed: [], createdAt: '',
}

t.test('dual-stack records: the IPv6 fields are checked when present', async (t) => {
  const dual = { ...net, subnet6: 'fd00:1::/64', gateway6: 'fd00:1::1', poolId6: 'p6', gatewayMode6: 'routed' }
  const ep6 = { ...ep, address6: 'fd00:1::2', prefixLen6: 64 }
  const ok = checkState({ networks: { n1: dual }, endpoints: { e1: ep6 }, pools: {} }, 1)
  t.same(ok.problems, [])
  t.same(ok.state.networks.n1, dual)
  t.same(ok.state.endpoints.e1, ep6)
  const bad = checkState({ networks: { n1: { ...dual, gatewayMode6: 'isolated' } }, endpoints: { e1: { ...ep6, prefixLen6: '64' } }, pools: {} }, 1)
  t.same(bad.dropped, ['networks/n1', 'endpoints/e1'])
  t.same(checkState({ networks: { n1: net }, endpoints: { e1: ep }, pools: {} }, 1).problems, [], 'IPv4-only records as before')
})
