/**
 * The real IptablesDriver (dist/nat/iptables.js, build first with `npx tsc -p .`)
 * against the kernel, each subtest in a fresh namespace whose FORWARD policy is
 * DROP (as the engine leaves it), through the nsnode harness. Checked against
 * `iptables-save`, sysctl and conntrack output in that namespace, plus real
 * traffic between namespaces. Prints the timings of large publications.
 */
import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { link, netns, nsExec, sh } from '../harness/netns.js'
import { REPO_ROOT, nsNode, type NsNode } from '../harness/nsnode.js'
import type { IptablesDriver } from '../../src/nat/iptables.js'
import { DNAT_BUCKETS, dnatBucket, planRules, type Ruleset } from '../../src/nat/plan.js'
import { diffViews, parseSave, renderBatch } from '../../src/nat/restore.js'
import type { PortBinding, Protocol } from '../../src/model/types.js'
import type { FirewallState, NatEndpoint, NatNetwork } from '../../src/nat/types.js'

type Driver = NsNode<IptablesDriver>

if (!existsSync(`${REPO_ROOT}dist/nat/iptables.js`)) {
  t.fail('dist/nat/iptables.js is missing: run `npx tsc -p .` (npm test builds first)')
}

const save = (ns: string): string => nsExec(ns, ['iptables-save'])
const ipt = (ns: string, args: string[]): string => nsExec(ns, ['iptables', '-w', ...args])
const sysctl = (ns: string, key: string): string => nsExec(ns, ['sysctl', '-n', key]).trim()

/** Every line of iptables-save that is ferry's, sorted (chain declarations, rules, jumps). */
function ferryLines (text: string): string[] {
  return text.split('\n').filter((l) => /^:FERRY-|^-A FERRY-|-j FERRY-/.test(l)).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).sort()
}

/** ferryLines without the administrator's rules in FERRY-USER. */
function ferryOwnLines (text: string): string[] {
  return ferryLines(text).filter((l) => !l.startsWith('-A FERRY-USER '))
}

/** The same lines as a fresh host gets them from a plan. */
function plannedLines (rs: Ruleset): string[] {
  return renderBatch(diffViews(parseSave(''), rs)).split('\n')
    .filter((l) => l.startsWith(':') || l.startsWith('-A ') || l.startsWith('-I '))
    .map((l) => l.replace(/^-I (\S+) 1 /, '-A $1 ').replace(/ - \[0:0\]$/, ' -'))
    .sort()
}

function net (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return { id: `net${n}`.padEnd(64, 'a'), bridge: `fy-n${n}`, subnet: `10.3${n}.0.0/24`, gateway: `10.3${n}.0.1`, icc: true, masquerade: true, internal: false, ...over }
}

function bind (proto: Protocol, hostIp: string, hostPort: number, containerIp: string, containerPort: number, len = 1): PortBinding {
  return { proto, hostIp, hostPort, hostPortEnd: hostPort + len - 1, containerIp, containerPort, containerPortEnd: containerPort + len - 1 }
}

function endpoint (id: string, n: NatNetwork, host: number, ports: Array<(ip: string) => PortBinding>): NatEndpoint {
  const address = n.gateway.replace(/\.1$/, `.${host}`)
  return { id: id.padEnd(64, '0'), networkId: n.id, address, ports: ports.map((p) => p(address)) }
}

/** A namespace like the agent's: FORWARD policy DROP, forwarding on, the bridges present. */
function hostNs (t: Test, bridges: Array<{ name: string, cidr?: string }>): string {
  const ns = netns(t, 'fyn')
  ipt(ns, ['-P', 'FORWARD', 'DROP'])
  nsExec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  for (const b of bridges) {
    sh(['ip', '-n', ns, 'link', 'add', b.name, 'type', 'bridge'])
    if (b.cidr !== undefined) sh(['ip', '-n', ns, 'addr', 'add', b.cidr, 'dev', b.name])
    sh(['ip', '-n', ns, 'link', 'set', b.name, 'up'])
  }
  return ns
}

async function driver (t: Test, ns: string): Promise<Driver> {
  return nsNode<IptablesDriver>(t, ns, { module: 'dist/nat/iptables.js', factory: 'openIptablesDriver' })
}

async function expectPlan (t: Test, ns: string, state: FirewallState, msg: string): Promise<void> {
  const text = save(ns)
  t.same(ferryOwnLines(text), plannedLines(planRules(state)), `${msg}: iptables-save holds exactly the plan`)
  const view = parseSave(text)
  t.same(view.chains.filter.get('FERRY-FORWARD'), planRules(state).tables.filter['FERRY-FORWARD']!.rules, `${msg}: FERRY-FORWARD in order`)
  const forward = text.split('\n').filter((l) => l.startsWith('-A FORWARD '))
  t.equal(forward[0], '-A FORWARD -j FERRY-FORWARD', `${msg}: FERRY-FORWARD is the first FORWARD rule`)
}

