/**
 * Shared by the kernel tests of both firewall drivers (test/kernel/iptables.test.ts,
 * test/kernel/nftables.test.ts): test networks, endpoints and publications, and a
 * traffic scenario with containers as namespaces on bridges of a host namespace
 * and an "outside" namespace on an uplink.
 */
import { spawn } from 'node:child_process'
import type { Test } from 'tap'
import { link, netns, nsExec, sh, type TeardownHost } from './netns.js'
import type { NsNode } from './nsnode.js'
import type { PortBinding, Protocol } from '../../src/model/types.js'
import type { FirewallDriver, FirewallState, NatEndpoint, NatNetwork } from '../../src/nat/types.js'
import { until } from './until.js'

export function net (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return { id: `net${n}`.padEnd(64, 'a'), bridge: `fy-n${n}`, subnet: `10.3${n}.0.0/24`, gateway: `10.3${n}.0.1`, icc: true, masquerade: true, internal: false, ...over }
}

export function bind (proto: Protocol, hostIp: string, hostPort: number, containerIp: string, containerPort: number, len = 1): PortBinding {
  return { proto, hostIp, hostPort, hostPortEnd: hostPort + len - 1, containerIp, containerPort, containerPortEnd: containerPort + len - 1 }
}

export function endpoint (id: string, n: NatNetwork, host: number, ports: Array<(ip: string) => PortBinding>): NatEndpoint {
  const address = n.gateway.replace(/\.1$/, `.${host}`)
  return { id: id.padEnd(64, '0'), networkId: n.id, address, ports: ports.map((p) => p(address)) }
}

/** The option matrix both kernel tests start from: a plain network, one with ICC and masquerade off, an internal one. */
export function matrixNetworks (): [NatNetwork, NatNetwork, NatNetwork] {
  return [net(1), net(2, { icc: false, masquerade: false }), net(3, { internal: true })]
}

/**
 * Add the matrix's networks through `d`, then two endpoints publishing every kind of
 * binding (any address, one host address, sctp, 127.0.0.1 only, a `rangeLen`-port
 * range, a UDP range); returns the state the driver now holds.
 */
export async function applyMatrix (d: NsNode<FirewallDriver>, nets: [NatNetwork, NatNetwork, NatNetwork], rangeLen: number):
Promise<{ e1: NatEndpoint, e3: NatEndpoint, state: FirewallState }> {
  const [n1, , n3] = nets
  for (const n of nets) await d.call('addNetwork', [n])
  const e1 = endpoint('e1', n1, 2, [
    (ip) => bind('tcp', '', 8080, ip, 80),
    (ip) => bind('udp', '192.0.2.10', 5353, ip, 53),
    (ip) => bind('sctp', '', 9000, ip, 9000),
    (ip) => bind('tcp', '127.0.0.1', 8443, ip, 443),
    (ip) => bind('tcp', '', 20000, ip, 20000, rangeLen),
    (ip) => bind('udp', '', 30000, ip, 100, 10),
  ])
  const e3 = endpoint('e3', n3, 2, [(ip) => bind('tcp', '', 8090, ip, 80)])
  await d.call('setEndpoint', [e1])
  await d.call('setEndpoint', [e3])
  return { e1, e3, state: { networks: [...nets], endpoints: [e1, e3] } }
}

/** Bridges (optionally with an address) in `ns`, up. */
export function addBridges (ns: string, bridges: Array<{ name: string, cidr?: string }>): void {
  for (const b of bridges) {
    sh(['ip', '-n', ns, 'link', 'add', b.name, 'type', 'bridge'])
    if (b.cidr !== undefined) sh(['ip', '-n', ns, 'addr', 'add', b.cidr, 'dev', b.name])
    sh(['ip', '-n', ns, 'link', 'set', b.name, 'up'])
  }
}

/** A TCP server in `ns` that answers every connection with `hello <name>` (killed with the namespace). */
export function serve (ns: string, port: number, name: string): void {
  const code = `require('net').createServer((s) => s.end('hello ${name} ' + s.remoteAddress.replace(/^::ffff:/, '') + '\\n')).listen(${port}, () => console.log('up'))`
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], detached: false })
  child.unref()
}

export async function waitListening (ns: string, port: number): Promise<void> {
  await until(`something to listen on ${port} in ${ns}`, () => nsExec(ns, ['ss', '-Htln', `sport = :${port}`]).trim() !== '', { timeoutMs: 2500, everyMs: 50 })
}

/** Connect from `ns`; the server's greeting without the peer address, or '' when the connection fails. */
export function connect (ns: string, ip: string, port: number): string {
  return greeting(ns, ip, port).replace(/ \S+$/, '')
}

/** Connect from `ns`; the server's whole greeting (`hello <name> <peer address>`), or ''. */
export function greeting (ns: string, ip: string, port: number): string {
  return nsExec(ns, ['nc', '-w', '2', ip, String(port)], { allowFailure: true, timeoutMs: 10_000, input: '' }).trim()
}

