/** The reconcile counters of `ferry status` and the metrics, and the periodic round (src/driver/reconciler.ts), over a fake driver and store. */
import t from 'tap'
import { periodicRound, Reconciler, startPeriodic } from '../../src/driver/reconciler.js'
import { until } from '../harness/until.js'
import { silentLog } from '../harness/fakes.js'

function world () {
  const results: Array<{ links: number, firewall: boolean } | Error> = []
  let lossGone = false
  const order: string[] = []
  const r = new Reconciler({
    driver: {
      reconcile: async () => {
        order.push('reconcile')
        const next = results.shift() ?? { links: 0, firewall: false }
        if (next instanceof Error) throw next
        return next
      },
    },
    store: { recheckLoss: async () => { order.push('recheck'); const gone = lossGone; lossGone = false; return gone } },
    log: silentLog,
    now: () => new Date('2026-01-02T03:04:05.000Z'),
  })
  return { r, results, order, lossGone: () => { lossGone = true } }
}

t.test('runs, repairs and when: a repair is a run that changed links or the firewall', async (t) => {
  const w = world()
  w.results.push({ links: 0, firewall: false }, { links: 2, firewall: false }, { links: 0, firewall: true })
  t.same(await w.r.run('start'), { links: 0, firewall: false })
  t.same(await w.r.run('periodic'), { links: 2, firewall: false })
  t.same(await w.r.run('requested'), { links: 0, firewall: true })
  t.same(w.r.counters, { runs: 3, repairs: 2, lastError: '', lastAt: '2026-01-02T03:04:05.000Z' })
  t.same(w.order, ['recheck', 'reconcile', 'recheck', 'reconcile', 'recheck', 'reconcile'], 'the store looks for moved-out damaged files before each')
})

t.test('a failure is counted as the last error, thrown as a KERNEL error, and cleared by the next success', async (t) => {
  const w = world()
  w.results.push(new Error('netlink dump interrupted'))
  await t.rejects(w.r.run('periodic'), { code: 'KERNEL' })
  t.same(w.r.counters, { runs: 0, repairs: 0, lastError: 'reconcile failed: netlink dump interrupted', lastAt: '' })
  await w.r.run('requested')
  t.same(w.r.counters, { runs: 1, repairs: 0, lastError: '', lastAt: '2026-01-02T03:04:05.000Z' })
})

t.test('the periodic round: recovery (while there is one), reconcile, collection; failures logged once, never thrown', async (t) => {
  const done: string[] = []
  const warned: string[] = []
  let recovery: { run (): Promise<void> } | undefined = { run: async () => { done.push('recovery') } }
  let collectFails = false
  const work = {
    recovery: () => recovery,
    reconciler: { run: async (why: string) => { done.push(`reconcile ${why}`); throw new Error('logged by the reconciler') } },
    collector: { collect: async () => { done.push('collect'); if (collectFails) throw new Error('engine gone') } },
    log: { warn: (_o: unknown, msg: string) => { warned.push(msg) } },
  }
  await periodicRound(work)
  t.same(done.sort(), ['collect', 'reconcile periodic', 'recovery'], 'all three, the reconcile as periodic')
  t.same(warned, [], 'a failed reconcile is not logged twice')
  done.length = 0
  recovery = undefined
  collectFails = true
  await periodicRound(work)
  t.same(done.sort(), ['collect', 'reconcile periodic'], 'no recovery once the loss is handled')
  t.same(warned, ['collecting orphaned endpoints failed'])
})

t.test('startPeriodic runs rounds until stopped', async (t) => {
  let rounds = 0
  const stop = startPeriodic(5, {
    reconciler: { run: async () => { rounds++; return {} } },
    collector: { collect: async () => undefined },
    log: silentLog,
  })
  await until('three rounds', () => rounds >= 3)
  stop()
  const after = rounds
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(rounds, after, 'no round after stop')
})
