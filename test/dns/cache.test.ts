/**
 * The forwarded-answer cache alone (no sockets): keys, TTLs, negative caching,
 * bounds, prefetch, stale serving, flushing by name. Time is passed in.
 */
import t from 'tap'
import dnsPacket, { type Answer, type Packet } from 'dns-packet'
import { cacheKey, DnsCache, parseForCache, STALE_TTL } from '../../src/dns/cache.js'
import { newMetrics } from '../../src/dns/metrics.js'
import { parseQuery, Parse, Query, wireKey } from '../../src/dns/wire.js'
import { DnsServer, type DnsServerOptions } from '../../src/dns/server.js'
import { StaticRecordSource } from '../../src/dns/records.js'
import { datas, FakeClock, fakeUpstream, type Handler, query, rcode, udpDecoded } from '../harness/dns.js'
import { until as untilChecked } from '../harness/until.js'

const T0 = 5_000_000

function parsed (msg: Buffer): Query {
  const q = new Query()
  if (parseQuery(msg, q) !== Parse.Ok) throw new Error('bad query')
  return q
}

function respond (msg: Buffer, over: Partial<Packet> & { rcode?: number }): Buffer {
  const q = dnsPacket.decode(msg)
  const { rcode = 0, ...rest } = over
  return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED | rcode, questions: q.questions, ...rest })
}

const soa = (ttl: number, minimum: number): Answer => ({
  type: 'SOA', name: 'example', ttl, data: { mname: 'ns.example', rname: 'admin.example', serial: 1, refresh: 60, retry: 60, expire: 600, minimum },
} as Answer)

function put (c: DnsCache, msg: Buffer, resp: Buffer, now = T0): boolean {
  const q = parsed(msg)
  return c.store(cacheKey(q), q.key, resp, q.qEnd, now)
}

function get (c: DnsCache, msg: Buffer, now: number): dnsPacket.DecodedPacket | undefined {
  const q = parsed(msg)
  const hit = c.lookup(cacheKey(q), msg, q, now)
  return hit === undefined ? undefined : dnsPacket.decode(hit.resp)
}

t.test('positive answer: served with the client\'s id and case, TTLs decremented, gone at expiry', async (t) => {
  const m = newMetrics()
  const c = new DnsCache({}, m)
  const ask = query('www.example.com', 'A', { id: 1 })
  t.ok(put(c, ask, respond(ask, { answers: [{ type: 'A', name: 'www.example.com', ttl: 60, data: '192.0.2.1' }, { type: 'A', name: 'www.example.com', ttl: 100, data: '192.0.2.2' }] })))
  t.equal(m.cacheEntries, 1)
  const again = query('WWW.Example.com', 'A', { id: 9 })
  const r = get(c, again, T0 + 10_500)!
  t.equal(r.id, 9, 'the client\'s id')
  t.equal(r.questions?.[0]?.name, 'WWW.Example.com', 'the client\'s question, case kept')
  t.same(r.answers?.map((a) => (a as { ttl: number }).ttl), [50, 90], 'each TTL minus the 10 s held')
  t.same(r.answers?.map((a) => (a as { data: string }).data), ['192.0.2.1', '192.0.2.2'])
  t.ok(get(c, again, T0 + 59_999), 'fresh until the smallest TTL ends')
  t.equal(get(c, again, T0 + 60_000), undefined, 'expired at 60 s')
  t.equal(m.cacheHits, 2)
  t.equal(m.cacheMisses, 1)
})

