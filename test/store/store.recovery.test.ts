/**
 * A damaged store: a journal line damaged in the middle (acknowledged changes
 * after it survive, the file is kept aside, the loss is reported), half-valid
 * snapshots (refused with a sentence, or salvaged with recover), the state
 * directory's mode, and links where ferry writes its files.
 */
import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { FileStore, lossView } from '../../src/store/store.js'
import { endpointRecord as ep, networkRecord as net, poolRecord } from '../fixtures/records.js'

const FIXED = (): Date => new Date('2026-12-06T10:00:00.000Z')

/** A store with one network and pool in its snapshot, then `n` journaled endpoints, each with its address. */
async function journaled (dir: string, n: number): Promise<void> {
  const s = await FileStore.open(dir)
  s.state.networks.n = net('n')
  s.state.pools.p = poolRecord('p', { subnet: '10.0.0.0/16' })
  await s.commit()
  for (let i = 1; i <= n; i++) {
    const ip = `10.0.${i >> 8}.${i & 255}`
    s.state.endpoints[`e${i}`] = ep(`e${i}`, { address: ip })
    s.state.pools.p!.allocated[ip] = { kind: 'endpoint', at: 'now' }
    await s.commit(['endpoints', `e${i}`], ['pools', 'p', 'allocated', ip])
  }
  await s.close()
}

/** Flip one character inside the JSON of journal line `line` (1-based). */
async function damageLine (file: string, line: number): Promise<void> {
  const lines = (await fs.readFile(file, 'utf8')).split('\n')
  const l = lines[line - 1]!
  const at = l.indexOf('"address"') + 12
  lines[line - 1] = l.slice(0, at) + (l[at] === '9' ? '8' : '9') + l.slice(at + 1)
  await fs.writeFile(file, lines.join('\n'))
}

t.test('a damaged line among 60: every intact change after it survives, the journal is kept, the loss is reported', async (t) => {
  const dir = t.testdir({})
  await journaled(dir, 60)
  await damageLine(path.join(dir, 'state.journal'), 30)
  const s = await FileStore.open(dir, { now: FIXED })
  const ids = Object.keys(s.state.endpoints)
  t.equal(ids.length, 59, 'all but the damaged change')
  t.notOk(s.state.endpoints.e30, 'the damaged line\'s endpoint is lost')
  for (let i = 31; i <= 60; i++) t.ok(s.state.endpoints[`e${i}`], `e${i}, journaled after the damage, is there`)
  t.equal(Object.keys(s.state.pools.p!.allocated).length, 59)
  const kept = path.join(dir, 'state.journal.damaged-2026-12-06T10-00-00-000Z')
  t.same(s.loss?.kept, [{ path: kept, kind: 'journal', damagedLines: 1 }])
  t.same(s.loss?.keys, ['endpoints/e30', 'pools/p/allocated/10.0.0.30'])
  t.match(s.loss?.report, /journal had 1 damaged line \(line 30 of 60\): 1 acknowledged change lost \(it touched endpoints\/e30, pools\/p\/allocated\/10\.0\.0\.30\), the 30 intact changes after the damage replayed; the journal is kept at .*damaged-2026/)
  t.ok((await fs.stat(kept)).isFile(), 'the damaged journal is kept aside')
  t.same(lossView(s.loss), {
    summary: `recovered with loss: 1 damaged journal line, kept at ${kept}`, damagedJournalLines: 1, kept: [kept], keys: ['endpoints/e30', 'pools/p/allocated/10.0.0.30'],
  }, 'what ferry status shows')

  // Compactions never remove it, and a later start still reports the loss (without a new report).
  s.state.endpoints.z = ep('z')
  await s.commit()
  await s.close()
  const again = await FileStore.open(dir)
  t.equal(Object.keys(again.state.endpoints).length, 60)
  t.same(again.loss?.kept, [{ path: kept, kind: 'journal', damagedLines: 1 }])
  t.equal(again.loss?.report, undefined, 'nothing new was lost')
  await again.close()
  // Once the operator removes the kept file, the store is whole again (at once, and at the next start).
  const running = await FileStore.open(dir)
  t.equal(await running.recheckLoss(), false, 'still kept')
  await fs.rm(kept)
  t.equal(await running.recheckLoss(), true, 'gone: no longer in loss')
  t.equal(running.loss, undefined)
  await running.close()
  t.equal((await FileStore.open(dir)).loss, undefined)
})