export function container (t: TeardownHost, host: string, bridge: string, cidr: string, gateway: string, veth: string): string {
  const c = netns(t, 'fyc')
  sh(['ip', '-n', host, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c])
  sh(['ip', '-n', host, 'link', 'set', veth, 'master', bridge, 'up'])
  // The bridge driver's job in ferry: without hairpin a container cannot reach itself through a published port.
  sh(['bridge', '-n', host, 'link', 'set', 'dev', veth, 'hairpin', 'on'])
  sh(['ip', '-n', c, 'addr', 'add', cidr, 'dev', 'eth0'])
  sh(['ip', '-n', c, 'link', 'set', 'eth0', 'up'])
  sh(['ip', '-n', c, 'route', 'add', 'default', 'via', gateway])
  return c
}

export interface TrafficOptions {
  /** The host namespace, with forwarding on and whatever firewall the scenario needs. */
  hostNs: (t: Test, bridges: Array<{ name: string, cidr?: string }>) => string
  driver: (t: Test, ns: string) => Promise<NsNode<FirewallDriver>>
  /** True when the host drops forwarded traffic before ferry runs (iptables FORWARD policy DROP). */
  blocksBefore: boolean
  /** Fails when anything of ferry is left in the host's firewall. */
  nothingLeft: (t: Test, ns: string) => void
}

/** Every path through published ports and isolation, with real connections. */
export async function trafficScenario (t: Test, o: TrafficOptions): Promise<void> {
  const n1 = net(1)
  const n2 = net(2, { outboundAddr: '198.51.100.9' })
  const host = o.hostNs(t, [{ name: n1.bridge, cidr: '10.31.0.1/24' }, { name: n2.bridge, cidr: '10.32.0.1/24' }])
  const outside = netns(t, 'fyo')
  link({ ns: host, ifname: 'uplink', cidr: '198.51.100.1/24' }, { ns: outside, ifname: 'eth0', cidr: '198.51.100.2/24' })
  sh(['ip', '-n', host, 'addr', 'add', '198.51.100.9/24', 'dev', 'uplink'])
  const c1 = container(t, host, n1.bridge, '10.31.0.2/24', '10.31.0.1', 'fyh1')
  const c2 = container(t, host, n1.bridge, '10.31.0.3/24', '10.31.0.1', 'fyh2')
  const c3 = container(t, host, n2.bridge, '10.32.0.2/24', '10.32.0.1', 'fyh3')
  serve(c1, 80, 'c1')
  serve(c1, 81, 'c1-81')
  serve(outside, 7000, 'outside')
  await waitListening(c1, 80)
  await waitListening(c1, 81)
  await waitListening(outside, 7000)

  if (o.blocksBefore) t.equal(connect(c2, '10.31.0.2', 80), '', 'before ferry: FORWARD DROP blocks containers on one bridge')

  const d = await o.driver(t, host)
  await d.call('addNetwork', [n1])
  await d.call('addNetwork', [n2])
  await d.call('setEndpoint', [{ id: 'c1'.padEnd(64, '0'), networkId: n1.id, address: '10.31.0.2', ports: [bind('tcp', '', 8080, '10.31.0.2', 80), bind('tcp', '127.0.0.1', 8081, '10.31.0.2', 81)] }])

  t.equal(connect(c2, '10.31.0.2', 80), 'hello c1', 'ICC on one bridge')
  t.equal(connect(c3, '10.31.0.2', 80), '', 'isolation: another ferry network cannot reach c1 directly')
  t.equal(connect(outside, '198.51.100.1', 8080), 'hello c1', 'published port from outside')
  t.equal(connect(host, '127.0.0.1', 8080), 'hello c1', 'localhost publishing from the host')
  t.equal(connect(host, '198.51.100.1', 8080), 'hello c1', 'host address from the host')
  t.equal(connect(c1, '10.31.0.1', 8080), 'hello c1', 'hairpin: the container through its own published port')
  t.equal(connect(c2, '198.51.100.1', 8080), 'hello c1', 'a neighbour through the published port')
  t.equal(connect(c3, '10.32.0.1', 8080), 'hello c1', 'another network through the published port')
  t.equal(connect(host, '127.0.0.1', 8081), 'hello c1-81', '127.0.0.1-published port from the host')
  t.equal(connect(outside, '198.51.100.1', 8081), '', '127.0.0.1-published port not on the uplink address')
  t.equal(greeting(c1, '198.51.100.2', 7000), 'hello outside 198.51.100.1', 'the way out: masqueraded to the uplink address')
  t.equal(greeting(c3, '198.51.100.2', 7000), 'hello outside 198.51.100.9', 'host_ipv4: SNAT to the chosen outbound address')
  sh(['ip', '-n', outside, 'route', 'add', '10.31.0.0/24', 'via', '198.51.100.1'])
  t.equal(connect(outside, '10.31.0.2', 81), '', '127.0.0.1-published port not reachable by routing to the container (moby#45610)')
  t.equal(connect(outside, '10.31.0.2', 80), '', 'unpublished direct access from outside is dropped')

  await d.call('teardown')
  t.equal(connect(outside, '198.51.100.1', 8080), '', 'after teardown: nothing published')
  o.nothingLeft(t, host)
}

