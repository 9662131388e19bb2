/**
 * Golden tests of the nftables plan (src/nat/nft-plan.ts): the `nft -f` text a
 * fresh host gets for a matrix of options, the elements of endpoints, networks
 * and links, and the parser of `nft list table` (src/nat/nft-parse.ts). Update
 * the snapshots with `npx tap --snapshot test/nat/nft-plan.test.ts`. That the
 * text is what nft itself prints is checked against the kernel in
 * test/kernel/nftables.test.ts.
 */
import t from 'tap'
import type { PortBinding, Protocol } from '../../src/model/types.js'
import type { PlanOptions } from '../../src/nat/plan.js'
import {
  elementLines, endpointElements, linkElements, networkElements, planSkeleton, planTable, renderRewrite, renderTeardown, sameTable,
} from '../../src/nat/nft-plan.js'
import { parseNftTable } from '../../src/nat/nft-parse.js'
import type { FirewallState, NatEndpoint, NatNetwork } from '../../src/nat/types.js'

function net (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return { id: `${n}`.repeat(64), bridge: `fy-net${n}`, subnet: `10.2${n}.0.0/24`, gateway: `10.2${n}.0.1`, icc: true, masquerade: true, internal: false, ...over }
}

function port (proto: Protocol, host: string, hostPort: number, containerIp: string, containerPort: number, len = 1, hostLen = len): PortBinding {
  return { proto, hostIp: host, hostPort, hostPortEnd: hostPort + hostLen - 1, containerIp, containerPort, containerPortEnd: containerPort + len - 1 }
}

function ep (id: string, network: NatNetwork, host: number, ports: Array<(ip: string) => PortBinding>): NatEndpoint {
  const address = network.gateway!.replace(/\.1$/, `.${host}`)
  return { id: id.padEnd(64, '0'), networkId: network.id, address, ports: ports.map((p) => p(address)) }
}

function snap (state: FirewallState, opts: PlanOptions = {}): string {
  const p = planTable(state, opts)
  return `route_localnet=1 on: ${p.localnetBridges.join(' ') || '(none)'}\n${renderRewrite(undefined, p.table)}`
}

const PORTS = [
  (ip: string) => port('tcp', '', 8080, ip, 80),
  (ip: string) => port('udp', '192.0.2.10', 5353, ip, 53),
  (ip: string) => port('sctp', '', 9000, ip, 9000),
  (ip: string) => port('tcp', '127.0.0.1', 8443, ip, 443),
  (ip: string) => port('tcp', '', 20000, ip, 20000, 200),
  (ip: string) => port('udp', '127.0.0.1', 30000, ip, 100, 4),
  (ip: string) => port('tcp', '0.0.0.0', 40000, ip, 22, 1, 5),
]

t.test('golden tables', async (t) => {
  const n1 = net(1)
  t.matchSnapshot(snap({ networks: [], endpoints: [] }), 'no network: the fixed chains and empty sets')
  t.matchSnapshot(snap({ networks: [n1], endpoints: [] }), 'one network, icc, masquerade')
  t.matchSnapshot(snap({ networks: [net(1, { icc: false })], endpoints: [] }), 'icc off')
  t.matchSnapshot(snap({ networks: [net(1, { masquerade: false })], endpoints: [] }), 'masquerade off')
  t.matchSnapshot(snap({ networks: [net(1, { outboundAddr: '198.51.100.7' })], endpoints: [] }), 'outbound address: SNAT instead of masquerade')
  const internal = net(3, { internal: true })
  t.matchSnapshot(snap({ networks: [internal], endpoints: [ep('e3', internal, 2, [(ip) => port('tcp', '', 8080, ip, 80)])] }), 'internal network publishes nothing')
  t.matchSnapshot(snap({ networks: [net(3, { internal: true, icc: false })], endpoints: [] }), 'internal network with icc off')
  t.matchSnapshot(snap({ networks: [n1], endpoints: [ep('e1', n1, 2, PORTS)] }), 'tcp/udp/sctp, host IP given / 127.0.0.1 / empty, ranges with and without offset')
  t.matchSnapshot(snap({ networks: [n1], endpoints: [ep('e1', n1, 2, PORTS)] }, { hostAddrsLocalnet: false }), 'same without localhost publishing')
  t.matchSnapshot(snap({ networks: [n1], endpoints: [ep('e1', n1, 2, [(ip) => port('tcp', '192.0.2.10', 8080, ip, 80)])] }), 'only a specific host IP: no route_localnet')
  const n2 = net(2, { icc: false })
  t.matchSnapshot(snap({
    networks: [n1, n2],
    endpoints: [],
    links: [
      { id: 'l1', networkId: n2.id, parentIp: '10.22.0.2', childIp: '10.22.0.3', ports: [{ proto: 'tcp', port: 5432 }, { proto: 'udp', port: 53 }, { proto: 'tcp', port: 5432 }] },
      { id: 'l2', networkId: n1.id, parentIp: '10.21.0.2', childIp: '10.21.0.3', ports: [{ proto: 'tcp', port: 80 }] },
    ],
  }), 'links: only on the icc-off network')
})

