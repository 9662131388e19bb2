/** The TCP limits' defaults and validation (the limits at work: test/dns/server.abuse.test.ts). */
import t from 'tap'
import { DEFAULT_TCP_LIMITS, tcpLimits } from '../../src/dns/tcp.js'

t.test('defaults, overrides, and values that are not positive integers', async (t) => {
  t.same(tcpLimits(), DEFAULT_TCP_LIMITS)
  t.equal(tcpLimits({ maxQueries: 3 }).maxQueries, 3)
  t.equal(tcpLimits({ maxQueries: 3 }).idleMs, DEFAULT_TCP_LIMITS.idleMs, 'the others keep their defaults')
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    t.throws(() => tcpLimits({ idleMs: bad }), { code: 'INVALID_OPTION', message: /tcp\.idleMs must be a positive integer/ }, String(bad))
  }
  t.ok(DEFAULT_TCP_LIMITS.maxQueuedBytes >= DEFAULT_TCP_LIMITS.highWaterBytes + 2 + 65535, 'a connection can hold one largest answer past the high-water mark')
  t.ok(Object.isFrozen(DEFAULT_TCP_LIMITS))
})
