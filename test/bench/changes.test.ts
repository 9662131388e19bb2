import t from 'tap'
import { accountChange, accountChanges, accountText, gcIn, medianAccount, monitorStamp, parseAgentLog, type DeltaLine } from '../../bench/changes.js'

const delta = (receivedAt: number, over: Partial<DeltaLine> = {}): DeltaLine =>
  ({ receivedAt, listenersMs: 0.2, queuedMs: 0.5, planMs: 0.1, kernelMs: 1.4, ops: 2, ...over })

t.test('parseAgentLog: delta lines with their fields and the GC probe\'s lines; bulk lines and others skipped', async (t) => {
  const log = [
    '--- harness: start 1',
    '{"level":20,"msg":"overlay peers programmed","ops":200000,"peers":100000}',
    '{"level":20,"overlay":"ov","ops":2,"peers":100001,"receivedAt":1000.5,"listenersMs":0.3,"queuedMs":0.4,"planMs":0.02,"kernelMs":1.1,"msg":"overlay peers programmed"}',
    '{"probe":"gc","at":1001.25,"ms":3.5,"kind":1}',
    '{"probe":"gc","at":10',
  ].join('\n')
  const { deltas, gcs, fulls, repairs } = parseAgentLog(log + '\n{"level":20,"time":"2026-12-07T12:00:00.500Z","readMs":1200,"planMs":300,"diffMs":200,"applyMs":5,"msg":"overlay full reconcile"}' +
    '\n{"level":20,"time":"2026-12-07T12:01:00.000Z","overlay":"ov","readMs":900,"diffMs":250,"lockWaitMs":1,"lockedMs":3,"ops":0,"dropped":0,"msg":"overlay repair"}')
  t.same(deltas, [{ receivedAt: 1000.5, listenersMs: 0.3, queuedMs: 0.4, planMs: 0.02, kernelMs: 1.1, ops: 2 }])
  t.same(gcs, [{ at: 1001.25, ms: 3.5 }])
  t.same(fulls, [{ endAt: Date.UTC(2026, 11, 7, 12, 0, 0, 500), ms: 1705, readMs: 1200 }])
  t.same(repairs, [{ endAt: Date.UTC(2026, 11, 7, 12, 1, 0, 0), ms: 1154, readMs: 900 }], 'the periodic repair: read, diff, lock wait and locked part')
})

t.test('accountChanges: a change that ran during a periodic repair says so (it did not wait behind it)', async (t) => {
  const ws = [{ startAt: 1000, ackAt: 1001, seenAt: 1030 }, { startAt: 3000, ackAt: 3001, seenAt: 3003 }]
  const accounts = accountChanges(ws, [delta(1002), delta(3001)], [], [], [{ endAt: 2000, ms: 1500, readMs: 900 }])
  t.same(accounts.map((a) => a.during), [{ ms: 1500, readMs: 900 }, undefined])
  t.same(accounts.map((a) => a.behind), [undefined, undefined])
  t.match(accountText(accounts[0]!), /during a periodic repair of 1500\.0 ms \(kernel read 900\.0\)\)$/)
})