t.test('a missing line is a loss even when no line shows damage (a gap in the sequence numbers)', async (t) => {
  const dir = t.testdir({})
  await journaled(dir, 5)
  const jf = path.join(dir, 'state.journal')
  const lines = (await fs.readFile(jf, 'utf8')).split('\n')
  lines.splice(2, 1)
  await fs.writeFile(jf, lines.join('\n'))
  const s = await FileStore.open(dir)
  t.same(Object.keys(s.state.endpoints).sort(), ['e1', 'e2', 'e4', 'e5'])
  t.match(s.loss?.report, /gap in its sequence numbers: 1 acknowledged change lost/)
})

t.test('a change below a record the lost line made leaves a half record: dropped and reported', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir)
  s.state.pools.q = poolRecord('q')
  await s.commit(['pools', 'q'])
  s.state.pools.q.allocated['10.0.0.5'] = { kind: 'endpoint', at: 'now' }
  await s.commit(['pools', 'q', 'allocated', '10.0.0.5'])
  s.state.endpoints.a = ep('a')
  await s.commit(['endpoints', 'a'])
  await s.close()
  const jf = path.join(dir, 'state.journal')
  const lines = (await fs.readFile(jf, 'utf8')).split('\n')
  lines[0] = lines[0]!.replace('FerryLocal', 'FerryLocaL')
  await fs.writeFile(jf, lines.join('\n'))
  const again = await FileStore.open(dir)
  t.same(Object.keys(again.state.pools), [], 'the half pool (only "allocated") is dropped')
  t.same(Object.keys(again.state.endpoints), ['a'])
  t.same(again.loss?.keys, ['pools/q'])
  t.match(again.loss?.report, /1 record did not fit the schema after the journal and is dropped \(pools\/q has no id\)/)
})

t.test('a damaged snapshot is refused with one sentence, never a crash; --recover-store salvages it', async (t) => {
  const good = { version: 1, networks: { n: net('n') }, endpoints: { a: ep('a'), b: ep('b') }, pools: { p: poolRecord('p') } }
  const variants: Record<string, { text: string, why: RegExp, keeps: string[] }> = {
    'bad JSON': { text: '{"version": 1, "networks": {', why: /it is not JSON/, keeps: [] },
    'networks: null': { text: JSON.stringify({ ...good, networks: null }), why: /"networks" is null, not an object of records/, keeps: ['a', 'b'] },
    'a wrong type': { text: JSON.stringify({ ...good, endpoints: { ...good.endpoints, b: { ...ep('b'), prefixLen: '24' } } }), why: /endpoints\/b\.prefixLen is string "24", not a whole number/, keeps: ['a'] },
    'a missing field': { text: JSON.stringify({ ...good, endpoints: { a: ep('a'), b: { id: 'b' } } }), why: /endpoints\/b has no networkId/, keeps: ['a'] },
    'a record under another key': { text: JSON.stringify({ ...good, endpoints: { a: ep('a'), b: ep('c') } }), why: /endpoints\/b has id "c", not its key/, keeps: ['a'] },
    'a list for the state': { text: '[1, 2]', why: /not a JSON object/, keeps: [] },
    'no version': { text: JSON.stringify({ ...good, version: undefined }), why: /version is missing/, keeps: ['a', 'b'] },
  }
  for (const [name, v] of Object.entries(variants)) {
    const dir = t.testdir({ 'state.json': v.text })
    await t.rejects(FileStore.open(dir), { code: 'STORE_DAMAGED', message: v.why }, `${name}: refused`)
    await t.rejects(FileStore.open(dir), { message: /run the agent once with --recover-store/ }, `${name}: the sentence says how to recover`)
    t.equal(await fs.readFile(path.join(dir, 'state.json'), 'utf8'), v.text, `${name}: the file is untouched`)
    const s = await FileStore.open(dir, { recover: true, now: FIXED })
    t.same(Object.keys(s.state.endpoints).sort(), v.keeps, `${name}: what fits the schema is kept`)
    t.same(s.loss?.kept.map((k) => path.basename(k.path)), ['state.json.damaged-2026-12-06T10-00-00-000Z'], `${name}: the damaged file is kept aside`)
    t.match(s.loss?.report, v.why)
    t.equal(await fs.readFile(path.join(dir, 'state.json.damaged-2026-12-06T10-00-00-000Z'), 'utf8'), v.text)
    await s.close()
    const again = await FileStore.open(dir)
    t.same(Object.keys(again.state.endpoints).sort(), v.keeps, `${name}: the next start opens the recovered state`)
    t.ok(again.loss, `${name}: and still reports the loss`)
    await again.close()
  }
})

