import t from 'tap'
import { observe, until, untilValue } from './until.js'

t.test('untilValue returns the first value that is not undefined, null or false', async (t) => {
  let n = 0
  const seen: number[] = []
  const v = await untilValue('n to reach 3', () => { seen.push(++n); return n >= 3 ? `n=${n}` : (n === 1 ? null : false) }, { everyMs: 1 })
  t.equal(v, 'n=3')
  t.same(seen, [1, 2, 3], 'checked once per round, stopped at the first value')
  t.equal(await untilValue('zero', () => 0), 0, '0 is a value')
})

t.test('until: a condition that never holds fails with its name; a check that throws fails at once', async (t) => {
  await t.rejects(until('the moon to turn blue', () => false, { timeoutMs: 30, everyMs: 5 }), { message: 'timed out after 30 ms waiting for the moon to turn blue' })
  let calls = 0
  await t.rejects(until('anything', () => { calls++; throw new Error('it exited') }), { message: 'it exited' })
  t.equal(calls, 1)
})

t.test('everyMs 0 yields to pending callbacks between checks (no timer)', async (t) => {
  let flag = false
  setImmediate(() => { setImmediate(() => { flag = true }) })
  await until('the flag', () => flag, { everyMs: 0 })
  t.equal(flag, true)
})

t.test('a number is the timeout; async checks are awaited', async (t) => {
  let n = 0
  await until('async n', async () => ++n === 2, 1000)
  t.equal(n, 2)
})

t.test('observe returns the last value, whether or not it is done', async (t) => {
  let n = 0
  t.equal(await observe(() => ++n, (v) => v === 3, { everyMs: 1 }), 3)
  n = 0
  t.equal(await observe(() => ++n, () => false, { timeoutMs: 20, everyMs: 5 }) >= 2, true, 'the last of several checks')
})