t.test('the key: type, class, RD, CD, EDNS and DO apart; EDNS size and options not', async (t) => {
  const c = new DnsCache()
  const a = query('k.example', 'A')
  put(c, a, respond(a, { answers: [{ type: 'A', name: 'k.example', ttl: 60, data: '192.0.2.1' }] }))
  t.equal(get(c, query('k.example', 'AAAA'), T0), undefined, 'another type misses')
  t.equal(get(c, query('k.example', 'A', { edns: 1232 }), T0), undefined, 'with EDNS misses (its answer carries an OPT record)')
  const noRd = Buffer.from(a)
  noRd[2] = noRd[2]! & ~1
  t.equal(get(c, noRd, T0), undefined, 'RD clear misses')
  const cd = Buffer.from(a)
  cd[3] = cd[3]! | 0x10
  t.equal(get(c, cd, T0), undefined, 'CD set misses')
  const e = query('k.example', 'A', { edns: 1232, options: [{ code: 10, data: Buffer.alloc(8, 1) }] })
  const withCookie = respond(e, { answers: [{ type: 'A', name: 'k.example', ttl: 60, data: '192.0.2.7' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [{ code: 10, data: Buffer.alloc(24, 2) }] } as unknown as Answer] })
  put(c, e, withCookie)
  const r = get(c, query('k.example', 'A', { edns: 4096 }), T0 + 1000)!
  t.same(r.answers?.map((x) => (x as { data: string }).data), ['192.0.2.7'], 'another EDNS size and no options: same entry')
  const opt = r.additionals?.find((x) => x.type === 'OPT') as unknown as { options: unknown[] }
  t.same(opt.options, [], 'the upstream\'s cookie is not replayed to other clients')
  const doq = dnsPacket.decode(query('k.example', 'A', { edns: 1232 }))
  const withDo = dnsPacket.encode({ ...doq, additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK, options: [] } as unknown as Answer] } as Packet)
  t.equal(get(c, withDo, T0), undefined, 'DO set misses')
})

t.test('negative answers (RFC 2308): NXDOMAIN and NODATA by the SOA, none without SOA', async (t) => {
  const m = newMetrics()
  const c = new DnsCache({}, m)
  const nx = query('nope.example')
  t.ok(put(c, nx, respond(nx, { rcode: 3, authorities: [soa(3600, 30)] })), 'NXDOMAIN with SOA: kept')
  const r = get(c, nx, T0 + 5000)!
  t.equal((r as { rcode?: string }).rcode, 'NXDOMAIN')
  t.equal((r.authorities?.[0] as { ttl: number }).ttl, 25, 'the SOA\'s TTL is the negative TTL (30 s), decremented')
  t.ok(get(c, nx, T0 + 29_999))
  t.equal(get(c, nx, T0 + 30_000), undefined, 'gone after the SOA MINIMUM (30 s), not its TTL (3600 s)')
  const nodata = query('v4only.example', 'AAAA')
  t.ok(put(c, nodata, respond(nodata, { authorities: [soa(20, 300)] })), 'NODATA with SOA: kept')
  t.ok(get(c, nodata, T0 + 19_000))
  t.equal(get(c, nodata, T0 + 20_000), undefined, 'for min(SOA TTL, MINIMUM) = 20 s')
  const bare = query('bare.example')
  t.notOk(put(c, bare, respond(bare, { rcode: 3 })), 'NXDOMAIN without SOA: not kept')
  const sf = query('sf.example')
  t.notOk(put(c, sf, respond(sf, { rcode: 2 })), 'SERVFAIL: not kept')
  const tc = query('tc.example')
  t.notOk(put(c, tc, respond(tc, { flags: dnsPacket.TRUNCATED_RESPONSE, answers: [{ type: 'A', name: 'tc.example', ttl: 60, data: '192.0.2.1' }] })), 'truncated: not kept')
  const long = query('long.example')
  t.ok(put(c, long, respond(long, { rcode: 3, authorities: [soa(86400, 86400)] })))
  t.ok(get(c, long, T0 + 299_000))
  t.equal(get(c, long, T0 + 300_000), undefined, 'negative TTL capped at 300 s')
  t.equal(m.cacheUncacheable, 3)
})