t.test('networks and ports: plan round trip, incremental changes, reconcile, teardown', async (t) => {
  const n1 = net(1)
  const n2 = net(2, { icc: false, masquerade: false })
  const n3 = net(3, { internal: true })
  const ns = hostNs(t, [{ name: n1.bridge }, { name: n2.bridge }, { name: n3.bridge }])
  ipt(ns, ['-A', 'FORWARD', '-j', 'ACCEPT', '-m', 'comment', '--comment', 'someone else'])
  const d = await driver(t, ns)

  await d.call('addNetwork', [n1])
  await d.call('addNetwork', [n2])
  await d.call('addNetwork', [n3])
  const e1 = endpoint('e1', n1, 2, [
    (ip) => bind('tcp', '', 8080, ip, 80),
    (ip) => bind('udp', '192.0.2.10', 5353, ip, 53),
    (ip) => bind('sctp', '', 9000, ip, 9000),
    (ip) => bind('tcp', '127.0.0.1', 8443, ip, 443),
    (ip) => bind('tcp', '', 20000, ip, 20000, 100),
    (ip) => ({ ...bind('udp', '', 30000, ip, 100, 10) }),
  ])
  const e3 = endpoint('e3', n3, 2, [(ip) => bind('tcp', '', 8090, ip, 80)])
  await d.call('setEndpoint', [e1])
  await d.call('setEndpoint', [e3])
  let state: FirewallState = { networks: [n1, n2, n3], endpoints: [e1, e3] }
  await expectPlan(t, ns, state, 'after setup')
  t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '1', 'route_localnet on the bridge with loopback publications')
  t.equal(sysctl(ns, `net.ipv4.conf.${n2.bridge}.route_localnet`), '0', 'and not elsewhere')
  t.match(save(ns), /-A FORWARD -j ACCEPT -m comment --comment "someone else"|-A FORWARD -m comment --comment "someone else" -j ACCEPT/, 'other rules untouched')

  t.test('FERRY-USER is the administrator\'s', async (t) => {
    ipt(ns, ['-A', 'FERRY-USER', '-s', '192.0.2.0/24', '-j', 'DROP'])
    await d.call('addNetwork', [net(4)])
    await d.call('removeNetwork', [net(4).id])
    t.match(save(ns), '-A FERRY-USER -s 192.0.2.0/24 -j DROP', 'its rule survives changes')
    t.equal(await d.call('reconcile', [state]), false, 'and is not a difference for reconcile')
    t.match(save(ns), '-A FERRY-USER -s 192.0.2.0/24 -j DROP', 'nor removed by it')
  })

  t.test('incremental: one endpoint adds and removes only its own rules', async (t) => {
    const before = ferryLines(save(ns))
    const e2 = endpoint('e2', n2, 2, [(ip) => bind('udp', '192.0.2.10', 8081, ip, 81)])
    await d.call('setEndpoint', [e2])
    const stats = await d.call('stats')
    t.equal(stats.reconciled, false, 'no reconcile needed')
    t.equal(stats.lines, 1, 'one line: its DNAT (accept and hairpin are per network)')
    const during = ferryLines(save(ns))
    const added = during.filter((l) => !before.includes(l))
    t.equal(added.length, 1)
    t.ok(added.every((l) => l.includes('ferry:ep e2')), 'all of them e2\'s')
    t.ok(before.every((l) => during.includes(l)), 'nothing else changed')
    await d.call('removeEndpoint', [e2.id])
    t.same(ferryLines(save(ns)), before, 'removal restores the previous rules')
  })

  t.test('reconcile repairs flushed chains, lost jumps and stale chains', async (t) => {
    ipt(ns, ['-t', 'nat', '-F', 'FERRY-DNAT'])
    ipt(ns, ['-F', 'FERRY-FORWARD'])
    ipt(ns, ['-D', 'FORWARD', '-j', 'FERRY-FORWARD'])
    ipt(ns, ['-t', 'raw', '-D', 'PREROUTING', '-j', 'FERRY-RAW'])
    ipt(ns, ['-t', 'nat', '-N', 'FERRY-STALE'])
    ipt(ns, ['-t', 'nat', '-A', 'FERRY-STALE', '-j', 'RETURN'])
    ipt(ns, ['-t', 'nat', '-A', 'PREROUTING', '-j', 'FERRY-STALE'])
    ipt(ns, ['-t', 'nat', '-I', 'POSTROUTING', '-j', 'FERRY-POSTROUTING'])
    nsExec(ns, ['sysctl', '-qw', `net.ipv4.conf.${n1.bridge}.route_localnet=0`])
    t.equal(await d.call('reconcile', [state]), true, 'repaired')
    await expectPlan(t, ns, state, 'after reconcile')
    t.notMatch(save(ns), 'FERRY-STALE')
    t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '1', 'route_localnet restored')
    t.match(save(ns), '-A FERRY-USER -s 192.0.2.0/24 -j DROP', 'FERRY-USER kept')
    t.equal(await d.call('reconcile', [state]), false, 'a second reconcile finds nothing')
  })

  t.test('an incremental change on a tampered chain falls back to reconcile', async (t) => {
    ipt(ns, ['-t', 'nat', '-F', dnatBucket(e1.id)])
    const e1b = { ...e1, ports: e1.ports.slice(1) }
    await d.call('setEndpoint', [e1b])
    t.equal((await d.call('stats')).reconciled, true, 'the -D failed, reconcile took over')
    state = { networks: [n1, n2, n3], endpoints: [e1b, e3] }
    await expectPlan(t, ns, state, 'after fallback')
  })

  t.test('removing the last loopback publication resets route_localnet', async (t) => {
    const only = { ...e1, ports: [bind('tcp', '192.0.2.10', 8080, e1.address, 80)] }
    await d.call('setEndpoint', [only])
    t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '0')
    state = { networks: [n1, n2, n3], endpoints: [only, e3] }
    await expectPlan(t, ns, state, 'specific host IP only')
    // The guard stays (one per network that can publish): the sysctl is what toggles.
    t.match(save(ns), `-A FERRY-INPUT -d 127.0.0.0/8 -i ${n1.bridge}`, 'the guard is per network, not per publication')
  })

  t.test('an endpoint of an unknown network is refused', async (t) => {
    await t.rejects(d.call('setEndpoint', [endpoint('ex', net(9), 2, [])]), { code: 'NETWORK_NOT_FOUND' })
  })

  t.test('a new driver (agent restart) adopts the rules without duplicating them', async (t) => {
    const d2 = await driver(t, ns)
    t.equal(await d2.call('reconcile', [state]), false, 'nothing to repair')
    await expectPlan(t, ns, state, 'after restart')
    await d2.close()
  })

  t.test('teardown', async (t) => {
    await d.call('teardown')
    t.same(ferryLines(save(ns)), ['-A FERRY-USER -s 192.0.2.0/24 -j DROP', ':FERRY-USER -'], 'only a non-empty FERRY-USER is left')
    ipt(ns, ['-F', 'FERRY-USER'])
    await d.call('teardown')
    t.notMatch(save(ns), /ferry/i, 'iptables-save has no trace of ferry')
    t.equal(sysctl(ns, `net.ipv4.conf.${n1.bridge}.route_localnet`), '0')
    await d.call('teardown')
    t.pass('teardown twice is fine')
  })
})