t.test('an endpoint is elements only', async (t) => {
  const n1 = net(1)
  const e = ep('e1', n1, 2, PORTS)
  const p = endpointElements(e, n1)
  t.equal(p.localnet, true)
  t.same(new Set(p.elements.map((x) => x.set)), new Set(['any_port', 'host_port', 'any_range', 'any_keep', 'lo_only', 'lo_from']))
  t.same(p.elements.filter((x) => x.set === 'any_range'), [{ set: 'any_range', key: 'tcp . 40000-40004', value: '10.21.0.2 . 22' }], 'a range onto one port: one interval element')
  t.same(p.elements.filter((x) => x.set === 'any_keep'), [{ set: 'any_keep', key: 'tcp . 20000-20199', value: '10.21.0.2' }], 'a 200-port N:N range is one interval element')
  t.equal(p.elements.filter((x) => x.set === 'any_port' && x.key.startsWith('udp')).length, 0, 'the loopback offset range is on host_port')
  t.equal(p.elements.filter((x) => x.set === 'host_port' && x.key.startsWith('127.0.0.1 . udp')).length, 4, 'an offset range is one element per port')
  t.same(p.elements.filter((x) => x.set === 'lo_from').map((x) => x.key), ['"fy-net1" . 10.21.0.2 . tcp . 443', '"fy-net1" . 10.21.0.2 . udp . 100-103'])
  t.same(endpointElements(e, net(1, { internal: true })).elements, [], 'nothing on an internal network')
  t.same(endpointElements(e, undefined).elements, [], 'nothing on an unknown network')
  t.same(endpointElements(ep('e2', n1, 3, [(ip) => port('tcp', '127.0.0.1', 8000, ip, 80, 10), (ip) => port('tcp', '127.0.0.2', 9005, ip, 85, 10)]), n1).elements
    .filter((x) => x.set === 'lo_only').map((x) => x.key), ['10.21.0.3 . tcp . 80-94'], 'overlapping loopback ranges merge into one interval')
  t.same(elementLines('delete', p.elements.slice(0, 2)), ['delete element inet ferry any_port { tcp . 8080 }', 'delete element inet ferry host_port { 192.0.2.10 . udp . 5353 }'])
  t.same(elementLines('add', p.elements.slice(0, 1)), ['add element inet ferry any_port { tcp . 8080 : 10.21.0.2 . 80 }'])
})

t.test('networks and links are elements too; the chains never depend on the state', async (t) => {
  const empty = planSkeleton()
  const full = planTable({ networks: [net(1), net(2, { icc: false, internal: true })], endpoints: [ep('e1', net(1), 2, PORTS)] }).table
  t.same(full.chains, empty.chains, 'same chains and rules whatever the state')
  t.same(networkElements(net(4, { masquerade: false }), { hostAddrsLocalnet: false }), [
    { set: 'bridges', key: '"fy-net4"' },
    { set: 'external', key: '"fy-net4"' },
    { set: 'icc', key: '"fy-net4" . "fy-net4"', value: 'accept' },
    { set: 'subnets', key: '"fy-net4" . 10.24.0.0/24' },
  ])
  t.same(linkElements({ id: 'l', networkId: net(1).id, parentIp: '10.21.0.2', childIp: '10.21.0.3', ports: [{ proto: 'tcp', port: 1 }] }, net(1)), [], 'no link elements on an icc network')
})

