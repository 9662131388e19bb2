/** The firewall of an agent started with --iptables=false (src/nat/disabled.ts): plans nothing, refuses publications. */
import t from 'tap'
import { networkRecord, endpointRecord } from '../fixtures/records.js'
import { DisabledFirewall, warnWithoutIptables } from '../../src/nat/disabled.js'

const NET = { id: 'n1', bridge: 'fy-n1', subnet: '10.1.0.0/24', gateway: '10.1.0.1', icc: true, masquerade: true, internal: false }
const PORT = { proto: 'tcp' as const, containerPort: 80, containerPortEnd: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }

t.test('every intent is accepted and does nothing; teardown leaves old rules alone', async (t) => {
  const fw = new DisabledFirewall()
  await fw.addNetwork(NET)
  await fw.setEndpoint({ id: 'e1', networkId: 'n1', address: '10.1.0.2', ports: [] })
  await fw.allowLink({ id: 'l1', networkId: 'n1', parentIp: '10.1.0.2', childIp: '10.1.0.3', ports: [] })
  t.same(fw.linkIds(), [], 'links are not held: there are no rules to keep')
  t.equal(await fw.reconcile({ networks: [NET], endpoints: [] }), false, 'nothing is ever repaired')
  await fw.removeLink('l1')
  await fw.removeEndpoint('e1')
  await fw.removeNetwork('n1')
  await fw.teardown()
})

t.test('publications and enable_icc=false are refused with one sentence', async (t) => {
  const fw = new DisabledFirewall()
  t.doesNotThrow(() => fw.checkPorts([]))
  t.throws(() => fw.checkPorts([PORT]), { code: 'UNSUPPORTED', message: /^cannot publish ports: the ferry agent runs with --iptables=false .*no userland proxy.*; publish no ports .* or restart the agent without --iptables=false$/ })
  await t.rejects(fw.setEndpoint({ id: 'e1', networkId: 'n1', address: '10.1.0.2', ports: [{ ...PORT, containerIp: '10.1.0.2' }] }), { code: 'UNSUPPORTED' })
  t.doesNotThrow(() => fw.checkNetwork({ icc: true }))
  t.throws(() => fw.checkNetwork({ icc: false }), { code: 'UNSUPPORTED', message: /enable_icc=false needs iptables/ })
  t.throws(() => fw.checkNetwork({ icc: true, encrypt: 'wireguard' }), { code: 'UNSUPPORTED', message: /ferry.encrypt=wireguard needs ferry's firewall/ }, 'an encrypted overlay: nothing would drop plain VXLAN from the underlay')
})

t.test('at start with --iptables=false: a warning for what the store asked of the firewall', async (t) => {
  const said: string[] = []
  const log = { warn: (...a: unknown[]) => { said.push(String(a[a.length - 1])) } }
  warnWithoutIptables([networkRecord('n1', { icc: false }), networkRecord('n2')], [endpointRecord('e1', { ports: [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostIp: '' }] as never }), endpointRecord('e2')], log as never)
  t.equal(said.length, 3, 'off, one ICC-off network, one endpoint that published')
  t.match(said[1], /enable_icc=false, but without iptables nothing blocks/)
  t.match(said[2], /published ports with iptables on/)
  said.length = 0
  warnWithoutIptables([networkRecord('n2')], [endpointRecord('e2')], log as never)
  t.same(said.length, 1, 'nothing asked of it: only that it is off')
})