t.test('TTL cap and floor', async (t) => {
  const c = new DnsCache({ ttlCap: 100, ttlFloor: 5 })
  const big = query('big.example')
  put(c, big, respond(big, { answers: [{ type: 'A', name: 'big.example', ttl: 86400, data: '192.0.2.1' }] }))
  t.equal((get(c, big, T0)!.answers![0] as { ttl: number }).ttl, 100, 'capped in the answer too')
  t.equal(get(c, big, T0 + 100_000), undefined, 'and in the cache')
  const zero = query('zero.example')
  t.ok(put(c, zero, respond(zero, { answers: [{ type: 'A', name: 'zero.example', ttl: 0, data: '192.0.2.1' }] })), 'TTL 0 raised to the floor')
  t.equal((get(c, zero, T0 + 4000)!.answers![0] as { ttl: number }).ttl, 1)
  const noFloor = new DnsCache()
  t.notOk(put(noFloor, zero, respond(zero, { answers: [{ type: 'A', name: 'zero.example', ttl: 0, data: '192.0.2.1' }] })), 'TTL 0 without a floor: not kept')
})

t.test('bounded: LRU eviction by entries and by bytes', async (t) => {
  const m = newMetrics()
  const c = new DnsCache({ maxEntries: 3 }, m)
  const ask = (i: number): Buffer => query(`n${i}.example`)
  const ans = (i: number): Buffer => respond(ask(i), { answers: [{ type: 'A', name: `n${i}.example`, ttl: 60, data: '192.0.2.1' }] })
  for (const i of [1, 2, 3]) put(c, ask(i), ans(i))
  t.ok(get(c, ask(1), T0), 'n1 used: now the most recent')
  put(c, ask(4), ans(4))
  t.equal(c.size, 3)
  t.equal(get(c, ask(2), T0), undefined, 'the least recently used (n2) went')
  t.ok(get(c, ask(1), T0))
  t.equal(m.cacheEvictions, 1)
  const small = new DnsCache({ maxBytes: 1000 }, newMetrics())
  for (let i = 0; i < 50; i++) put(small, ask(i), ans(i))
  t.ok(small.size > 0 && small.size < 10, `a 1000-byte cache holds a few entries (${small.size})`)
  t.ok(small.stats.cacheBytes <= 1000)
})

t.test('prefetch: a popular entry, once, in the last 10% of its TTL', async (t) => {
  const c = new DnsCache()
  const ask = query('hot.example')
  const q = parsed(ask)
  const key = cacheKey(q)
  put(c, ask, respond(ask, { answers: [{ type: 'A', name: 'hot.example', ttl: 100, data: '192.0.2.1' }] }))
  const hit = (now: number): boolean => c.lookup(key, ask, q, now)!.prefetch
  t.same([hit(T0 + 1000), hit(T0 + 2000), hit(T0 + 3000)], [false, false, false], 'popular but far from expiry')
  t.equal(hit(T0 + 90_000), true, 'in the last 10 s: prefetch')
  t.equal(hit(T0 + 91_000), false, 'once')
  c.prefetchFailed(key)
  t.equal(hit(T0 + 92_000), true, 'again after a failed prefetch')
  const fresh = c.queryFor(key)!
  const dq = dnsPacket.decode(fresh.msg)
  t.same(dq.questions, [{ name: 'hot.example', type: 'A', class: 'IN' }], 'the refresh asks the same question')
  t.ok(dq.flag_rd)
  const once = query('cold.example')
  put(c, once, respond(once, { answers: [{ type: 'A', name: 'cold.example', ttl: 100, data: '192.0.2.1' }] }))
  const cq = parsed(once)
  t.equal(c.lookup(cacheKey(cq), once, cq, T0 + 95_000)!.prefetch, false, 'asked once: not prefetched')
})

t.test('stale (RFC 8767): an expired entry with TTL 30, within the stale window', async (t) => {
  const c = new DnsCache({ staleSeconds: 3600 })
  const ask = query('old.example')
  const q = parsed(ask)
  put(c, ask, respond(ask, { answers: [{ type: 'A', name: 'old.example', ttl: 60, data: '192.0.2.1' }] }))
  t.equal(get(c, ask, T0 + 120_000), undefined, 'expired: a miss')
  const s = dnsPacket.decode(c.stale(cacheKey(q), ask, q, T0 + 120_000)!)
  t.equal((s.answers![0] as { ttl: number }).ttl, STALE_TTL)
  t.equal(c.stale(cacheKey(q), ask, q, T0 + 60_000 + 3600_000), undefined, 'past the stale window: none')
})

