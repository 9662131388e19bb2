/**
 * Legacy links in the firewall plan (FERRY-LINKS): golden rules for a matrix of
 * networks and ports, the batches that add and remove links, validation, and a
 * round trip through the kernel (iptables-restore then iptables-save in a fresh
 * namespace) so that the planned text is exactly what the kernel prints.
 * Update snapshots with `npx tap --snapshot test/nat/links.test.ts`.
 */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import { CHAIN, planBase, planLinks, planRules, validateLink, type Ruleset } from '../../src/nat/plan.js'
import { diffViews, parseSave, renderBatch, viewOf } from '../../src/nat/restore.js'
import type { NatLink, NatNetwork } from '../../src/nat/types.js'
import { netns, nsExec } from '../harness/netns.js'

function net (n: number, over: Partial<NatNetwork> = {}): NatNetwork {
  return { id: `${n}`.repeat(64), bridge: `fy-net${n}`, subnet: `10.2${n}.0.0/24`, gateway: `10.2${n}.0.1`, icc: false, masquerade: true, internal: false, ...over }
}

function lnk (id: string, n: NatNetwork, parent: number, child: number, ports: NatLink['ports']): NatLink {
  const ip = (h: number): string => n.gateway.replace(/\.1$/, `.${h}`)
  return { id, networkId: n.id, parentIp: ip(parent), childIp: ip(child), ports }
}

function fresh (rs: Ruleset): string {
  return renderBatch(diffViews(parseSave(''), rs))
}

t.test('golden link rules', async (t) => {
  const n1 = net(1)
  const l1 = lnk('web-database', n1, 3, 2, [{ proto: 'tcp', port: 5432 }, { proto: 'udp', port: 53 }, { proto: 'sctp', port: 9000 }])
  t.matchSnapshot(fresh(planRules({ networks: [n1], endpoints: [], links: [l1] })), 'icc off: both directions per exposed port, jump after FERRY-USER')
  t.matchSnapshot(planLinks([lnk('b', n1, 4, 2, [{ proto: 'tcp', port: 80 }]), l1], [n1]).join('\n'), 'two links, sorted by id')
  t.same(planLinks([lnk('x', net(2, { icc: true }), 3, 2, [{ proto: 'tcp', port: 80 }])], [net(2, { icc: true })]), [], 'icc on: nothing to allow')
  t.same(planLinks([lnk('x', n1, 3, 2, [])], [n1]), [], 'no exposed port: nothing allowed')
  t.same(planLinks([lnk('x', n1, 3, 2, [{ proto: 'tcp', port: 80 }])], []), [], 'unknown network: nothing')
})

t.test('no link: the plan is exactly the one without links', async (t) => {
  const n1 = net(1)
  t.same(planBase([n1], new Set(), {}, []), planBase([n1], new Set()))
  t.notOk(planRules({ networks: [n1], endpoints: [] }).tables.filter[CHAIN.links], 'no FERRY-LINKS chain')
})

t.test('adding then removing a link: exact -A/-D lines, then the chain goes', async (t) => {
  const n1 = net(1)
  const l = lnk('web-db', n1, 3, 2, [{ proto: 'tcp', port: 5432 }])
  const before = planBase([n1], new Set())
  const after = planBase([n1], new Set(), {}, [l])
  const add = renderBatch(diffViews(viewOf(before), after))
  t.matchSnapshot(add, 'batch that adds the first link')
  const second = planBase([n1], new Set(), {}, [l, lnk('web-cache', n1, 3, 4, [{ proto: 'tcp', port: 6379 }])])
  const more = renderBatch(diffViews(viewOf(after), second))
  t.notMatch(more, /:FERRY-FORWARD/, 'a second link does not rewrite FERRY-FORWARD')
  t.match(more, /-A FERRY-LINKS -s 10\.21\.0\.3\/32 -d 10\.21\.0\.4\/32/)
  const remove = renderBatch(diffViews(viewOf(after), before))
  t.match(remove, /-X FERRY-LINKS/, 'the last link removes the chain')
  t.match(remove, /:FERRY-FORWARD - \[0:0\]/, 'and the jump')
})

t.test('validation', async (t) => {
  const n1 = net(1)
  const code = (l: NatLink): string | undefined => {
    try { validateLink(l); return undefined } catch (err) { return err instanceof FerryError ? err.code : 'other' }
  }
  t.equal(code(lnk('ok', n1, 3, 2, [{ proto: 'tcp', port: 1 }])), undefined)
  t.equal(code(lnk('bad id', n1, 3, 2, [])), 'INVALID_REQUEST')
  t.equal(code({ ...lnk('x', n1, 3, 2, []), childIp: '10.0.0.1 -j DROP' }), 'INVALID_REQUEST')
  t.equal(code(lnk('x', n1, 3, 2, [{ proto: 'tcp', port: 70000 }])), 'INVALID_REQUEST')
  t.equal(code(lnk('x', n1, 3, 2, [{ proto: 'icmp' as 'tcp', port: 1 }])), 'INVALID_REQUEST')
})

t.test('the kernel prints the planned rules back exactly', async (t) => {
  const ns = netns(t, 'fylk')
  const n1 = net(1)
  const rs = planRules({ networks: [n1], endpoints: [], links: [lnk('web-db', n1, 3, 2, [{ proto: 'tcp', port: 5432 }, { proto: 'udp', port: 53 }, { proto: 'sctp', port: 9 }])] })
  nsExec(ns, ['iptables-restore', '--noflush', '-w', '5'], { input: fresh(rs) })
  const view = parseSave(nsExec(ns, ['iptables-save']))
  const batch = renderBatch(diffViews(view, rs))
  t.equal(batch, '', 'nothing left to change after a round trip')
  t.same(view.chains.filter.get(CHAIN.links), rs.tables.filter[CHAIN.links]!.rules)
})