t.test('accountChange splits a change into delivery, DNS, wait, plan, kernel and the watcher; GC and CPU of its window', async (t) => {
  // A GC pause half inside the change, one wholly before it.
  const gcs = [{ at: 990, ms: 4 }, { at: 1010, ms: 20 }]
  const d = delta(1002, { listenersMs: 0.25, queuedMs: 0.75, planMs: 0.5, kernelMs: 2 })
  const [a] = accountChanges([{ startAt: 1000, ackAt: 1001, seenAt: 1020, sched0: [1e6, 2e6], sched1: [4e6, 7e6] }], [delta(900), d], gcs)
  if (!a) throw new Error('no account')
  // The kernel was done at 1002 + 0.75 + 0.5 + 2 = 1005.25: the rest is the watcher's. Half the second GC pause is inside.
  t.same(a, {
    totalMs: 20, ackMs: 1, gcMs: 10, runMs: 3, cpuWaitMs: 5, deliveryMs: 2, listenersMs: 0.25, waitMs: 0.5, planMs: 0.5, kernelMs: 2,
    answeredMs: 5.25, watcherMs: 14.75, matched: true,
  })
  t.match(accountText(a), /^20\.0 ms = Redis\+pubsub 2\.0 \(ack 1\.0\) \+ DNS 0\.3 \+ wait 0\.5 \+ plan 0\.5 \+ kernel 2\.0 \+ watcher 14\.8 \(GC 10\.0; agent ran 3\.0, waited for a CPU 5\.0/)
})

t.test('accountChange without a delta line in the window, or without schedstat', async (t) => {
  const [a] = accountChanges([{ startAt: 1000, ackAt: 1001, seenAt: 1010 }], [delta(1011)], [])
  if (!a) throw new Error('no account')
  t.equal(a.matched, false)
  t.equal(a.totalMs, 10)
  t.ok(Number.isNaN(a.kernelMs) && Number.isNaN(a.runMs))
  t.match(accountText(a), /no delta line of its own/)
})

t.test('accountChanges: a delta line is one change\'s; changes coalesced behind a full reconcile say so', async (t) => {
  // Three changes 300 ms apart, all seen at 2,700: a full reconcile ran 100–2,650; one delta after it.
  const ws = [0, 300, 600].map((startAt) => ({ startAt, ackAt: startAt + 1, seenAt: 2700 }))
  const accounts = accountChanges(ws, [delta(2660)], [], [{ endAt: 2650, ms: 2550, readMs: 1300 }])
  t.same(accounts.map((a) => a.matched), [true, false, false], 'the delta line is the first change\'s only')
  t.same(accounts.map((a) => a.behind), [{ ms: 2550, readMs: 1300 }, { ms: 2550, readMs: 1300 }, { ms: 2550, readMs: 1300 }])
  t.match(accountText(accounts[1]!), /no delta line of its own .*behind a full reconcile of 2550\.0 ms \(kernel read 1300\.0\)/)
})

t.test('medianAccount: per part over the matched changes; undefined when none matched', async (t) => {
  const w = (startAt: number, seenAt: number): ReturnType<typeof accountChange> => accountChange({ startAt, ackAt: startAt, seenAt }, delta(startAt + 1), [])
  const m = medianAccount([w(0, 3), w(100, 105), w(200, 210), accountChange({ startAt: 300, ackAt: 300, seenAt: 400 }, undefined, [])])
  t.equal(m?.totalMs, 5)
  t.equal(m?.deliveryMs, 1)
  t.equal(medianAccount([]), undefined)
})

t.test('monitorStamp: the text of an `ip -ts monitor` line and its stamp as unix ms (local time, µs kept)', async (t) => {
  const r = monitorStamp('[2026-12-07T11:46:40.383060] 10.9.9.9 dev d0 lladdr 02:00:00:00:00:01 PERMANENT ')
  t.equal(r.text, '10.9.9.9 dev d0 lladdr 02:00:00:00:00:01 PERMANENT ')
  t.ok(Math.abs(r.unixMs! - (new Date(2026, 11, 7, 11, 46, 40).getTime() + 383.06)) < 1e-6)
  t.same(monitorStamp('Deleted 10.9.9.9 dev d0 FAILED'), { text: 'Deleted 10.9.9.9 dev d0 FAILED' })
  t.same(monitorStamp('[not a stamp] x'), { text: '[not a stamp] x' })
})

t.test('gcIn: the pauses inside a span, counted by their overlap', async (t) => {
  const gcs = [{ at: 0, ms: 10 }, { at: 95, ms: 10 }, { at: 50, ms: 2 }, { at: 200, ms: 30 }]
  t.same(gcIn(gcs, 5, 100), { ms: 5 + 5 + 2, count: 3, longest: 10 })
  t.same(gcIn(gcs, 110, 190), { ms: 0, count: 0, longest: 0 })
})