t.test('validation: nothing from outside becomes nft text unchecked', async (t) => {
  t.throws(() => planTable({ networks: [net(1, { bridge: 'x" ; flush ruleset' })], endpoints: [] }), { code: 'INVALID_REQUEST' })
  t.throws(() => planTable({ networks: [net(1, { outboundAddr: '1.2.3.4 }' })], endpoints: [] }), { code: 'INVALID_REQUEST' })
  t.throws(() => planTable({ networks: [net(1)], endpoints: [{ ...ep('e', net(1), 2, []), address: '10.0.0.1 . tcp' }] }), { code: 'INVALID_REQUEST' })
})

const LISTED = `table inet ferry {
\tset external {
\t\ttype ifname
\t\telements = { "fy-net1",
\t\t\t     "fy-net2" }
\t}

\tmap any_keep {
\t\ttype inet_proto . inet_service : ipv4_addr
\t\tflags interval
\t\telements = { tcp . 20000-20199 : 10.21.0.2 }
\t}

\tchain user {
\t\tip saddr 192.0.2.0/24 drop
\t}

\tchain nat-prerouting {
\t\ttype nat hook prerouting priority dstnat - 10; policy accept;
\t\tfib daddr type local jump publish
\t}
}
`

t.test('parsing nft list table', async (t) => {
  const k = parseNftTable(LISTED)
  t.ok(k)
  t.same(k!.sets.get('external'), { kind: 'set', spec: ['type ifname'], elements: ['"fy-net1"', '"fy-net2"'] })
  t.same(k!.sets.get('any_keep')!.elements, ['tcp . 20000-20199 : 10.21.0.2'])
  t.same(k!.chains.get('user'), { rules: ['ip saddr 192.0.2.0/24 drop'] })
  t.same(k!.chains.get('nat-prerouting'), { hook: 'type nat hook prerouting priority dstnat - 10; policy accept;', rules: ['fib daddr type local jump publish'] })
  t.equal(parseNftTable(''), undefined, 'no table')
  t.equal(sameTable(k, planSkeleton()), false, 'a partial table is not the plan')
})

t.test('rewrite and teardown batches', async (t) => {
  const k = parseNftTable(LISTED)
  t.matchSnapshot(renderRewrite(k, planSkeleton()), 'rewrite over a partial table: flush and refill, user chain untouched')
  t.equal(renderTeardown(undefined), '', 'nothing to tear down')
  t.equal(renderTeardown(parseNftTable(LISTED.replace('\t\tip saddr 192.0.2.0/24 drop\n', ''))), 'delete table inet ferry\n', 'an empty user chain goes with the table')
  t.matchSnapshot(renderTeardown(k), 'a user chain with rules stays')
})

// ---------------------------------------------------------------------------
// Both families: the same cases, once per family (IPv6's sets end in 6).

function dual (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return net(n, { subnet6: `fd00:${n}::/64`, gateway6: `fd00:${n}::1`, ...over })
}

function dualEp (id: string, network: NatNetwork, host: number, ports: (family: 4 | 6) => Array<(ip: string) => PortBinding>): NatEndpoint {
  const address = network.gateway!.replace(/\.1$/, `.${host}`)
  const address6 = `fd00:${network.subnet6!.split(':')[1]!}::${host}`
  return { id: id.padEnd(64, '0'), networkId: network.id, address, address6, ports: [...ports(4).map((p) => p(address)), ...ports(6).map((p) => p(address6))] }
}

const HOST = { 4: '192.0.2.10', 6: '2001:db8::5' } as const
const SFX = { 4: '', 6: '6' } as const

/** Every -p form but loopback, in one family. */
function familyPorts (f: 4 | 6): Array<(ip: string) => PortBinding> {
  return [
    (ip) => port('tcp', '', 8080, ip, 80),
    (ip) => port('udp', HOST[f], 5353, ip, 53),
    (ip) => port('sctp', '', 9000, ip, 9000),
    (ip) => port('tcp', '', 20000, ip, 20000, 200),
    (ip) => port('tcp', f === 4 ? '0.0.0.0' : '::', 40000, ip, 22, 1, 5),
    (ip) => port('tcp', HOST[f], 50000, ip, 50000, 3),
  ]
}

