/**
 * Golden tests of the firewall plan (src/nat/plan.ts) and of the batches that
 * turn one plan into another (src/nat/restore.ts). Snapshots hold the rules a
 * fresh host gets, as the iptables-restore text; update them with
 * `npx tap --snapshot test/nat/plan.test.ts`.
 */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import type { PortBinding, Protocol } from '../../src/model/types.js'
import {
  CHAIN, DNAT_BUCKETS, dnatBucket, emptyRuleset, planBase, planEndpoint, planRules, type PlanOptions, type Ruleset,
} from '../../src/nat/plan.js'
import { diffEndpoint, diffViews, parseSave, renderBatch, viewOf } from '../../src/nat/restore.js'
import type { FirewallState, NatEndpoint, NatNetwork } from '../../src/nat/types.js'

function net (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return {
    id: `${n}`.repeat(64).slice(0, 64),
    bridge: `fy-net${n}`,
    subnet: `10.2${n}.0.0/24`,
    gateway: `10.2${n}.0.1`,
    icc: true,
    masquerade: true,
    internal: false,
    ...over,
  }
}

function port (proto: Protocol, host: string, hostPort: number, containerIp: string, containerPort: number, len = 1, hostLen = len): PortBinding {
  return { proto, hostIp: host, hostPort, hostPortEnd: hostPort + hostLen - 1, containerIp, containerPort, containerPortEnd: containerPort + len - 1 }
}

function ep (id: string, network: NatNetwork, host: number, ports: Array<(ip: string) => PortBinding>): NatEndpoint {
  const address = network.gateway!.replace(/\.1$/, `.${host}`)
  return { id: id.padEnd(64, '0'), networkId: network.id, address, ports: ports.map((p) => p(address)) }
}

/** What a fresh host gets: the restore text from nothing to the plan. */
function fresh (rs: Ruleset): string {
  return renderBatch(diffViews(parseSave(''), rs))
}

function snap (state: FirewallState, opts: PlanOptions = {}): string {
  const rs = planRules(state, opts)
  return `route_localnet=1 on: ${rs.localnetBridges.join(' ') || '(none)'}\n${fresh(rs)}`
}

t.test('golden plans', async (t) => {
  const n1 = net(1)
  t.matchSnapshot(snap({ networks: [], endpoints: [] }), 'no network: chains and jumps only')
  t.matchSnapshot(snap({ networks: [n1], endpoints: [] }), 'one network, icc, masquerade')
  t.matchSnapshot(snap({ networks: [net(1, { icc: false })], endpoints: [] }), 'icc off')
  t.matchSnapshot(snap({ networks: [net(1, { masquerade: false })], endpoints: [] }), 'masquerade off')
  t.matchSnapshot(snap({ networks: [net(1, { outboundAddr: '198.51.100.7' })], endpoints: [] }), 'outbound address (host_ipv4): SNAT instead of MASQUERADE')
  const internal = net(3, { internal: true })
  t.matchSnapshot(snap({
    networks: [internal],
    endpoints: [ep('e3', internal, 2, [(ip) => port('tcp', '', 8080, ip, 80)])],
  }), 'internal network publishes nothing')
  t.matchSnapshot(snap({
    networks: [net(3, { internal: true, icc: false })],
    endpoints: [],
  }), 'internal network with icc off')

  const ports = [
    (ip: string) => port('tcp', '', 8080, ip, 80),
    (ip: string) => port('udp', '192.0.2.10', 5353, ip, 53),
    (ip: string) => port('sctp', '', 9000, ip, 9000),
    (ip: string) => port('tcp', '127.0.0.1', 8443, ip, 443),
    (ip: string) => port('tcp', '', 20000, ip, 20000, 1000),
    (ip: string) => port('udp', '127.0.0.1', 30000, ip, 100, 10),
    (ip: string) => port('tcp', '', 40000, ip, 22, 1, 1),
  ]
  t.matchSnapshot(snap({ networks: [n1], endpoints: [ep('e1', n1, 2, ports)] }),
    'tcp/udp/sctp, host IP given / 127.0.0.1 / empty, ranges with and without offset')
  t.matchSnapshot(snap({ networks: [n1], endpoints: [ep('e1', n1, 2, ports)] }, { hostAddrsLocalnet: false }),
    'same without localhost publishing')
  t.matchSnapshot(snap({
    networks: [n1],
    endpoints: [ep('e1', n1, 2, [(ip) => port('tcp', '192.0.2.10', 8080, ip, 80)])],
  }), 'only a specific host IP: no route_localnet')

  const n2 = net(2, { icc: false, masquerade: false })
  t.matchSnapshot(snap({
    networks: [n2, n1, internal],
    endpoints: [
      ep('e1', n1, 2, [(ip) => port('tcp', '', 8080, ip, 80)]),
      ep('e2', n2, 2, [(ip) => port('udp', '', 8081, ip, 81)]),
      ep('e3', internal, 2, [(ip) => port('tcp', '', 8082, ip, 82)]),
    ],
  }), 'two networks and an internal one: isolation')
})

