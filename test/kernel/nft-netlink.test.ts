/**
 * The nf_tables generation reader: the NEWGEN answer parsed, the u32 wrap, and
 * the real kernel in a fresh namespace (through the nsnode harness): a committed
 * transaction advances the generation by one, a read, a check (`nft -c`) and a
 * refused transaction do not.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { netns, nsExec } from '../harness/netns.js'
import { REPO_ROOT, nsNode } from '../harness/nsnode.js'
import { advanceGeneration, deletedFrom, parseGeneration, type NftGeneration } from '../../src/kernel/nft-netlink.js'
import { until } from '../harness/until.js'

t.test('parse and advance', async (t) => {
  // nfgenmsg, NFTA_GEN_ID 0x01020304, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME "node"
  const data = Buffer.from('00000001' + '0800010001020304' + '0800020000003703' + '090003006e6f646500000000', 'hex')
  t.equal(parseGeneration({ type: 0x0a0f, data }), 0x01020304)
  t.equal(parseGeneration({ type: 0x0a10, data }), undefined, 'not a NEWGEN message')
  t.equal(parseGeneration({ type: 0x0a0f, data: data.subarray(0, 2) }), undefined, 'too short')
  t.equal(advanceGeneration(7, 0), 7)
  t.equal(advanceGeneration(7, 3), 10)
  t.equal(advanceGeneration(0xffffffff, 1), 1, 'the kernel skips 0')
})

t.test('deletion events of one table', async (t) => {
  // nfgenmsg (family 1 = inet) and a first attribute holding the table's name, NUL-terminated
  const msg = (type: number, family: number, table: string): { type: number, data: Buffer } => {
    const name = Buffer.concat([Buffer.from(table), Buffer.alloc(4 - (table.length % 4))])
    const attr = Buffer.alloc(4)
    attr.writeUInt16LE(4 + table.length + 1, 0)
    attr.writeUInt16LE(1, 2)
    return { type: (10 << 8) | type, data: Buffer.concat([Buffer.from([family, 0, 0, 0]), attr, name]) }
  }
  t.equal(deletedFrom(msg(2, 1, 'ferry'), 1, 'ferry'), 'table')
  t.equal(deletedFrom(msg(5, 1, 'ferry'), 1, 'ferry'), 'chain')
  t.equal(deletedFrom(msg(8, 1, 'ferry'), 1, 'ferry'), 'rule')
  t.equal(deletedFrom(msg(11, 1, 'ferry'), 1, 'ferry'), 'set')
  t.equal(deletedFrom(msg(14, 1, 'ferry'), 1, 'ferry'), undefined, 'an element deletion is not one (ferry makes those)')
  t.equal(deletedFrom(msg(0, 1, 'ferry'), 1, 'ferry'), undefined, 'nor an addition')
  t.equal(deletedFrom(msg(2, 2, 'ferry'), 1, 'ferry'), undefined, 'another family')
  t.equal(deletedFrom(msg(2, 1, 'ferryother'), 1, 'ferry'), undefined, 'another table')
  t.equal(deletedFrom({ type: (11 << 8) | 2, data: msg(2, 1, 'ferry').data }, 1, 'ferry'), undefined, 'another subsystem')
})

t.test('the kernel\'s generation in a fresh namespace', async (t) => {
  if (!existsSync(`${REPO_ROOT}dist/kernel/nft-netlink.js`)) {
    t.fail('dist/kernel/nft-netlink.js is missing: run `npx tsc -p .`')
    return
  }
  const ns = netns(t, 'fyg')
  const g = await nsNode<NftGeneration>(t, ns, { module: 'dist/kernel/nft-netlink.js', factory: 'openNftGeneration' })
  const nft = (args: string[], allowFailure = false): string => nsExec(ns, ['nft', ...args], { allowFailure })
  const g0 = await g.call('read')
  nft(['add', 'table', 'inet', 'gen'])
  t.equal(await g.call('read'), advanceGeneration(g0, 1), 'a commit: one more')
  nft(['list', 'ruleset'])
  nft(['-c', 'add', 'table', 'inet', 'other'])
  nft(['add', 'chain', 'inet', 'missing', 'c'], true)
  t.equal(await g.call('read'), advanceGeneration(g0, 1), 'a read, a check and a refused transaction: unchanged')
  nsExec(ns, ['nft', '-f', '-'], { input: '\n' })
  t.equal(await g.call('read'), advanceGeneration(g0, 1), 'an empty transaction: unchanged')
  nsExec(ns, ['nft', '-f', '-'], { input: 'add set inet gen s { type ipv4_addr; }\nadd element inet gen s { 192.0.2.1 }\n' })
  t.equal(await g.call('read'), advanceGeneration(g0, 2), 'a file of several commands is one commit')
  nft(['add', 'element', 'inet', 'gen', 's', '{ 192.0.2.1 }'])
  t.equal(await g.call('read'), advanceGeneration(g0, 2), 'adding an element that exists commits nothing (why ferry adds with create)')
})

t.test('deletion events from the kernel, in a fresh namespace', async (t) => {
  if (!existsSync(`${REPO_ROOT}dist/kernel/nft-netlink.js`)) return
  const ns = netns(t, 'fyg')
  const w = await nsNode<{ open (): void, seen (): string[], close (): void }>(t, ns, { module: 'dist/kernel/nft-netlink.js', factory: 'openDeletionRecorder' })
  await w.call('open')
  nsExec(ns, ['nft', '-f', '-'], { input: 'table inet ferry {\n set s { type ipv4_addr; }\n chain c { counter; }\n}\ntable inet other {\n chain c { counter; }\n}\n' })
  nsExec(ns, ['nft', 'add', 'element', 'inet', 'ferry', 's', '{ 192.0.2.1 }'])
  nsExec(ns, ['nft', 'delete', 'element', 'inet', 'ferry', 's', '{ 192.0.2.1 }'])
  nsExec(ns, ['nft', 'flush', 'chain', 'inet', 'other', 'c'])
  nsExec(ns, ['nft', 'flush', 'chain', 'inet', 'ferry', 'c'])
  await until('the rule deletion to arrive', async () => (await w.call('seen')).length > 0, { timeoutMs: 5000 })
  t.same(await w.call('seen'), ['rule'], 'only the deletion of ferry\'s rule: not the element, not the other table\'s rule')
  nsExec(ns, ['nft', 'delete', 'table', 'inet', 'ferry'])
  await until('the table\'s deletion to arrive', async () => (await w.call('seen')).includes('table'), { timeoutMs: 5000 })
  t.same([...new Set(await w.call('seen'))].sort(), ['chain', 'rule', 'set', 'table'], 'a deleted table: its chain, set and the table')
  await w.call('close')
})
