import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import type { PoolRecord } from '../../src/model/types.js'
import { FileStore, MemoryStore, applyOp, decodeJournal, encodeEntry, keepHostId, openingMessages, scanJournal } from '../../src/store/store.js'
import { endpointRecord as ep, networkRecord as net, poolRecord } from '../fixtures/records.js'

t.test('commit is durable, coalesced, and survives a reopen', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir)
  s.state.networks.x = net('x')
  const commits = Array.from({ length: 50 }, () => s.commit())
  await Promise.all(commits)
  t.ok(s.writes <= 3, `50 concurrent commits coalesced into ${s.writes} writes`)
  const again = await FileStore.open(dir)
  t.same(Object.keys(again.state.networks), ['x'])
})

t.test('a temp file left by a crash is ignored and removed', async (t) => {
  const dir = t.testdir({ 'state.json.tmp': '{"half": ' })
  const s = await FileStore.open(dir)
  t.same(s.state.networks, {})
  await t.rejects(fs.stat(path.join(dir, 'state.json.tmp')))
})

t.test('a corrupt or newer state file is refused with a clear message', async (t) => {
  await t.rejects(FileStore.open(t.testdir({ 'state.json': '{nope' })), { code: 'STORE_DAMAGED', message: /is damaged \(it is not JSON.*--recover-store/ })
  await t.rejects(FileStore.open(t.testdir({ 'state.json': '{"version": 99}' })), { code: 'STORE', message: /version 99/ })
})

t.test('named changes go to the journal and survive a reopen; a reopen compacts', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir, { verify: true })
  const snapshots = s.snapshots
  s.state.endpoints.a = ep('a')
  await s.commit(['endpoints', 'a'])
  s.state.pools.p = poolRecord('p')
  await s.commit(['pools', 'p'])
  const pool = s.state.pools.p as unknown as PoolRecord
  pool.allocated['10.0.0.2'] = { kind: 'endpoint', at: 'now' }
  pool.cursor = '10.0.0.2'
  await s.commit(['pools', 'p', 'allocated', '10.0.0.2'], ['pools', 'p', 'cursor'])
  delete s.state.endpoints.a
  s.state.endpoints.b = ep('b')
  await s.commit(['endpoints', 'a'], ['endpoints', 'b'])
  t.equal(s.snapshots, snapshots, 'no snapshot written for named changes')
  t.equal(s.journalWrites, 4)
  const journal = await fs.readFile(path.join(dir, 'state.journal'), 'utf8')
  t.equal(journal.trim().split('\n').length, 4)
  const again = await FileStore.open(dir)
  t.same(again.state.endpoints, { b: ep('b') })
  t.same(again.state.pools.p, poolRecord('p', { allocated: { '10.0.0.2': { kind: 'endpoint', at: 'now' } }, cursor: '10.0.0.2' }))
  t.equal(await fs.readFile(path.join(dir, 'state.journal'), 'utf8'), '', 'reopening folded the journal into the snapshot')
})

t.test('touch rides with the next commit', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir, { verify: true })
  s.state.endpoints.a = ep('a')
  await s.commit(['endpoints', 'a'])
  ;(s.state.endpoints.a as unknown as { joined: boolean }).joined = true
  s.touch(['endpoints', 'a'])
  s.state.endpoints.b = ep('b')
  await s.commit(['endpoints', 'b'])
  t.same((await FileStore.open(dir)).state.endpoints, { a: ep('a', { joined: true }), b: ep('b') })
})

