/**
 * `ferry trace`'s explanation (src/nat/trace.ts) over a matrix of cases in both
 * families: allowed, ICC off, another network, internal, a port published on
 * loopback only reached from another host, a published port, the way out; the
 * verdict and the rule (as nft prints it) and option that decided. That a real
 * packet does what the explanation says is test/e2e/trace.test.ts's part.
 */
import t from 'tap'
import type { PortBinding } from '../../src/model/types.js'
import { planTable } from '../../src/nat/nft-plan.js'
import { readsEveryRule, tracePacket, type TracePacket, type TraceResult } from '../../src/nat/trace.js'
import type { FirewallState, NatEndpoint, NatNetwork } from '../../src/nat/types.js'

function net (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return {
    id: `${n}`.repeat(64), bridge: `fy-net${n}`, subnet: `10.2${n}.0.0/24`, gateway: `10.2${n}.0.1`,
    subnet6: `fd00:${n}::/64`, gateway6: `fd00:${n}::1`, icc: true, masquerade: true, internal: false, ...over,
  }
}

function bind (containerIp: string, hostIp: string, hostPort: number, containerPort: number): PortBinding {
  return { proto: 'tcp', hostIp, hostPort, hostPortEnd: hostPort, containerIp, containerPort, containerPortEnd: containerPort }
}

function ep (name: string, network: NatNetwork, host: number, ports: (a4: string, a6: string) => PortBinding[] = () => []): NatEndpoint {
  const address = network.gateway!.replace(/\.1$/, `.${host}`)
  const address6 = network.gateway6!.replace(/::1$/, `::${host}`)
  return { id: name.padEnd(64, '0'), networkId: network.id, address, address6, ports: ports(address, address6) }
}

const n1 = net(1)
const n2 = net(2, { icc: false })
const n3 = net(3, { internal: true })
const A1 = ep('a1', n1, 2)
const B1 = ep('b1', n1, 3, (a4, a6) => [bind(a4, '', 8080, 80), bind(a6, '', 8080, 80), bind(a4, '127.0.0.1', 8443, 443)])
const A2 = ep('a2', n2, 2)
const B2 = ep('b2', n2, 3)
const A3 = ep('a3', n3, 2)
const state: FirewallState = { networks: [n1, n2, n3], endpoints: [A1, B1, A2, B2, A3], links: [] }
const HOST = { 4: '192.0.2.1', 6: '2001:db8::1' }
const REMOTE = { 4: '192.0.2.99', 6: '2001:db8::99' }
const OUTSIDE = { 4: '198.51.100.1', 6: '2001:db8:ffff::1' }
const names = { endpoints: new Map([A1, B1, A2, B2, A3].map((e) => [e.id, e.id.slice(0, 2)])), networks: new Map([[n1.id, 'one'], [n2.id, 'two'], [n3.id, 'three']]) }

function addr (e: NatEndpoint, f: 4 | 6): string {
  return f === 4 ? e.address! : e.address6!
}

function trace (packet: Partial<TracePacket> & Pick<TracePacket, 'src' | 'dst'>): TraceResult {
  return tracePacket({ state, hostAddrs: [HOST[4], HOST[6]], uplink: 'eth0', names }, { proto: 'tcp', port: 80, ingress: 'container', ...packet })
}

t.test('the interpreter reads every rule ferry plans', async (t) => {
  t.same(readsEveryRule(planTable(state).table), [])
  t.same(readsEveryRule(planTable(state, { hostAddrsLocalnet: false }).table), [])
})