t.test('rules are deterministic whatever the input order', async (t) => {
  const n1 = net(1)
  const n2 = net(2)
  const a = ep('a', n1, 2, [(ip) => port('tcp', '', 8080, ip, 80)])
  const b = ep('b', n2, 2, [(ip) => port('tcp', '', 8081, ip, 80)])
  t.same(planRules({ networks: [n1, n2], endpoints: [a, b] }), planRules({ networks: [n2, n1], endpoints: [b, a] }))
})

t.test('a duplicate publication yields each rule once', async (t) => {
  const n1 = net(1)
  const e = ep('a', n1, 2, [(ip) => port('tcp', '', 8080, ip, 80), (ip) => port('tcp', '', 8080, ip, 80)])
  const p = planEndpoint(e, n1)
  t.equal(p.rules.length, 1, 'one DNAT (accept and hairpin are per network)')
  t.same(p.rules.map((r) => r.table), ['nat'], 'an endpoint touches the nat table only')
  const rs = planRules({ networks: [n1], endpoints: [e] })
  t.equal(rs.tables.filter[CHAIN.publish]!.rules.length, 1, 'one accept of DNAT\'d connections per network')
  t.equal(rs.tables.nat[CHAIN.hairpin]!.rules.length, 1, 'one hairpin masquerade per network')
})

t.test('the FORWARD chain puts FERRY-USER first and internal networks before published ports', async (t) => {
  const rs = planRules({ networks: [net(1), net(2, { internal: true })], endpoints: [] })
  const fwd = rs.tables.filter[CHAIN.forward]!.rules
  t.match(fwd[0], /-j FERRY-USER$/)
  const internalDrop = fwd.findIndex((r) => r.includes('ferry:internal'))
  const publish = fwd.findIndex((r) => r.endsWith(`-j ${CHAIN.publish}`))
  const isolate = fwd.findIndex((r) => r.includes('ferry:isolate'))
  t.ok(internalDrop > 0 && internalDrop < publish, 'internal drops before published ports')
  t.ok(publish < isolate, 'published ports before isolation')
  t.equal(rs.tables.filter[CHAIN.user]!.kind, 'user')
  const kinds = Object.fromEntries(Object.entries({ ...rs.tables.raw, ...rs.tables.nat, ...rs.tables.filter }).map(([k, v]) => [k, v.kind]))
  t.same(kinds, {
    'FERRY-RAW': 'unordered',
    'FERRY-DNAT': 'ordered',
    ...Object.fromEntries(DNAT_BUCKETS.map((b) => [b, 'unordered'])),
    'FERRY-HAIRPIN': 'unordered',
    'FERRY-POSTROUTING': 'ordered',
    'FERRY-USER': 'user',
    'FERRY-PUBLISH': 'unordered',
    'FERRY-FORWARD': 'ordered',
    'FERRY-INPUT': 'ordered',
  })
  const perBuiltin = new Map<string, number>()
  for (const j of rs.jumps) perBuiltin.set(`${j.table}/${j.chain}`, (perBuiltin.get(`${j.table}/${j.chain}`) ?? 0) + 1)
  t.ok([...perBuiltin.values()].every((n) => n === 1), 'exactly one jump per built-in chain')
})