t.test('a torn or corrupt journal tail is dropped; lines already in the snapshot are skipped', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir)
  s.state.endpoints.a = ep('a')
  await s.commit(['endpoints', 'a'])
  s.state.endpoints.b = ep('b')
  await s.commit(['endpoints', 'b'])
  const jf = path.join(dir, 'state.journal')
  const good = await fs.readFile(jf, 'utf8')
  // A third append that a crash left with a bad checksum (its last line), then one cut short:
  // neither was acknowledged, so nothing is lost and nothing is kept aside.
  await fs.writeFile(jf, good + '0000beef {"seq":3,"ops":[["set",["endpoints","c"],{"id":"c"}]]}\n')
  const torn = await FileStore.open(dir)
  t.same(Object.keys(torn.state.endpoints).sort(), ['a', 'b'])
  t.equal(torn.loss, undefined)
  await fs.writeFile(jf, good + good.slice(0, 30))
  const again = await FileStore.open(dir)
  t.same(Object.keys(again.state.endpoints).sort(), ['a', 'b'])
  t.equal(again.loss, undefined)
  t.same((await fs.readdir(dir)).filter((n) => n.includes('damaged')), [])
  // The snapshot now holds seq 2: the old journal lines, were they left behind, are skipped.
  await fs.writeFile(jf, good)
  again.state.endpoints.a = ep('a', { changed: true })
  const third = await FileStore.open(dir)
  t.same(Object.keys(third.state.endpoints).sort(), ['a', 'b'])
  t.same(third.state.endpoints.a, ep('a'))
})

t.test('a state file from before the journal opens as it is', async (t) => {
  const dir = t.testdir({ 'state.json': JSON.stringify({ version: 1, networks: { n: net('n') }, endpoints: {}, pools: {} }) })
  const s = await FileStore.open(dir)
  t.same(Object.keys(s.state.networks), ['n'])
  s.state.endpoints.e = ep('e')
  await s.commit(['endpoints', 'e'])
  t.same(Object.keys((await FileStore.open(dir)).state.endpoints), ['e'])
})

t.test('verify mode catches a change the commit did not name', async (t) => {
  const s = await FileStore.open(t.testdir({}), { verify: true })
  s.state.endpoints.a = ep('a')
  s.state.networks.n = ep('n')
  await t.rejects(s.commit(['endpoints', 'a']), { code: 'STORE', message: /missing a change/ })
  s.state.endpoints.b = ep('b')
  await t.resolves(s.commit(), 'a full commit repairs it')
  s.state.endpoints.c = ep('c')
  await t.resolves(s.commit(['endpoints', 'c']))
})

t.test('the journal is folded into a snapshot once it outgrows it', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir)
  const before = s.snapshots
  const big = 'x'.repeat(64 * 1024)
  for (let i = 0; i < 20; i++) {
    s.state.endpoints.a = ep('a', { big, i })
    await s.commit(['endpoints', 'a'])
  }
  t.ok(s.snapshots > before, 'compacted')
  t.ok((await fs.stat(path.join(dir, 'state.journal'))).size < 1.1 * 1024 * 1024)
  t.equal(((await FileStore.open(dir)).state.endpoints.a as unknown as { i: number }).i, 19)
})

t.test('journal encoding round-trips; a bad line is skipped, and only a bad last line is torn', async (t) => {
  const a = encodeEntry({ seq: 1, ops: [['set', ['endpoints', 'a'], { id: 'a' }]] })
  const b = encodeEntry({ seq: 2, ops: [['del', ['endpoints', 'a']]] })
  const c = encodeEntry({ seq: 3, ops: [['set', ['endpoints', 'c'], { id: 'c' }]] })
  t.equal(decodeJournal(a + b).entries.length, 2)
  t.equal(decodeJournal(a + b.slice(0, -1)).entries.length, 1, 'no newline: torn')
  t.equal(decodeJournal(b + a).entries.length, 1, 'out of order')
  const scan = scanJournal(a + b.replace('"del"', '"dex"') + c + c.slice(0, 20))
  t.same(scan.entries.map((e) => e.seq), [1, 3], 'the intact line after a damaged one counts')
  t.same(scan.damaged, [{ line: 2, seq: 2, keys: [] }], 'the damaged line is reported; its op is unreadable')
  t.equal(scan.torn, true)
  t.same(scanJournal(a + '00000000 {"seq":2,"ops":[["set",["endpoints","x"],{"id":"x"}],["del",["pools","p","allocated","10.0.0.9"]]]}\n' + c).damaged,
    [{ line: 2, seq: 2, keys: ['endpoints/x', 'pools/p/allocated/10.0.0.9'] }], 'a line with a bad checksum says what it touched')
  const root: Record<string, unknown> = {}
  applyOp(root, ['set', ['pools', 'p', 'allocated', 'x'], 1])
  applyOp(root, ['del', ['nope', 'deeper']])
  t.same(root, { pools: { p: { allocated: { x: 1 } } } })
  applyOp(root, ['set', ['pools', '__proto__'], { polluted: true }])
  t.equal(Object.getPrototypeOf(root.pools), Object.prototype, 'a key "__proto__" is an own property, never a prototype')
  t.same(Object.keys(root.pools as object).sort(), ['__proto__', 'p'])
})

