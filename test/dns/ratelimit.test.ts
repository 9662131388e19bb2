/** The per-source token buckets and their bounded table (pure, with a fake clock). */
import t from 'tap'
import { RateLimiter, rateKey } from '../../src/dns/ratelimit.js'

t.test('a bucket per source: burst, then perSecond', async (t) => {
  let now = 0
  const rl = new RateLimiter({ perSecond: 10, burst: 2 }, () => now)
  t.same([rl.take('a'), rl.take('a'), rl.take('a')], [true, true, false])
  now = 100
  t.same([rl.take('a'), rl.take('a')], [true, false], 'refills at perSecond')
  t.same([rl.take('b'), rl.take('b'), rl.take('b')], [true, true, false], 'another source has its own bucket')
  t.throws(() => new RateLimiter({ perSecond: 0, burst: 1 }))
  t.throws(() => new RateLimiter({ perSecond: 1, burst: 1 }, () => 0, 1))
})

t.test('the table is bounded, and forgets the sources seen longest ago first', async (t) => {
  const rl = new RateLimiter({ perSecond: 1, burst: 1 }, () => 0, 4)
  for (const s of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) rl.take(s)
  t.ok(rl.size <= 4, `at most maxSources remembered (${rl.size})`)
  t.same(['f', 'g'].map((s) => rl.take(s)), [false, false], 'the latest sources are remembered (their buckets stay empty)')
  t.equal(rl.take('a'), true, 'the oldest was forgotten (forgiven)')
})

t.test('a flood of 100,000 spoofed sources does not reset a busy client\'s limit', async (t) => {
  let now = 0
  const rl = new RateLimiter({ perSecond: 2000, burst: 4000 }, () => now)
  let allowed = 0
  for (let i = 0; i < 4000; i++) if (rl.take('10.0.0.2')) allowed++
  t.equal(allowed, 4000, 'the client spends its burst')
  t.equal(rl.take('10.0.0.2'), false, 'then it is limited')
  let during = 0
  for (let i = 0; i < 100_000; i++) {
    rl.take(`spoofed-${i}`)
    if (i % 1000 === 999 && rl.take('10.0.0.2')) during++
  }
  t.equal(during, 0, 'still limited during the flood (the clock did not move: no refill is due)')
  t.equal(rl.take('10.0.0.2'), false, 'and after it')
  t.ok(rl.size <= 65_536, `the table stays bounded (${rl.size})`)
  now = 1 // 1 ms: 2 tokens
  t.same([rl.take('10.0.0.2'), rl.take('10.0.0.2'), rl.take('10.0.0.2')], [true, true, false], 'its bucket refills as before')
})

t.test('rateKey: an address per IPv4 source and per known client; an unknown IPv6 source\'s whole /64 shares one bucket', async (t) => {
  const clients = new Set(['fd00:1::2', 'fd00:1::3'])
  const isClient = (s: string): boolean => clients.has(s)
  t.equal(rateKey('10.1.0.2', () => { throw new Error('not asked for IPv4') }), '10.1.0.2', 'IPv4: the address, no client lookup')
  t.equal(rateKey('fd00:1::2', isClient), 'fd00:1::2', 'a known IPv6 client has its own bucket')
  t.equal(rateKey('fd00:1::3', isClient), 'fd00:1::3', 'as has its neighbour in the same /64')
  t.equal(rateKey('fd00:1::dead:beef', isClient), 'fd00:1::/64', 'an address a container made up: its /64')
  t.equal(rateKey('fd00:1::1234', isClient), 'fd00:1::/64', 'another one: the same bucket')
  t.equal(rateKey('fd00:2::1', isClient), 'fd00:2::/64', 'another /64: another bucket')
  t.equal(rateKey('fe80::1%eth0', isClient), 'fe80::/64', 'a zone is left out')
  t.equal(rateKey('not:an:address', isClient), 'not:an:address', 'unreadable: its own key')

  // A container rotating through made-up addresses of its /64 is limited like one source.
  const rl = new RateLimiter({ perSecond: 1, burst: 3 }, () => 0)
  const taken = Array.from({ length: 10 }, (_, i) => rl.take(rateKey(`fd00:1::${(i + 100).toString(16)}`, isClient)))
  t.same(taken.filter(Boolean).length, 3, 'ten addresses of one /64: one burst in all')
  t.equal(rl.take(rateKey('fd00:1::2', isClient)), true, 'a real client of that /64 is not starved')
})