t.test('validation refuses anything that could break the batch', async (t) => {
  const n1 = net(1)
  const bad = (fn: () => unknown): string | undefined => {
    try { fn() } catch (err) { return err instanceof FerryError ? err.code : 'not a FerryError' }
    return undefined
  }
  t.equal(bad(() => planRules({ networks: [{ ...n1, bridge: 'br0\n-A INPUT -j ACCEPT' }], endpoints: [] })), 'INVALID_REQUEST')
  t.equal(bad(() => planRules({ networks: [{ ...n1, bridge: 'a-very-long-bridge-name' }], endpoints: [] })), 'INVALID_REQUEST')
  t.equal(bad(() => planRules({ networks: [{ ...n1, subnet: '10.0.0.0/33' }], endpoints: [] })), 'INVALID_REQUEST')
  t.equal(bad(() => planRules({ networks: [{ ...n1, id: 'x y' }], endpoints: [] })), 'INVALID_REQUEST')
  const e = (p: PortBinding): FirewallState => ({ networks: [n1], endpoints: [{ id: 'e', networkId: n1.id, address: '10.21.0.2', ports: [p] }] })
  t.equal(bad(() => planRules(e(port('tcp', '', 0, '10.21.0.2', 80)))), 'INVALID_REQUEST', 'port 0')
  t.equal(bad(() => planRules(e(port('tcp', '', 8080, '10.21.0.2', 65535, 2)))), 'INVALID_REQUEST', 'past 65535')
  t.equal(bad(() => planRules(e(port('tcp', '', 8080, '10.21.0.2', 80, 10, 5)))), 'INVALID_REQUEST', 'ranges of different length')
  t.equal(bad(() => planRules(e({ ...port('tcp', '', 8080, '10.21.0.2', 80), hostIp: '::1' }))), 'INVALID_REQUEST', 'IPv6 host IP')
  t.equal(bad(() => planRules(e({ ...port('tcp', '', 8080, '10.21.0.2', 80), proto: 'icmp' as Protocol }))), 'INVALID_REQUEST', 'protocol')
  t.equal(bad(() => planRules(e(port('tcp', '', 8080, '10.21.0.2', 80)))), undefined, 'a good one passes')
})