t.test('stale UDP conntrack entries are flushed when a port is published and removed', async (t) => {
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
})

t.test('timings', async (t) => {
  const n1 = net(1, { subnet: '10.64.0.0/16', gateway: '10.64.0.1' })
  const ns = hostNs(t, [{ name: n1.bridge }])
  const d = await driver(t, ns)
  await d.call('addNetwork', [n1])

  const big = endpoint('big', n1, 2, [(ip) => bind('tcp', '', 20000, ip, 20000, 1000), (ip) => bind('udp', '', 20000, ip, 20000, 1000)])
  const add = await d.timed('setEndpoint', [big])
  const addStats = await d.call('stats')
  const rm = await d.timed('removeEndpoint', [big.id])
  const rmStats = await d.call('stats')
  t.comment(`1,000-port range publication (tcp+udp): ferry ${addStats.planMs.toFixed(2)} ms + iptables-restore ${addStats.restoreMs.toFixed(1)} ms; call ${add.ms.toFixed(1)} ms (incl. conntrack)`)
  t.comment(`its removal: ferry ${rmStats.planMs.toFixed(2)} ms + iptables-restore ${rmStats.restoreMs.toFixed(1)} ms; call ${rm.ms.toFixed(1)} ms (incl. conntrack)`)
  t.comment(`ferry's own work: ${addStats.planMs.toFixed(2)} ms to add, ${rmStats.planMs.toFixed(2)} ms to remove (goal 20 ms; measured, not asserted)`)

  const many = (n: number): NatEndpoint[] => Array.from({ length: n }, (_, i) => {
    const address = `10.64.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`
    return { id: `m${String(i).padStart(5, '0')}`.padEnd(64, '0'), networkId: n1.id, address, ports: [bind('tcp', '', 10000 + i, address, 80)] }
  })
  const measure = async (n: number): Promise<{ plan: number, restore: number, call: number, rmPlan: number, rmRestore: number }> => {
    const eps = many(n)
    await d.call('reconcile', [{ networks: [n1], endpoints: eps }])
    const extra: NatEndpoint = { id: 'extra'.padEnd(64, '0'), networkId: n1.id, address: '10.64.200.1', ports: [bind('tcp', '', 9999, '10.64.200.1', 80)] }
    const r = await d.timed('setEndpoint', [extra])
    const s = await d.call('stats')
    await d.call('removeEndpoint', [extra.id])
    const s2 = await d.call('stats')
    return { plan: s.planMs, restore: s.restoreMs, call: r.ms, rmPlan: s2.planMs, rmRestore: s2.restoreMs }
  }
  const small = await measure(10)
  const large = await measure(1000)
  t.comment(`one more endpoint with 10 others:    ferry ${small.plan.toFixed(2)} ms + restore ${small.restore.toFixed(1)} ms; removal ferry ${small.rmPlan.toFixed(2)} ms + restore ${small.rmRestore.toFixed(1)} ms`)
  t.comment(`one more endpoint with 1,000 others: ferry ${large.plan.toFixed(2)} ms + restore ${large.restore.toFixed(1)} ms; removal ferry ${large.rmPlan.toFixed(2)} ms + restore ${large.rmRestore.toFixed(1)} ms`)
  t.comment(`ferry's work for one more endpoint among 1,000: ${large.plan.toFixed(2)} ms (measured, not asserted)`)
  t.equal(ferryLines(save(ns)).filter((l) => l.startsWith('-A FERRY-DNAT-')).length, 1000)
  const perBucket = DNAT_BUCKETS.map((b) => ferryLines(save(ns)).filter((l) => l.startsWith(`-A ${b} `)).length)
  t.ok(Math.max(...perBucket) < 120, `spread over the buckets: ${perBucket.join(' ')}`)
  await d.call('teardown')
  t.notMatch(save(ns), /ferry/i)
})

