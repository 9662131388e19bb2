/**
 * The real IptablesDriver (dist/nat/iptables.js, build first with `npx tsc -p .`)
 * against the kernel, each subtest in a fresh namespace whose FORWARD policy is
 * DROP (as the engine leaves it), through the nsnode harness. Checked against
 * `iptables-save`, sysctl and conntrack output in that namespace, plus real
 * traffic between namespaces. Prints the timings of large publications.
 */
import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { netns, nsExec } from '../harness/netns.js'
import {
  addBridges, applyMatrix, matrixNetworks, bind, dualEndpoint, dualHost, dualNet, endpoint, familyScenario, FAMILIES, isolationMatrix, net, routedScenario,
  udpConntrackScenario,
} from '../harness/firewall.js'
import { REPO_ROOT, nsNode, type NsNode } from '../harness/nsnode.js'
import type { IptablesDriver } from '../../src/nat/iptables.js'
import { DNAT_BUCKETS, dnatBucket, planRules, type Ruleset } from '../../src/nat/plan.js'
import { diffViews, parseSave, renderBatch } from '../../src/nat/restore.js'
import type { FirewallDriver, FirewallState, NatEndpoint } from '../../src/nat/types.js'

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

/** A namespace like the agent's: FORWARD policy DROP, forwarding on, the bridges present. */
function hostNs (t: Test, bridges: Array<{ name: string, cidr?: string }>): string {
  const ns = netns(t, 'fyn')
  ipt(ns, ['-P', 'FORWARD', 'DROP'])
  nsExec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1'])
  addBridges(ns, bridges)
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
  const nets = matrixNetworks()
  const [n1, n2, n3] = nets
  const ns = hostNs(t, nets.map((n) => ({ name: n.bridge })))
  ipt(ns, ['-A', 'FORWARD', '-j', 'ACCEPT', '-m', 'comment', '--comment', 'someone else'])
  const d = await driver(t, ns)
  const applied = await applyMatrix(d, nets, 100)
  const { e1, e3 } = applied
  let state: FirewallState = applied.state
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
    t.notMatch(save(ns), /ferry/i, 'teardown twice is fine: still no trace of ferry')
  })
})

t.test('stale UDP conntrack entries are flushed when a port is published and removed', async (t) => {
  await udpConntrackScenario(t, hostNs, (t, ns) => driver(t, ns) as Promise<NsNode<FirewallDriver>>)
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
  t.equal(ferryLines(save(ns)).filter((l) => l.startsWith('-A FERRY-DNAT-')).length, 1000)
  const perBucket = DNAT_BUCKETS.map((b) => ferryLines(save(ns)).filter((l) => l.startsWith(`-A ${b} `)).length)
  t.ok(Math.max(...perBucket) < 120, `spread over the buckets: ${perBucket.join(' ')}`)
  await d.call('teardown')
  t.notMatch(save(ns), /ferry/i)
})

// ---------------------------------------------------------------------------
// Both families: iptables and ip6tables from the same plan.

const drv = (t: Test, ns: string): Promise<NsNode<FirewallDriver>> => driver(t, ns) as Promise<NsNode<FirewallDriver>>

function dropBoth (ns: string): void {
  ipt(ns, ['-P', 'FORWARD', 'DROP'])
  nsExec(ns, ['ip6tables', '-w', '-P', 'FORWARD', 'DROP'])
}

for (const f of FAMILIES) {
  t.test(`traffic over IPv${f} on dual-stack networks (FORWARD policy DROP in both families)`, async (t) => {
    await familyScenario(t, f, drv, { setup: dropBoth, blocksBefore: true })
  })
}

t.test('IPv6 routed mode', async (t) => {
  await routedScenario(t, async (t, ns) => { dropBoth(ns); return await drv(t, ns) })
})

t.test('isolation holds the same in both families (netavark#1515)', async (t) => {
  const m = await isolationMatrix(t, async (t, ns) => { dropBoth(ns); return await drv(t, ns) })
  t.equal(m[6].get('n1c2->n1c3'), true, 'ICC on')
  t.equal(m[6].get('n2c2->n2c3'), false, 'ICC off')
  t.equal(m[6].get('n1c2->n2c2'), false, 'between networks')
  t.equal(m[6].get('n1c2->outside'), true, 'the way out')
  t.equal(m[6].get('n3c2->outside'), false, 'internal: no way out')
})

t.test('dual-stack: ip6tables-save holds the IPv6 plan (with an encrypted overlay\'s MSS clamp); a second reconcile changes nothing', async (t) => {
  const n1 = dualNet(1)
  const n2 = dualNet(2, { mode6: 'routed', clampMss: true })
  const ns = dualHost(t, [1, 2])
  const d = await driver(t, ns)
  const e1 = dualEndpoint('e1', n1, 1, 2, (g, ip) => [bind('tcp', '', 8080, ip, 80), bind('udp', g === 4 ? '192.0.2.10' : '2001:db8::5', 5353, ip, 53)])
  const e2 = dualEndpoint('e2', n2, 2, 2, (_g, ip) => [bind('tcp', '', 9090, ip, 90)])
  const state: FirewallState = { networks: [n1, n2], endpoints: [e1, e2] }
  t.equal(await d.call('reconcile', [state]), true, 'programmed')
  const save6 = nsExec(ns, ['ip6tables-save'])
  const view = parseSave(save6)
  t.equal(renderBatch(diffViews(view, planRules(state, {}, 6))), '', 'ip6tables holds exactly the IPv6 plan')
  t.equal(renderBatch(diffViews(parseSave(nsExec(ns, ['iptables-save'])), planRules(state, {}, 4))), '', 'iptables the IPv4 one')
  t.match(save6, /--to-destination \[fd00:31::2\]:80/)
  t.match(save6, /-A FERRY-ROUTED-PORTS -d fd00:32::2\/128 -o fy-n2 -p tcp -m tcp --dport 90 /)
  for (const save of [save6, nsExec(ns, ['iptables-save'])]) t.match(save, /-A FERRY-FORWARD -o fy-n2 -p tcp -m tcp --tcp-flags SYN,RST SYN .*-j TCPMSS --clamp-mss-to-pmtu/)
  t.equal(await d.call('reconcile', [state]), false, 'a second reconcile changes nothing')
  await d.call('removeEndpoint', [e1.id])
  t.notMatch(nsExec(ns, ['ip6tables-save']), /fd00:31::2/, 'removal takes the IPv6 rules away')
  await d.call('teardown')
  t.notMatch(nsExec(ns, ['ip6tables-save']), /FERRY/, 'teardown: nothing in ip6tables')
})