t.test('batches', async (t) => {
  const n1 = net(1)
  const n2 = net(2)
  const e1 = ep('e1', n1, 2, [(ip) => port('tcp', '', 8080, ip, 80), (ip) => port('udp', '127.0.0.1', 5353, ip, 53)])
  const e2 = ep('e2', n1, 3, [(ip) => port('tcp', '', 8081, ip, 80)])
  const state: FirewallState = { networks: [n1, n2], endpoints: [e1, e2] }
  const rs = planRules(state)

  t.test('a plan against itself is empty', async (t) => {
    t.equal(renderBatch(diffViews(viewOf(rs), rs)), '')
  })

  t.test('one more endpoint: only its own -A lines', async (t) => {
    const e3 = ep('e3', n2, 2, [(ip) => port('tcp', '', 9000, ip, 90)])
    const text = renderBatch(diffEndpoint(undefined, planEndpoint(e3, n2)))
    t.matchSnapshot(text)
    t.notMatch(text, /^:/m, 'no chain is declared (that would flush it)')
    t.notMatch(text, /^-D/m)
    const back = renderBatch(diffEndpoint(planEndpoint(e3, n2), undefined))
    t.equal(back.split('\n').filter((l) => l.startsWith('-D ')).length, 1, 'removal deletes its one rule')
    t.notMatch(back, /^\*(filter|raw)/m, 'and touches the nat table only')
    t.notMatch(back, /^-A/m)
  })

  t.test('changing one publication of an endpoint touches only that publication', async (t) => {
    const changed = { ...e1, ports: [e1.ports[0]!, port('udp', '127.0.0.1', 5354, e1.address, 53)] }
    const text = renderBatch(diffEndpoint(planEndpoint(e1, n1), planEndpoint(changed, n1)))
    t.same(text.split('\n').filter((l) => /^-[AD] /.test(l)).map((l) => l.slice(0, 2) + ' ' + l.split(' ')[1]), [`-D ${dnatBucket(e1.id)}`, `-A ${dnatBucket(e1.id)}`])
  })

  t.test('a kernel with a flushed ordered chain and a lost unordered rule is repaired exactly', async (t) => {
    const view = viewOf(rs)
    view.chains.filter.set(CHAIN.forward, [])
    const bucket = DNAT_BUCKETS.find((b) => (view.chains.nat.get(b) ?? []).length > 0)!
    const dnat = view.chains.nat.get(bucket)!
    const lost = dnat.shift()!
    dnat.push('-p tcp -m tcp --dport 1 -j DNAT --to-destination 10.9.9.9:1') // someone else's rule in ferry's chain
    view.chains.filter.get(CHAIN.user)!.push('-s 192.0.2.0/24 -j DROP')
    const text = renderBatch(diffViews(view, rs))
    t.match(text, `:${CHAIN.forward} - [0:0]`, 'ordered chain rewritten')
    t.notMatch(text, `:${bucket} `, 'unordered chain not flushed')
    t.notMatch(text, `:${CHAIN.user} `, 'FERRY-USER never flushed')
    t.match(text, `-A ${bucket} ${lost}`)
    t.match(text, `-D ${bucket} -p tcp -m tcp --dport 1 -j DNAT`)
  })

  t.test('stale chains and jumps of an older run are removed, duplicate jumps collapsed', async (t) => {
    const view = viewOf(rs)
    view.chains.nat.set('FERRY-OLD', ['-j RETURN'])
    view.jumps.nat.set('PREROUTING', [...view.jumps.nat.get('PREROUTING')!, '-m addrtype --dst-type LOCAL -j FERRY-DNAT', '-j FERRY-OLD'])
    const text = renderBatch(diffViews(view, rs))
    t.matchSnapshot(text)
  })

  t.test('teardown: everything goes, FERRY-USER only when empty', async (t) => {
    const view = viewOf(rs)
    const text = renderBatch(diffViews(view, emptyRuleset()))
    t.match(text, `-X ${CHAIN.user}`)
    t.matchSnapshot(text)
    view.chains.filter.get(CHAIN.user)!.push('-s 192.0.2.0/24 -j DROP')
    const kept = renderBatch(diffViews(view, emptyRuleset()))
    t.notMatch(kept, CHAIN.user + ' ', 'a FERRY-USER with rules is kept')
    t.match(kept, `-X ${CHAIN.forward}`, 'while the chain that jumped to it goes')
  })

  t.test('network-level plan is independent of the endpoints except for route_localnet', async (t) => {
    const withLocal = planBase([n1, n2], new Set([n1.bridge]))
    const without = planBase([n1, n2], new Set())
    t.same(withLocal.localnetBridges, [n1.bridge])
    t.same(without.localnetBridges, [])
    t.ok(DNAT_BUCKETS.every((b) => withLocal.tables.nat[b]!.rules.length === 0), 'no DNAT rule without an endpoint')
    t.same(withLocal.tables.nat[CHAIN.dnat]!.rules, DNAT_BUCKETS.map((b) => `-j ${b}`), 'FERRY-DNAT jumps to each bucket')
  })
})

t.test('parseSave keeps only ferry chains and jumps into them', async (t) => {
  const view = parseSave([
    '# Generated by iptables-save',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':DOCKER-USER - [0:0]',
    ':FERRY-FORWARD - [0:0]',
    ':FERRY-USER - [0:0]',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j FERRY-FORWARD',
    '-A DOCKER-USER -j RETURN',
    '-A FERRY-FORWARD -m comment --comment "ferry:user" -j FERRY-USER',
    'COMMIT',
    '*mangle',
    ':FERRY-X - [0:0]',
    'COMMIT',
    '*nat',
    '-A OUTPUT -m addrtype --dst-type LOCAL -g FERRY-DNAT',
    'COMMIT',
  ].join('\n'))
  t.same([...view.chains.filter.entries()], [['FERRY-FORWARD', ['-m comment --comment "ferry:user" -j FERRY-USER']], ['FERRY-USER', []]])
  t.same([...view.jumps.filter.entries()], [['FORWARD', ['-j FERRY-FORWARD']]])
  t.same([...view.jumps.nat.entries()], [['OUTPUT', ['-m addrtype --dst-type LOCAL -g FERRY-DNAT']]])
  t.same([...view.chains.nat.entries()], [])
})

