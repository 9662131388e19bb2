import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { FileStore } from '../../src/store/store.js'

t.test('commit is durable, coalesced, and survives a reopen', async (t) => {
  const dir = t.testdir({})
  const s = await FileStore.open(dir)
  s.state.networks.x = { id: 'x' } as never
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
  await t.rejects(FileStore.open(t.testdir({ 'state.json': '{nope' })), { code: 'STORE', message: /cannot read state file/ })
  await t.rejects(FileStore.open(t.testdir({ 'state.json': '{"version": 99}' })), { code: 'STORE', message: /version 99/ })
})
