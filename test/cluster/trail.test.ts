import t from 'tap'
import { ChangeTrail, MAX_HELD, TRAIL_LENGTH, revOf } from '../../src/cluster/trail.js'

const msg = (rev: number, what = 'a'): Record<string, unknown> => ({ rev, kind: 'endpoint-withdrawn', overlay: 'ov', endpointId: `${what}${rev}`, hostId: 'h1' })

/** A trail that handed on revisions from..to (what `what` names them). */
function trailOf (from: number, to: number, what = 'a'): ChangeTrail {
  const trail = new ChangeTrail()
  for (let r = from; r <= to; r++) trail.received(msg(r, what))
  return trail
}

t.test('revOf: a positive safe integer only', async (t) => {
  t.equal(revOf(msg(7)), 7)
  for (const raw of [null, 'x', {}, { rev: '7' }, { rev: 0 }, { rev: -1 }, { rev: 1.5 }, { rev: 2 ** 60 }]) t.equal(revOf(raw), undefined, JSON.stringify(raw))
})

t.test('the same history: the logged changes after the last one handed on, then the held ones after the store\'s revision', async (t) => {
  const trail = trailOf(1, 10)
  t.equal(trail.last, 10)
  trail.hold()
  t.equal(trail.received(msg(12)), false, 'held while away')
  t.equal(trail.received(msg(13)), false)
  const out = trail.release({ rev: 12, changes: [8, 9, 10, 11, 12].map((r) => msg(r)) })
  t.same(out?.map(revOf), [11, 12, 13], '12 once: from the log')
  t.equal(trail.last, 13)
  t.notOk(trail.holding)
  t.ok(trail.received(msg(14)), 'handed on at once again')
})

t.test('nothing missed: an empty list, the trail as it was', async (t) => {
  const trail = trailOf(100, 105)
  trail.hold()
  t.same(trail.release({ rev: 105, changes: [104, 105].map((r) => msg(r)) }), [])
  t.equal(trail.last, 105)
})

t.test('another history means a full read (undefined) and a fresh trail', async (t) => {
  const cases: Array<[string, { rev: number, changes: unknown[] } | undefined]> = [
    ['no log (a backend without one, or one that does not reach back)', undefined],
    ['the store is behind (it lost the last changes)', { rev: 8, changes: [] }],
    ['the last revision handed on has another message there', { rev: 11, changes: [msg(9), msg(10, 'b'), msg(11)] }],
    ['an earlier one differs', { rev: 11, changes: [msg(9, 'b'), msg(10), msg(11)] }],
    ['the log does not hold the last one handed on', { rev: 11, changes: [msg(11)] }],
    ['a revision missing after it', { rev: 12, changes: [msg(10), msg(12)] }],
    ['a revision twice after it', { rev: 11, changes: [msg(10), msg(11), msg(11)] }],
    ['the log ends before the store\'s revision', { rev: 12, changes: [msg(10), msg(11)] }],
    ['an entry without a revision', { rev: 11, changes: [msg(10), { kind: 'x' }, msg(11)] }],
    ['a revision that is not a safe integer', { rev: 2 ** 60, changes: [msg(10)] }],
  ]
  for (const [what, logged] of cases) {
    const trail = trailOf(1, 10)
    trail.hold()
    t.equal(trail.release(logged), undefined, what)
    t.equal(trail.last, undefined, `${what}: starts afresh`)
    t.notOk(trail.holding)
  }
})

t.test('not a reconnection, or never received anything: a full read', async (t) => {
  const fresh = new ChangeTrail()
  fresh.hold()
  t.equal(fresh.release({ rev: 5, changes: [msg(5)] }), undefined)
  const trail = trailOf(1, 3)
  t.equal(trail.release(undefined), undefined)
})

t.test('too many held while away: a full read', async (t) => {
  const trail = trailOf(1, 2)
  trail.hold()
  for (let r = 3; r <= MAX_HELD + 3; r++) trail.received(msg(r))
  t.equal(trail.release({ rev: 2, changes: [msg(2)] }), undefined)
})

t.test('only the last TRAIL_LENGTH messages are compared: older log entries are not held against it', async (t) => {
  const trail = trailOf(1, TRAIL_LENGTH + 10)
  trail.hold()
  const logged = [msg(1, 'other'), ...Array.from({ length: TRAIL_LENGTH }, (_, i) => msg(i + 11))]
  t.same(trail.release({ rev: TRAIL_LENGTH + 10, changes: logged }), [])
})