/** Stale UDP conntrack entries are flushed when a port is published and when it is removed. */
export async function udpConntrackScenario (
  t: Test, hostNs: TrafficOptions['hostNs'], driver: TrafficOptions['driver'],
): Promise<void> {
  const n1 = net(1)
  const ns = hostNs(t, [{ name: n1.bridge, cidr: '10.31.0.1/24' }])
  const d = await driver(t, ns)
  await d.call('addNetwork', [n1])
  // A client hammers the port before it is published: its flow points at the host.
  nsExec(ns, ['sh', '-c', 'echo x | nc -u -w1 -p 41000 127.0.0.1 5353'], { allowFailure: true })
  t.match(nsExec(ns, ['conntrack', '-L', '-p', 'udp']), /dport=5353/, 'a flow to the unpublished port')
  const e = endpoint('u1', n1, 2, [(ip) => bind('udp', '', 5353, ip, 53)])
  await d.call('setEndpoint', [e])
  t.notMatch(nsExec(ns, ['conntrack', '-L', '-p', 'udp']), /sport=41000 dport=5353/, 'gone once the port is published')
  nsExec(ns, ['sh', '-c', 'echo x | nc -u -w1 -p 41001 127.0.0.1 5353'], { allowFailure: true })
  t.match(nsExec(ns, ['conntrack', '-L', '-p', 'udp']), /sport=41001 dport=5353.*src=10\.31\.0\.2/, 'new flow DNAT\'d to the container')
  await d.call('removeEndpoint', [e.id])
  t.notMatch(nsExec(ns, ['conntrack', '-L', '-p', 'udp']), /src=10\.31\.0\.2/, 'DNAT\'d flow flushed on removal')
  await d.call('teardown')
}

// ---------------------------------------------------------------------------
// End-to-end suites run once per backend: what each backend shows of ferry.

export const BACKENDS = ['iptables', 'nftables'] as const
export type Backend = typeof BACKENDS[number]

/** Everything of ferry's in `ns`'s firewall, both tools (one line each; '' when nothing). */
export function ferryTraces (ns: string): string {
  const ipt = nsExec(ns, ['iptables-save'], { allowFailure: true }).split('\n').filter((l) => /ferry/i.test(l))
  const nft = nsExec(ns, ['nft', 'list', 'ruleset'], { allowFailure: true }).split('\n').filter((l) => /ferry/i.test(l))
  return [...ipt, ...nft].join('\n')
}

/** The DNAT maps of table inet ferry (src/nat/nft-plan.ts). */
const PORT_MAPS = ['any_port', 'any_range', 'any_keep', 'host_port', 'host_range', 'host_keep']

/**
 * How many DNAT rules (iptables) or map elements (nftables) publish host port
 * `port` (a number, or a range written `a:b`).
 */
export function publishedCount (backend: Backend, ns: string, port: number | string): number {
  if (backend === 'iptables') {
    return nsExec(ns, ['iptables-save', '-t', 'nat']).split('\n').filter((l) => l.includes('DNAT') && l.includes(`--dport ${port} `)).length
  }
  const key = String(port).replace(':', '-')
  const text = nsExec(ns, ['nft', 'list', 'table', 'inet', 'ferry'], { allowFailure: true })
  const maps: readonly string[] = PORT_MAPS
  let n = 0
  let inMap = false
  for (const line of text.split('\n')) {
    const head = /^\s*map (\S+) \{/.exec(line)
    if (head !== null) inMap = maps.includes(head[1]!)
    if (!inMap) continue
    for (const m of line.matchAll(/(?:^|[{,]) *([^,{}]*? \. (\d+(?:-\d+)?) : [^,{}]*)/g)) if (m[2] === key) n++
  }
  return n
}

/** Take every publication away, as someone else's firewall tool might (not caught by the nftables watcher: elements only). */
export function flushPublications (backend: Backend, ns: string): void {
  if (backend === 'iptables') nsExec(ns, ['iptables', '-t', 'nat', '-F', 'FERRY-DNAT'])
  // One transaction, as quick as iptables' one -F: the agent's periodic reconcile (1 s in the suites) races with the check that follows.
  else nsExec(ns, ['nft', '-f', '-'], { input: PORT_MAPS.map((m) => `flush map inet ferry ${m}\n`).join('') })
}
