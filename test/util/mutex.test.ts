import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { KeyedMutex, RwLock } from '../../src/util/mutex.js'

t.test('readers run together; the writer waits for them and holds back new ones', async (t) => {
  const rw = new RwLock()
  const log: string[] = []
  const reader = (name: string, ms: number) => rw.read(async () => { log.push(`${name}+`); await sleep(ms); log.push(`${name}-`) })
  const r1 = reader('r1', 30)
  const r2 = reader('r2', 10)
  await sleep(1)
  const w = rw.write(async () => { log.push('w+'); await sleep(10); log.push('w-') })
  await sleep(1)
  const r3 = reader('r3', 1)
  await Promise.all([r1, r2, w, r3])
  t.same(log, ['r1+', 'r2+', 'r2-', 'r1-', 'w+', 'w-', 'r3+', 'r3-'])
})

t.test('a failing writer releases the lock', async (t) => {
  const rw = new RwLock()
  await t.rejects(rw.write(async () => { throw new Error('boom') }), /boom/)
  t.equal(await rw.read(async () => 42), 42)
})

t.test('keyed mutex serializes per key only', async (t) => {
  const m = new KeyedMutex()
  const log: string[] = []
  await Promise.all([
    m.run('a', async () => { log.push('a1+'); await sleep(10); log.push('a1-') }),
    m.run('a', async () => { log.push('a2+'); log.push('a2-') }),
    m.run('b', async () => { log.push('b+'); log.push('b-') }),
  ])
  t.same(log, ['a1+', 'b+', 'b-', 'a1-', 'a2+', 'a2-'])
})