for (const f of [4, 6] as const) {
  t.test(`IPv${f}`, async (t) => {
    t.test('allowed: inside an ICC network', async (t) => {
      const r = trace({ src: addr(A1, f), dst: addr(B1, f) })
      t.equal(r.verdict, 'delivered')
      t.equal(r.family, f)
      t.match(r.hops.find((h) => h.where === 'filter-forward'), { verdict: 'accept', rule: 'iifname . oifname vmap @icc', note: /ICC is on/ })
      t.match(r.hops.at(-1), { where: 'deliver', note: /container b1/ })
      t.ok(r.hops.some((h) => h.where === 'filter-forward → user' && h.verdict === 'unknown'), 'the admin chain is named, its verdict unknown')
      t.ok(r.hops.some((h) => h.note.includes('bridged inside fy-net1')))
    })
    t.test('ICC off', async (t) => {
      const r = trace({ src: addr(A2, f), dst: addr(B2, f) })
      t.equal(r.verdict, 'dropped')
      t.match(r.decidedBy, { where: 'filter-forward', rule: 'iifname . oifname vmap @icc', note: /enable_icc=false/ })
    })
    t.test('another network: isolation', async (t) => {
      const r = trace({ src: addr(A1, f), dst: addr(A2, f) })
      t.equal(r.verdict, 'dropped')
      t.match(r.decidedBy, { rule: 'oifname @external drop', note: /isolation between networks: network two .* network one/ })
    })
    t.test('internal: nothing leaves, nothing enters', async (t) => {
      const out = trace({ src: addr(A3, f), dst: OUTSIDE[f], port: 443 })
      t.match(out.decidedBy, { where: 'container route', note: /three is internal .* no default route/ })
      t.equal(out.decidedBy?.rule, undefined, 'no rule: the packet never reaches the host')
      const into = trace({ src: addr(A1, f), dst: addr(A3, f) })
      t.match(into.decidedBy, { rule: 'oifname @internal drop', note: /three is internal/ })
      const ping = trace({ src: addr(A3, f), dst: OUTSIDE[f], proto: 'icmp', port: undefined })
      t.equal(ping.verdict, 'dropped')
    })
    t.test('a published port from another host: DNAT, then accepted', async (t) => {
      const r = trace({ src: REMOTE[f], dst: HOST[f], port: 8080, ingress: 'remote' })
      t.equal(r.verdict, 'delivered')
      t.match(r.hops.find((h) => h.verdict === 'nat'), { where: 'nat-prerouting → publish', note: new RegExp(`DNAT.*→ ${addr(B1, f)}:80`) })
      t.match(r.hops.find((h) => h.where === 'filter-forward'), { rule: 'oifname @external ct status dnat accept' })
    })
    t.test('a container address from another host, unpublished: isolation', async (t) => {
      const r = trace({ src: REMOTE[f], dst: addr(B1, f), port: 22, ingress: 'remote' })
      t.match(r.decidedBy, { rule: 'oifname @external drop', note: /outside ferry's bridges/ })
    })
    t.test('the way out is masqueraded', async (t) => {
      const r = trace({ src: addr(A1, f), dst: OUTSIDE[f], port: 443 })
      t.equal(r.verdict, 'delivered')
      t.match(r.hops.find((h) => h.where === 'nat-postrouting'), { verdict: 'nat', note: /masquerade/ })
      t.match(r.hops.find((h) => h.where === 'route'), { note: /out through eth0/ })
    })
    t.test('the host-side rule of an internal network (a container with a route of its own)', async (t) => {
      const r = tracePacket({ state, hostAddrs: [HOST[4], HOST[6]], names }, { src: HOST[f], dst: addr(A3, f), proto: 'tcp', port: 80, ingress: 'host' })
      t.equal(r.verdict, 'delivered', 'the host itself reaches it')
      const wide = net(3, { internal: true, subnet: '10.0.0.0/8', subnet6: 'fd00::/16' })
      const e = { ...A3, networkId: wide.id }
      const inside = tracePacket({ state: { networks: [n1, wide], endpoints: [A1, e] }, hostAddrs: [] }, { src: addr(e, f), dst: addr(A1, f), proto: 'tcp', port: 80, ingress: 'container' })
      t.match(inside.decidedBy, { where: 'filter-forward', rule: 'iifname @internal drop' })
    })
    t.test('a hairpin: a container to its own published port', async (t) => {
      const r = trace({ src: addr(B1, f), dst: HOST[f], port: 8080 })
      t.equal(r.verdict, 'delivered')
      t.match(r.hops.find((h) => h.where === 'nat-postrouting'), { note: /hairpin/ })
    })
  })
}

t.test('loopback-only publication (IPv4: [::1] is never published)', async (t) => {
  const fromRemote = trace({ src: REMOTE[4], dst: HOST[4], port: 8443, ingress: 'remote' })
  t.equal(fromRemote.verdict, 'refused')
  t.match(fromRemote.decidedBy, { where: 'route', note: /127\.0\.0\.1 only/ })
  const direct = trace({ src: REMOTE[4], dst: B1.address!, port: 443, ingress: 'remote' })
  t.equal(direct.verdict, 'dropped')
  t.match(direct.decidedBy, { where: 'raw-prerouting', rule: /@lo_only/, note: /127\.0\.0\.1 only/ })
  const fromHost = trace({ src: '127.0.0.1', dst: '127.0.0.1', port: 8443, ingress: 'host' })
  t.equal(fromHost.verdict, 'delivered')
  t.match(fromHost.hops.find((h) => h.where === 'nat-output → publish'), { verdict: 'nat' })
  t.match(fromHost.hops.find((h) => h.where === 'nat-postrouting'), { note: /loopback source/ })
  const own = trace({ src: A1.address!, dst: B1.address!, port: 443 })
  t.equal(own.verdict, 'delivered', 'the container\'s own network still reaches the port')
})

t.test('the host itself reaches its containers', async (t) => {
  const r = trace({ src: HOST[4], dst: A3.address!, proto: 'icmp', port: undefined, ingress: 'host' })
  t.equal(r.verdict, 'delivered')
  t.notOk(r.hops.some((h) => h.where.startsWith('filter-forward')), 'no forward filter on the output path')
})

t.test('SNAT to a chosen host address', async (t) => {
  const n4 = net(4, { outboundAddr: '192.0.2.1' })
  const e = ep('a4', n4, 2)
  const r = tracePacket({ state: { networks: [n4], endpoints: [e] }, hostAddrs: [HOST[4]] }, { src: e.address!, dst: OUTSIDE[4], proto: 'udp', port: 53, ingress: 'container' })
  t.match(r.hops.find((h) => h.where === 'nat-postrouting'), { verdict: 'nat', note: /SNAT to 192\.0\.2\.1/ })
})

t.test('links on an ICC-off network', async (t) => {
  const r = tracePacket({
    state: { ...state, links: [{ id: 'l', networkId: n2.id, parentIp: A2.address!, childIp: B2.address!, ports: [{ proto: 'tcp', port: 5432 }] }] },
    hostAddrs: [HOST[4]],
  }, { src: A2.address!, dst: B2.address!, proto: 'tcp', port: 5432, ingress: 'container' })
  t.equal(r.verdict, 'delivered')
  t.match(r.hops.find((h) => h.where === 'filter-forward'), { note: /--link/ })
})

t.test('an overlay destination not on this host goes into the tunnel', async (t) => {
  const r = tracePacket({ state, hostAddrs: [], names: { overlays: new Set([n1.id]) } }, { src: A1.address!, dst: '10.21.0.77', proto: 'tcp', port: 80, ingress: 'container' })
  t.equal(r.verdict, 'delivered')
  t.match(r.hops.at(-1), { where: 'deliver', note: /VXLAN tunnel/ })
})

t.test('packets that cannot exist are refused with a sentence', async (t) => {
  t.throws(() => trace({ src: A1.address!, dst: B1.address6! }), /different address families/)
  t.throws(() => trace({ src: A1.address!, dst: B1.address!, port: 0 }), /port from 1 to 65535/)
  t.throws(() => trace({ src: A1.address!, dst: B1.address!, port: 70000 }), /port from 1 to 65535/)
  t.throws(() => trace({ src: A1.address!, dst: B1.address!, proto: 'icmp', port: 1 }), /ICMP echo has no port/)
  t.throws(() => trace({ src: 'nope', dst: B1.address! }), /not an IP address/)
  t.throws(() => trace({ src: '10.21.0.99', dst: B1.address! }), /no container .* has the address 10\.21\.0\.99/)
  t.throws(() => trace({ src: REMOTE[4], dst: B1.address!, ingress: 'host' }), /not an address of this host/)
  t.throws(() => trace({ src: HOST[4], dst: B1.address!, ingress: 'remote' }), /on this host, not another one/)
})