t.test('golden tables, dual-stack', async (t) => {
  const n1 = dual(1)
  t.matchSnapshot(snap({ networks: [n1], endpoints: [dualEp('e1', n1, 2, familyPorts)] }), 'dual-stack network (IPv6 nat mode): both families published')
  const r = dual(2, { mode6: 'routed' })
  t.matchSnapshot(snap({ networks: [r], endpoints: [dualEp('e2', r, 2, familyPorts)] }), 'IPv6 routed mode: no masquerade, no DNAT, published container ports opened')
  t.matchSnapshot(snap({ networks: [dual(3, { outboundAddr6: '2001:db8::7', icc: false })], endpoints: [] }), 'IPv6 outbound address, icc off')
})

for (const f of [4, 6] as const) {
  t.test(`IPv${f}: publications are elements of the family's maps`, async (t) => {
    const n1 = dual(1)
    const e = dualEp('e1', n1, 2, (g) => (g === f ? familyPorts(g) : []))
    const addr = f === 4 ? e.address : e.address6!
    const p = endpointElements(e, n1)
    t.same(new Set(p.elements.map((x) => x.set)), new Set(['any_port', 'host_port', 'any_keep', 'any_range', 'host_keep'].map((s) => s + SFX[f])))
    t.same(p.elements.find((x) => x.set === `any_port${SFX[f]}` && x.key === 'tcp . 8080'), { set: `any_port${SFX[f]}`, key: 'tcp . 8080', value: `${addr} . 80` })
    t.same(p.elements.find((x) => x.set === `host_port${SFX[f]}`), { set: `host_port${SFX[f]}`, key: `${HOST[f]} . udp . 5353`, value: `${addr} . 53` })
    t.same(p.elements.filter((x) => x.set === `host_keep${SFX[f]}`), [{ set: `host_keep${SFX[f]}`, key: `${HOST[f]} . tcp . 50000-50002`, value: addr }])
    const subnet = f === 4 ? '10.21.0.0/24' : 'fd00:1::/64'
    t.ok(networkElements(n1).some((x) => x.set === `masq${SFX[f]}` && x.key === subnet), 'masqueraded')
    t.ok(networkElements(n1).some((x) => x.set === `subnets${SFX[f]}` && x.key === `"fy-net1" . ${subnet}`), 'hairpin subnet')
    const link = { id: 'l', networkId: n1.id, parentIp: f === 4 ? '10.21.0.2' : 'fd00:1::2', childIp: f === 4 ? '10.21.0.3' : 'fd00:1::3', ports: [{ proto: 'tcp' as const, port: 5432 }] }
    const off = dual(1, { icc: false })
    t.same(linkElements(link, off).map((x) => x.set), [`link_to${SFX[f]}`, `link_from${SFX[f]}`])
  })
}

t.test('an IPv6-only network: IPv6 elements only, no localnet, no IPv4 masquerade', async (t) => {
  const n5 = dual(5)
  delete n5.subnet
  delete n5.gateway
  const e5: NatEndpoint = { id: 'e5'.padEnd(64, '0'), networkId: n5.id, address6: 'fd00:5::2', ports: familyPorts(6).map((p) => p('fd00:5::2')) }
  t.matchSnapshot(snap({ networks: [n5], endpoints: [e5] }), 'an IPv6-only network')
  const els = networkElements(n5)
  t.same(els.filter((x) => ['masq', 'snat_to', 'subnets', 'localnet'].includes(x.set)), [], 'nothing of IPv4, and no localnet guard or masquerade')
  t.ok(els.some((x) => x.set === 'masq6' && x.key === 'fd00:5::/64'), 'IPv6 masquerade')
  const p = endpointElements(e5, n5)
  t.ok(p.elements.every((x) => x.set.endsWith('6')), 'IPv6 maps only')
  t.equal(p.localnet, false, 'no route_localnet')
})

