/** The reconcile counters of `ferry status` and the metrics (src/driver/reconciler.ts) over a fake driver and store. */
import t from 'tap'
import { Reconciler } from '../../src/driver/reconciler.js'
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