t.test('with a damaged snapshot, recover replays the journal onto what is left', async (t) => {
  const dir = t.testdir({})
  await journaled(dir, 3)
  await fs.writeFile(path.join(dir, 'state.json'), '{"version": 1, "networks": nul')
  const s = await FileStore.open(dir, { recover: true })
  t.same(Object.keys(s.state.endpoints).sort(), ['e1', 'e2', 'e3'])
  t.same(Object.keys(s.state.pools), [], 'the pool was in the snapshot; its journaled addresses alone make a half record, dropped')
  t.match(s.loss?.report, /state file was damaged/)
})

t.test('a state file of a newer ferry is not damage: refused as before', async (t) => {
  await t.rejects(FileStore.open(t.testdir({ 'state.json': '{"version": 99}' })), { code: 'STORE', message: /version 99/ })
  await t.rejects(FileStore.open(t.testdir({ 'state.json': '{"version": 99}' }), { recover: true }), { code: 'STORE', message: /version 99/ })
})

t.test('the state directory\'s mode is set to 0700 when it exists with another', async (t) => {
  const dir = t.testdir({})
  await fs.chmod(dir, 0o755)
  const s = await FileStore.open(dir)
  t.equal((await fs.stat(dir)).mode & 0o7777, 0o700)
  t.same(s.notes, [`the state directory ${dir} had mode 0755; ferry set it to 0700 (only root may read or change its state)`])
  await s.close()
  t.same((await FileStore.open(dir)).notes, [], 'nothing to say the next time')
  const made = path.join(t.testdir({}), 'a', 'b')
  await FileStore.open(made)
  t.equal((await fs.stat(made)).mode & 0o777, 0o700, 'a new directory is made 0700')
})

t.test('a link at the snapshot\'s temp path is not followed', async (t) => {
  const dir = t.testdir({ victim: 'precious\n', state: {} })
  const stateDir = path.join(dir, 'state')
  const s = await FileStore.open(stateDir)
  const victim = path.join(dir, 'victim')
  await fs.symlink(victim, path.join(stateDir, 'state.json.tmp'))
  s.state.endpoints.a = ep('a')
  await s.commit()
  t.equal(await fs.readFile(victim, 'utf8'), 'precious\n', 'the link\'s target is untouched')
  t.ok((await fs.lstat(path.join(stateDir, 'state.json'))).isFile(), 'the snapshot is a file of its own')
  t.same(Object.keys((await FileStore.open(stateDir)).state.endpoints), ['a'])
})

t.test('a link in place of the journal or the snapshot is refused, its target untouched', async (t) => {
  const dir = t.testdir({ victim: 'precious\n', state: {} })
  const stateDir = path.join(dir, 'state')
  const victim = path.join(dir, 'victim')
  await fs.symlink(victim, path.join(stateDir, 'state.journal'))
  await t.rejects(FileStore.open(stateDir), { code: 'STORE', message: /state\.journal: it is a symbolic link/ })
  await fs.rm(path.join(stateDir, 'state.journal'))
  await fs.symlink(victim, path.join(stateDir, 'state.json'))
  await t.rejects(FileStore.open(stateDir), { code: 'STORE', message: /state\.json: it is a symbolic link/ })
  t.equal(await fs.readFile(victim, 'utf8'), 'precious\n')
})