t.test('IPv6 routed mode: the container port is opened in the filter, IPv4 keeps its DNAT', async (t) => {
  const r = dual(2, { mode6: 'routed' })
  const e = dualEp('e2', r, 2, () => [(ip) => port('tcp', '', 8080, ip, 80), (ip) => port('udp', '', 7000, ip, 7000, 10)])
  const p = endpointElements(e, r)
  t.same(p.elements.filter((x) => x.set.endsWith('6')), [
    { set: 'routed6', key: '"fy-net2" . fd00:2::2 . tcp . 80' },
    { set: 'routed6', key: '"fy-net2" . fd00:2::2 . udp . 7000-7009' },
  ])
  t.ok(p.elements.some((x) => x.set === 'any_port' && x.value === '10.22.0.2 . 80'), 'IPv4 still DNAT')
  t.notOk(networkElements(r).some((x) => x.set === 'masq6'), 'no IPv6 masquerade')
  t.ok(networkElements(r).some((x) => x.set === 'masq'), 'IPv4 masquerade')
})

t.test('IPv6 validation', async (t) => {
  const n1 = dual(1)
  const with6 = (b: PortBinding): FirewallState => ({ networks: [n1], endpoints: [{ ...dualEp('e', n1, 2, () => []), ports: [b] }] })
  t.throws(() => planTable(with6(port('tcp', '::1', 8080, 'fd00:1::2', 80))), { code: 'INVALID_REQUEST', message: /IPv6 loopback \[::1\] cannot be published/ })
  t.throws(() => planTable(with6(port('tcp', '192.0.2.1', 8080, 'fd00:1::2', 80))), { code: 'INVALID_REQUEST', message: /not an IPv6 address like its container IP/ })
  t.throws(() => planTable(with6(port('tcp', '2001:db8::1', 8080, '10.21.0.2', 80))), { code: 'INVALID_REQUEST' })
  t.throws(() => planTable({ networks: [dual(1, { subnet6: 'fd00::/64 }' })], endpoints: [] }), { code: 'INVALID_REQUEST' })
  t.throws(() => planTable({ networks: [dual(1, { mode6: 'bridge' as 'nat' })], endpoints: [] }), { code: 'INVALID_REQUEST' })
  t.throws(() => planTable({ networks: [n1], endpoints: [{ ...dualEp('e', n1, 2, () => []), address6: 'fd00::1 . tcp' }] }), { code: 'INVALID_REQUEST' })
  t.doesNotThrow(() => planTable(with6(port('tcp', '2001:DB8:0::5', 8080, 'fd00:1::2', 80))), 'any spelling of an address is fine')
  t.same(endpointElements({ ...dualEp('e', n1, 2, () => []), ports: [port('tcp', '2001:DB8:0::5', 8080, 'FD00:1:0::2', 80)] }, n1).elements,
    [{ set: 'host_port6', key: '2001:db8::5 . tcp . 8080', value: 'fd00:1::2 . 80' }], 'elements are canonical, as nft prints them')
})

t.test('TCP MSS clamping: an encrypted overlay\'s bridge is an element of mss_clamp, read by one fixed rule for both families', async (t) => {
  const overlay = net(7, { bridge: 'fyo-0123456789a', clampMss: true, subnet6: 'fd00:7::/64', gateway6: 'fd00:7::1' })
  t.ok(networkElements(overlay).some((e) => e.set === 'mss_clamp' && e.key === '"fyo-0123456789a"'))
  t.notOk(networkElements(net(8)).some((e) => e.set === 'mss_clamp'), 'not a plain network')
  t.ok(networkElements({ ...overlay, internal: true }).some((e) => e.set === 'mss_clamp'), 'an internal one too')
  const forward = planSkeleton().chains.find((c) => c.name === 'filter-forward')!.rules
  const i = forward.indexOf('oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu')
  t.ok(i > forward.indexOf('jump user') && i < forward.findIndex((r) => / (accept|drop)$/.test(r) || r.includes('vmap')), 'after the user chain, before any verdict')
  const p = planTable({ networks: [overlay, net(8)], endpoints: [] })
  t.same(p.table.sets.find((s) => s.name === 'mss_clamp')?.elements, ['"fyo-0123456789a"'])
})