t.test('ids that are Object.prototype member names are ordinary keys, through the journal and a snapshot', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir, { verify: true })
  t.equal(s.state.endpoints.constructor, undefined, 'no inherited member')
  for (const id of ['__proto__', 'constructor', 'toString']) {
    s.state.endpoints[id] = {
      id, networkId: 'n', address: '10.0.0.2', prefixLen: 24, mac: '02:42:0a:00:00:02', hostVeth: 'fyh0', containerVeth: 'fyc0', joined: false,
      portRequests: [], ports: [], exposed: [], createdAt: '2026-01-01T00:00:00.000Z',
    }
    await s.commit(['endpoints', id])
  }
  t.same(Object.keys(s.state.endpoints).sort(), ['__proto__', 'constructor', 'toString'])
  const journaled = await FileStore.open(dir)
  t.same(Object.keys(journaled.state.endpoints).sort(), ['__proto__', 'constructor', 'toString'], 'replayed from the journal')
  t.equal(journaled.state.endpoints.__proto__?.id, '__proto__')
  t.equal(journaled.state.networks.constructor, undefined)
  await journaled.commit()
  const snap = await FileStore.open(dir)
  t.same(Object.keys(snap.state.endpoints).sort(), ['__proto__', 'constructor', 'toString'], 'read from a snapshot')
  t.equal(snap.state.pools.hasOwnProperty, undefined)
})

t.test('keepHostId: the first id made is kept and committed; later calls return it without making one', async (t) => {
  const s = new MemoryStore()
  let made = 0
  const make = (): string => `host-${++made}`
  t.equal(await keepHostId(s, make), 'host-1')
  t.equal(s.commits, 1, 'committed once')
  t.equal(await keepHostId(s, make), 'host-1', 'the kept one')
  t.equal(made, 1, 'no second id made')
  t.equal(s.commits, 1, 'nothing more to commit')
  t.equal(s.state.hostId, 'host-1')
})

t.test('openingMessages: what opening corrected, a loss found now, a loss of an earlier start', async (t) => {
  const kept = [{ kind: 'journal' as const, path: '/s/state.journal.damaged-1', damagedLines: 1 }]
  t.same(openingMessages({ notes: [], loss: undefined }), [], 'a clean store: nothing to say')
  t.same(openingMessages({ notes: ['the state directory was mode 0755: set to 0700'], loss: { kept, report: 'the store was recovered with loss: …', keys: ['endpoints/e1'] } }), [
    { level: 'warn', msg: 'the state directory was mode 0755: set to 0700' },
    { level: 'error', msg: 'the store was recovered with loss: …', fields: { kept: ['/s/state.journal.damaged-1'], keys: ['endpoints/e1'] } },
  ])
  t.match(openingMessages({ notes: [], loss: { kept, keys: [] } }), [
    { level: 'warn', msg: /at an earlier start: ferry keeps links it cannot explain/, fields: { kept: ['/s/state.journal.damaged-1'] } },
  ])
})
