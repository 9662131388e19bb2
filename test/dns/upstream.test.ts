/**
 * Failover between upstreams with a fake clock: the order of events, never
 * wall-clock bounds. Upstreams are fake DNS servers on loopback; the clock
 * decides when the forwarder gives up waiting for one of them.
 */
import t from 'tap'
import dnsPacket from 'dns-packet'
import { Forwarder, parseUpstream } from '../../src/dns/upstream.js'
import { newMetrics } from '../../src/dns/metrics.js'
import { DnsServer } from '../../src/dns/server.js'
import { StaticRecordSource } from '../../src/dns/records.js'
import { datas, FakeClock, fakeUpstream, type FakeUpstream, query, rcode, udpDecoded } from '../harness/dns.js'
import { observe, until as untilChecked } from '../harness/until.js'

const until = (cond: () => boolean): Promise<void> => untilChecked(cond.toString(), cond, { everyMs: 2 })
/** The names an upstream was asked for, from the `from`th query on. */
const asked = (up: FakeUpstream, from: number): string[] => up.seen.slice(from).map((s) => s.q.questions?.[0]?.name ?? '')

/** An upstream that answers A 192.0.2.N while `on`, and stays silent otherwise. */
async function switchable (ip: string, n: number, events?: string[]): Promise<FakeUpstream & { on: boolean }> {
  const up = await fakeUpstream(ip, (q) => {
    events?.push(`${n} asked`)
    return sw.on ? { answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: `192.0.2.${n}` }] } : null
  })
  const sw = Object.assign(up, { on: true })
  return sw
}

function forwarder (t: Tap.Test, ups: readonly FakeUpstream[], clock: FakeClock, timeoutMs = 2000): Forwarder {
  const list = ups.map((u) => parseUpstream(u.spec))
  const f = new Forwarder({ upstreams: () => list, timeoutMs, downMs: 30_000, maxPending: 100, metrics: newMetrics(), clock })
  t.teardown(() => f.close())
  return f
}

/** Forward one query; the answer's data, or null. */
function ask (f: Forwarder, name: string, events?: string[]): Promise<string | null> {
  return new Promise((resolve) => f.forward(query(name), query(name).length, false, (resp) => {
    events?.push('answer')
    resolve(resp === null ? null : String(datas(dnsPacket.decode(resp))[0]))
  }))
}

t.test('the first upstream silent: the second is asked after the adaptive timeout, not the fixed one', async (t) => {
  const events: string[] = []
  const a = await switchable('127.53.3.1', 1, events)
  const b = await switchable('127.53.3.2', 2, events)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const clock = new FakeClock()
  const f = forwarder(t, [a, b], clock)
  // Learn a's round trip: it answers at once (0 ms by the fake clock).
  t.equal(await ask(f, 'warm.example'), '192.0.2.1')
  t.equal(f.hedgeMs(parseUpstream(a.spec)), 100, 'a fast upstream: the adaptive timeout is its floor, 100 ms')

  a.on = false
  events.length = 0
  const t0 = clock.now()
  const answer = ask(f, 'x.example', events)
  await until(() => a.seen.length === 2)
  t.same(clock.pending(), [100, 2000], 'waiting for a: 100 ms before b is asked too, 2 s before a is given up')
  clock.advance(99)
  t.equal(b.seen.length, 0, 'b not asked before the adaptive timeout')
  clock.advance(1)
  t.equal(await answer, '192.0.2.2', 'b\'s answer')
  t.same(events, ['1 asked', '2 asked', 'answer'], 'a asked, then b, then the answer')
  t.equal(clock.now() - t0, 100, 'answered 100 ms (by the clock) after a went silent; its 2 s timeout never ran out')
})

t.test('an upstream never heard from: asked with the initial estimate (300 ms); a slow one keeps its chance', async (t) => {
  const a = await switchable('127.53.3.3', 1)
  const b = await switchable('127.53.3.4', 2)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  a.on = false
  b.on = false
  const clock = new FakeClock()
  const f = forwarder(t, [a, b], clock)
  const answer = ask(f, 'cold.example')
  await until(() => a.seen.length === 1)
  t.same(clock.pending(), [300, 2000])
  clock.advance(300)
  await until(() => b.seen.length === 1)
  t.same(clock.pending(), [1700, 2000], 'both asked; each keeps its own 2 s')
  clock.advance(1700)
  clock.advance(300)
  t.equal(await answer, null, 'no answer from either: null after the last one\'s timeout')
})