// ---------------------------------------------------------------------------
// Both families: the same planner, family a parameter (ip6tables gets the IPv6 plan).

function dual (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return net(n, { subnet6: `fd00:${n}::/64`, gateway6: `fd00:${n}::1`, ...over })
}

function dualEp (id: string, network: NatNetwork, host: number, ports: (f: 4 | 6, ip: string) => PortBinding[]): NatEndpoint {
  const address = network.gateway!.replace(/\.1$/, `.${host}`)
  const address6 = `${network.gateway6!.replace(/1$/, '')}${host}`
  return { id: id.padEnd(64, '0'), networkId: network.id, address, address6, ports: [...ports(4, address), ...ports(6, address6)] }
}

const HOST = { 4: '192.0.2.10', 6: '2001:db8::5' } as const
const familyPorts = (f: 4 | 6, ip: string): PortBinding[] => [
  port('tcp', '', 8080, ip, 80),
  port('udp', HOST[f], 5353, ip, 53),
  port('tcp', '', 20000, ip, 20000, 100),
  port('tcp', f === 4 ? '0.0.0.0' : '::', 40000, ip, 22, 1, 5),
  port('sctp', HOST[f], 8000, ip, 80, 10),
]

t.test('golden plans, both families', async (t) => {
  const n1 = dual(1)
  const routed = dual(2, { mode6: 'routed', icc: false })
  const v4only = net(3)
  const state: FirewallState = {
    networks: [n1, routed, v4only, dual(4, { outboundAddr6: '2001:db8::9' })],
    endpoints: [dualEp('e1', n1, 2, familyPorts), dualEp('e2', routed, 2, familyPorts)],
    links: [{ id: 'l6', networkId: routed.id, parentIp: 'fd00:2::2', childIp: 'fd00:2::3', ports: [{ proto: 'tcp', port: 5432 }] }],
  }
  for (const f of [4, 6] as const) {
    const rs = planRules(state, {}, f)
    t.equal(rs.family, f)
    t.matchSnapshot(fresh(rs), `IPv${f}: nat mode, routed mode (IPv6), an IPv4-only network, an IPv6 outbound address`)
  }
  const rs6 = planRules(state, {}, 6)
  const forward = rs6.tables.filter[CHAIN.forward]!.rules.join('\n')
  t.match(forward, /! -i fy-net3 -o fy-net3 .* -j DROP/, 'an IPv4-only network\'s bridge is isolated over IPv6 too (netavark#1515)')
  t.same(rs6.tables.filter[CHAIN.routedPorts]!.rules.filter((r) => r.includes('--dport 80 ')), [
    '-d fd00:2::2/128 -o fy-net2 -p tcp -m tcp --dport 80 -m comment --comment "ferry:ep e20000000000" -j ACCEPT',
  ], 'routed: the container port opened')
  t.notMatch(rs6.tables.nat[CHAIN.postrouting]!.rules.join('\n'), /fd00:2::/, 'routed: no masquerade')
  t.notOk(planRules(state, {}, 4).tables.filter[CHAIN.routed], 'no routed chain for IPv4')
  t.same(rs6.localnetBridges, [], 'no route_localnet for IPv6')
})

/** An IPv6-only network (`--ipv4=false --ipv6`): the dual-stack one without its IPv4 side. */
function only6 (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  const d = dual(n, over)
  delete d.subnet
  delete d.gateway
  return d
}