// ---------------------------------------------------------------------------
// Traffic: a host namespace with two ferry bridges, containers as namespaces, and an
// "outside" namespace on an uplink.

/** A TCP server in `ns` that answers every connection with `hello <name>` (killed with the namespace). */
function serve (ns: string, port: number, name: string): void {
  const code = `require('net').createServer((s) => s.end('hello ${name}\\n')).listen(${port}, () => console.log('up'))`
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], detached: false })
  child.unref()
}

async function waitListening (ns: string, port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (nsExec(ns, ['ss', '-Htln', `sport = :${port}`]).trim() !== '') return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`nothing listens on ${port} in ${ns}`)
}

/** Connect from `ns`; the server's greeting, or '' when the connection fails. */
function connect (ns: string, ip: string, port: number): string {
  return nsExec(ns, ['nc', '-w', '2', ip, String(port)], { allowFailure: true, timeoutMs: 10_000, input: '' }).trim()
}

function container (t: Test, host: string, bridge: string, cidr: string, gateway: string, veth: string): string {
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

t.test('traffic', async (t) => {
  const n1 = net(1)
  const n2 = net(2)
  const host = hostNs(t, [{ name: n1.bridge, cidr: '10.31.0.1/24' }, { name: n2.bridge, cidr: '10.32.0.1/24' }])
  const outside = netns(t, 'fyo')
  link({ ns: host, ifname: 'uplink', cidr: '198.51.100.1/24' }, { ns: outside, ifname: 'eth0', cidr: '198.51.100.2/24' })
  const c1 = container(t, host, n1.bridge, '10.31.0.2/24', '10.31.0.1', 'fyh1')
  const c2 = container(t, host, n1.bridge, '10.31.0.3/24', '10.31.0.1', 'fyh2')
  const c3 = container(t, host, n2.bridge, '10.32.0.2/24', '10.32.0.1', 'fyh3')
  serve(c1, 80, 'c1')
  serve(c1, 81, 'c1-81')
  await waitListening(c1, 80)
  await waitListening(c1, 81)

  t.equal(connect(c2, '10.31.0.2', 80), '', 'before ferry: FORWARD DROP blocks containers on one bridge')

  const d = await driver(t, host)
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
  sh(['ip', '-n', outside, 'route', 'add', '10.31.0.0/24', 'via', '198.51.100.1'])
  t.equal(connect(outside, '10.31.0.2', 81), '', '127.0.0.1-published port not reachable by routing to the container (moby#45610)')
  t.equal(connect(outside, '10.31.0.2', 80), '', 'unpublished direct access from outside is dropped')

  await d.call('teardown')
  t.equal(connect(outside, '198.51.100.1', 8080), '', 'after teardown: nothing published')
  t.notMatch(save(host), /ferry/i)
})