t.test('a dead upstream is marked down, asked last, and probed in the background; back when it answers', async (t) => {
  const a = await switchable('127.53.3.5', 1)
  const b = await switchable('127.53.3.6', 2)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const clock = new FakeClock()
  const f = forwarder(t, [a, b], clock)
  t.equal(await ask(f, 'warm.example'), '192.0.2.1')
  a.on = false
  for (let i = 0; i < 3; i++) {
    const p = ask(f, `miss${i}.example`)
    await until(() => a.seen.length === 2 + i)
    clock.advance(100)
    t.equal(await p, '192.0.2.2', `miss ${i + 1}: b answered 100 ms later`)
  }
  t.ok(f.upstreamHealth()[0]!.downUntil > 0, 'three misses in a row: a is down')
  t.notOk(f.allDown())
  const seenA = a.seen.length
  const seenB = b.seen.length
  t.equal(await ask(f, 'fast.example'), '192.0.2.2', 'the next query: b at once, with no clock advance')
  t.equal(b.seen.length, seenB + 1)
  t.equal(a.seen.length, seenA, 'a not asked (its first probe is due 1 s after it went down)')
  clock.advance(1000)
  t.equal(await ask(f, 'probed.example'), '192.0.2.2', 'b at once')
  t.same(await observe(() => asked(a, seenA), (names) => names.length > 0), ['probed.example'], 'and a got a copy of it as a probe, not waited for')
  t.equal(await ask(f, 'again.example'), '192.0.2.2')
  t.equal(a.seen.length, seenA + 1, 'one probe per second at most')

  a.on = true
  clock.advance(1000)
  t.equal(await ask(f, 'probe.example'), '192.0.2.2')
  t.equal(await observe(() => f.upstreamHealth()[0]!.downUntil, (v) => v === 0), 0, 'the probe was answered: a is up again')
  const before = b.seen.length
  t.equal(await ask(f, 'back.example'), '192.0.2.1', 'a first again')
  t.equal(b.seen.length, before)
})

t.test('every upstream down: a cached answer served stale at once, the upstreams asked in the background', async (t) => {
  const a = await switchable('127.53.3.7', 1)
  t.teardown(() => a.close())
  const clock = new FakeClock()
  const server = new DnsServer({
    records: new StaticRecordSource([]), clientNetworks: () => ['n1'], upstreams: { servers: [a.spec] }, clock,
  })
  t.teardown(() => server.close())
  const [addr] = await server.listen([{ ip: '127.53.0.1', port: 0 }])
  t.same(datas(await udpDecoded(addr!, query('kept.example'))), ['192.0.2.1'])
  a.on = false
  clock.advance(120_000)
  // The first query after the upstream died waits for it (2 s by the clock) and gets the stale answer.
  const first = udpDecoded(addr!, query('kept.example'), undefined, 10_000)
  await until(() => a.seen.length === 2)
  clock.advance(2000)
  const r1 = await first
  t.same(datas(r1), ['192.0.2.1'])
  t.equal((r1.answers![0] as { ttl: number }).ttl, 30, 'stale: TTL 30')
  t.ok(server.metrics.cacheStale >= 1)
  // Now it is known down: the next one is answered stale without waiting at all.
  const r2 = await udpDecoded(addr!, query('kept.example'), undefined, 10_000)
  t.same(datas(r2), ['192.0.2.1'], 'stale at once, no clock advance')
  t.same(await observe(() => asked(a, 2), (names) => names.length > 0), ['kept.example'], 'and the upstream was asked in the background')
  t.equal(rcode(await (async () => {
    const p = udpDecoded(addr!, query('never.example'), undefined, 10_000)
    await until(() => a.seen.length === 4)
    clock.advance(2000)
    return await p
  })()), 'SERVFAIL', 'no cached answer: SERVFAIL once the upstream is given up')
  a.on = true
  clock.advance(60_000)
  t.same(datas(await udpDecoded(addr!, query('fresh.example'))), ['192.0.2.1'], 'upstream back (down period over): answered')
})