t.test('an IPv6-only network: IPv6 as on a dual-stack network, nothing of it in the IPv4 NAT, its bridge isolated in both', async (t) => {
  const n5 = only6(5)
  const e5: NatEndpoint = { id: 'e5'.padEnd(64, '0'), networkId: n5.id, address6: 'fd00:5::2', ports: familyPorts(6, 'fd00:5::2') }
  const state: FirewallState = { networks: [n5, dual(1)], endpoints: [e5] }
  for (const f of [4, 6] as const) t.matchSnapshot(fresh(planRules(state, {}, f)), `IPv${f}: an IPv6-only network beside a dual-stack one`)
  const rs4 = planRules(state, {}, 4)
  const nat4 = Object.values(rs4.tables.nat).flatMap((c) => c.rules).join('\n')
  t.notMatch(nat4, /fy-net5|fd00:5::/, 'no IPv4 NAT rule for it: no masquerade, no hairpin, no loopback rule')
  t.match(rs4.tables.filter[CHAIN.forward]!.rules.join('\n'), /! -i fy-net5 -o fy-net5 .* -j DROP/, 'its bridge isolated over IPv4 too')
  t.same(rs4.localnetBridges, [], 'no route_localnet: nothing of it answers on 127.0.0.1')
  const rs6 = planRules(state, {}, 6)
  t.match(rs6.tables.nat[CHAIN.postrouting]!.rules.join('\n'), /-s fd00:5::\/64 ! -o fy-net5 .* -j MASQUERADE/)
  t.same(planEndpoint(e5, n5).rules.map((r) => r.family).filter((f) => f === 4), [], 'its publications are IPv6 rules only')
  t.same(planEndpoint(e5, n5).localnet, false)
  t.throws(() => planRules({ networks: [only6(6, { subnet6: undefined, gateway6: undefined })], endpoints: [] }, {}, 4), { code: 'INVALID_REQUEST', message: /neither an IPv4 nor an IPv6 subnet/ })
  t.throws(() => planRules({ networks: [n5], endpoints: [{ ...e5, address6: undefined }] }, {}, 6), { code: 'INVALID_REQUEST', message: /neither an IPv4 nor an IPv6 address/ })
})

t.test('a dual-stack endpoint: one rule set per family, applied by diffEndpoint per family', async (t) => {
  const n1 = dual(1)
  const p = planEndpoint(dualEp('e1', n1, 2, (f, ip) => [port('tcp', '', 8080, ip, 80)]), n1)
  t.same(p.rules.map((r) => [r.family, r.rule.replace(/ -m comment.*-j/, ' -j')]), [
    [4, '-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.21.0.2:80'],
    [6, '-p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:1::2]:80'],
  ])
  t.match(renderBatch(diffEndpoint(undefined, p, 6)), /\[fd00:1::2\]:80/)
  t.notMatch(renderBatch(diffEndpoint(undefined, p, 6)), /10\.21\.0\.2/)
  t.notMatch(renderBatch(diffEndpoint(undefined, p, 4)), /fd00/)
})

t.test('TCP MSS clamping: an encrypted overlay\'s bridge, one rule per family after FERRY-USER, none for other networks', async (t) => {
  const overlay = net(7, { bridge: 'fyo-0123456789a', clampMss: true, subnet6: 'fd00:7::/64', gateway6: 'fd00:7::1' })
  const plain = net(8)
  const want = `-o fyo-0123456789a -p tcp -m tcp --tcp-flags SYN,RST SYN -m comment --comment "ferry:mss ${overlay.id.slice(0, 12)}" -j TCPMSS --clamp-mss-to-pmtu`
  for (const family of [4, 6] as const) {
    const rules = planBase([plain, overlay], new Set(), {}, [], family).tables.filter[CHAIN.forward]!.rules
    t.equal(rules.filter((r) => r.includes('TCPMSS')).length, 1, `IPv${family}: one clamp`)
    t.equal(rules.indexOf(want), 1, `IPv${family}: right after the FERRY-USER jump, before any verdict`)
    t.notOk(rules.some((r) => r.includes('TCPMSS') && r.includes('fy-net8')), `IPv${family}: not on a plain network`)
  }
  // An IPv4-only encrypted overlay still clamps in ip6tables' FORWARD: the rule names the bridge, not addresses.
  t.ok(planBase([net(7, { bridge: 'fyo-0123456789a', clampMss: true })], new Set(), {}, [], 6).tables.filter[CHAIN.forward]!.rules.includes(want))
})