t.test('flushName drops every entry of a name', async (t) => {
  const c = new DnsCache()
  for (const type of ['A', 'AAAA'] as const) {
    const ask = query('db.example', type)
    put(c, ask, respond(ask, { authorities: [soa(60, 60)] }))
  }
  const other = query('other.example')
  put(c, other, respond(other, { rcode: 3, authorities: [soa(60, 60)] }))
  t.equal(c.flushName(wireKey('DB.example.')), 2)
  t.equal(c.size, 1)
  t.equal(c.flush(), 1)
  t.equal(c.stats.cacheEntries, 0)
  t.equal(c.stats.cacheBytes, 0)
})

t.test('malformed responses are not stored', async (t) => {
  const ask = query('m.example')
  const good = respond(ask, { answers: [{ type: 'A', name: 'm.example', ttl: 60, data: '192.0.2.1' }] })
  const q = parsed(ask)
  for (let cut = q.qEnd; cut < good.length; cut++) t.equal(parseForCache(good.subarray(0, cut), q.qEnd), undefined, `cut at ${cut}`)
  t.ok(parseForCache(good, q.qEnd))
})

// ------------------------------------------------ through the server (loopback upstream, fake clock)

const SERVER_IP = '127.53.0.1'
const C1 = '127.53.10.1' // on n1
const C2 = '127.53.10.2' // on n2
const nets: Record<string, readonly string[]> = { [C1]: ['n1'], [C2]: ['n2'] }

const until = (cond: () => boolean): Promise<void> => untilChecked(cond.toString(), cond, { everyMs: 2 })

async function cachedServer (t: Tap.Test, handler: Handler, over: Partial<DnsServerOptions> = {}) {
  const up = await fakeUpstream('127.53.2.1', handler)
  const clock = new FakeClock()
  const src = new StaticRecordSource([
    { network: 'n1', name: 'web', aliases: [], ip: '10.1.0.2' },
    { network: 'n2', name: 'api', aliases: [], ip: '10.2.0.2' },
  ])
  const server = new DnsServer({ records: src, clientNetworks: (ip) => nets[ip] ?? [], upstreams: { servers: [up.spec] }, clock, ...over })
  t.teardown(async () => { await server.close(); await up.close() })
  const [addr] = await server.listen([{ ip: SERVER_IP, port: 0 }])
  return { server, addr: addr!, up, clock, src }
}

const aOf = (ip: string, ttl = 60): Handler => (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl, data: ip }] })

t.test('server: a forwarded answer is cached until its TTL ends', async (t) => {
  const { addr, up, clock, server } = await cachedServer(t, aOf('192.0.2.10'))
  t.same(datas(await udpDecoded(addr, query('ext.example', 'A', { id: 1 }))), ['192.0.2.10'])
  clock.advance(30_000)
  const r = await udpDecoded(addr, query('ext.example', 'A', { id: 2 }))
  t.equal(r.id, 2)
  t.equal((r.answers![0] as { ttl: number }).ttl, 30, 'from the cache, TTL decremented')
  t.equal(up.seen.length, 1, 'the upstream was asked once')
  clock.advance(30_000)
  t.same(datas(await udpDecoded(addr, query('ext.example'))), ['192.0.2.10'])
  t.equal(up.seen.length, 2, 'asked again once the TTL ended')
  t.equal(server.metrics.cacheHits, 1)
  t.equal(server.metrics.cacheMisses, 2)
  t.same(server.cacheStats()?.entries, 1)
  t.equal(server.cacheFlush(), 1)
  await udpDecoded(addr, query('ext.example'))
  t.equal(up.seen.length, 3, 'asked again after a flush')
})

t.test('server: negative answers cached by the SOA', async (t) => {
  const { addr, up, clock } = await cachedServer(t, () => ({ rcode: 3, authorities: [soa(600, 15)] }))
  t.equal(rcode(await udpDecoded(addr, query('gone.example'))), 'NXDOMAIN')
  t.equal(rcode(await udpDecoded(addr, query('gone.example'))), 'NXDOMAIN')
  t.equal(up.seen.length, 1)
  clock.advance(15_000)
  t.equal(rcode(await udpDecoded(addr, query('gone.example'))), 'NXDOMAIN')
  t.equal(up.seen.length, 2, 'asked again after the SOA MINIMUM')
})

t.test('server: a popular name is prefetched before it expires', async (t) => {
  let ip = '192.0.2.1'
  const { addr, up, clock, server } = await cachedServer(t, (q) => aOf(ip, 100)(q))
  for (let i = 0; i < 4; i++) await udpDecoded(addr, query('hot.example'))
  t.equal(up.seen.length, 1)
  ip = '192.0.2.2'
  clock.advance(91_000)
  t.same(datas(await udpDecoded(addr, query('hot.example'))), ['192.0.2.1'], 'served from the cache at once')
  await until(() => server.metrics.cacheInserts === 2)
  t.equal(up.seen.length, 2, 'and refreshed in the background')
  clock.advance(20_000)
  t.same(datas(await udpDecoded(addr, query('hot.example'))), ['192.0.2.2'], 'past the old expiry: the refreshed answer, no wait')
  t.equal(up.seen.length, 2)
})

t.test('server: ferry\'s names first, never from the cache; a new local name flushes it', async (t) => {
  const { addr, up, src, server } = await cachedServer(t, aOf('192.0.2.66'))
  t.same(datas(await udpDecoded(addr, query('api'), C1)), ['192.0.2.66'], 'api is n2\'s: a client of n1 gets the upstream\'s answer')
  t.same(datas(await udpDecoded(addr, query('api'), C2)), ['10.2.0.2'], 'a client of n2 gets ferry\'s, not the cached one')
  t.same(datas(await udpDecoded(addr, query('api'), C1)), ['192.0.2.66'], 'n1: from the cache')
  t.equal(up.seen.length, 1)
  t.same(datas(await udpDecoded(addr, query('newbie'), C2)), ['192.0.2.66'])
  t.equal(server.metrics.cacheEntries, 2)
  src.add({ network: 'n1', name: 'newbie', aliases: [], ip: '10.1.0.77' })
  t.same(datas(await udpDecoded(addr, query('newbie'), C1)), ['10.1.0.77'], 'ferry answers it now')
  t.equal(server.metrics.cacheEntries, 1, 'its cached upstream answer went (api\'s stays)')
  t.same(datas(await udpDecoded(addr, query('newbie'), C2)), ['192.0.2.66'], 'a client of n2 asks upstream again')
  t.equal(up.seen.length, 3)
})

t.test('server: answers served stale when no upstream answers', async (t) => {
  let silent = false
  const { addr, up, clock } = await cachedServer(t, (q) => silent ? null : aOf('192.0.2.9', 10)(q))
  t.same(datas(await udpDecoded(addr, query('old.example'))), ['192.0.2.9'])
  silent = true
  clock.advance(60_000)
  const pending = udpDecoded(addr, query('old.example'), C1, 10_000)
  await until(() => up.seen.length === 2)
  clock.advance(5000)
  const r = await pending
  t.same(datas(r), ['192.0.2.9'], 'the expired answer')
  t.equal((r.answers![0] as { ttl: number }).ttl, 30, 'with TTL 30')
  t.equal(rcode(await (async () => {
    const p = udpDecoded(addr, query('never.example'), C1, 10_000)
    await until(() => up.seen.length === 3)
    clock.advance(5000)
    return await p
  })()), 'SERVFAIL', 'a name never cached: SERVFAIL')
})

t.test('options: undefined takes the default, nonsense is refused', async (t) => {
  t.equal(new DnsCache({ maxEntries: undefined, ttlCap: 60 }).opts.maxEntries, 10_000)
  t.throws(() => new DnsCache({ ttlCap: -1 }), { code: 'INVALID_OPTION' })
  t.throws(() => new DnsCache({ maxBytes: 1.5 }), { code: 'INVALID_OPTION' })
})
