/**
 * The DNS server on loopback addresses (127.53.x.y; no namespace needed): a
 * client's identity is its source address, so clients bind 127.0.0.x sources.
 * Upstreams are fake DNS servers started by the tests on other loopback ports.
 */
import t from 'tap'
import { mulberry32 } from '../harness/random.js'
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import dnsPacket, { type Packet, type RecordType } from 'dns-packet'
import { DnsServer, type DnsServerOptions, type UdpMode, type ListenAddress } from '../../src/dns/server.js'
import { RecordSet, StaticRecordSource, type RecordEntry } from '../../src/dns/records.js'
import { ResolvConfUpstreams, parseResolvConf, parseUpstream, resolvConfServers } from '../../src/dns/upstream.js'
import { datas, deadPort, FakeClock, fakeUpstream, query, rcode, tcpAsk, udpAsk, udpDecoded, UDP_MODES } from '../harness/dns.js'
import { observe, until } from '../harness/until.js'

/** The UDP transport of the servers `startServer` makes (each test runs over both; see UDP_MODES). */
let udp: UdpMode = 'dgram'

const SERVER_IP = '127.53.0.1'
const C1 = '127.53.10.1' // a client on n1
const C2 = '127.53.10.2' // a client on n2
const C12 = '127.53.10.3' // a client on n1 and n2
const STRANGER = '127.53.10.9' // not a ferry client

const N1 = ['n1']
const N2 = ['n2']
const N12 = ['n1', 'n2']
const clients: Record<string, readonly string[]> = { [C1]: N1, [C2]: N2, [C12]: N12 }
const clientNetworks = (ip: string): readonly string[] => clients[ip] ?? []
/** The IPv6 client (::1, the only IPv6 loopback address), on n1 where a test says so. */
const V6_CLIENT = '::1'
const withV6Client = (ip: string): readonly string[] => (ip === V6_CLIENT ? N1 : clientNetworks(ip))

const many = Array.from({ length: 60 }, (_, i): RecordEntry => ({ network: 'n1', name: `replica${i}`, aliases: ['big'], ip: `10.1.1.${i + 10}` }))

function baseEntries (): RecordEntry[] {
  return [
    { network: 'n1', name: 'web', aliases: ['frontend', '0123456789ab'], ip: '10.1.0.2' },
    { network: 'n1', name: 'db', aliases: ['Postgres'], ip: '10.1.0.3', ip6: 'fd00:1::3' },
    { network: 'n2', name: 'api', aliases: ['backend'], ip: '10.2.0.2' },
    { network: 'n2', name: 'web', aliases: [], ip: '10.2.0.9' },
    ...many,
  ]
}

async function startServer (t: Tap.Test, over: Partial<DnsServerOptions> = {}, src = new StaticRecordSource(baseEntries())) {
  const server = new DnsServer({ udp, records: src, clientNetworks, upstreams: { servers: [] }, ...over })
  t.teardown(() => server.close())
  const [addr] = await server.listen([{ ip: SERVER_IP, port: 0 }])
  return { server, addr: addr!, src }
}

// ---------------------------------------------------------------- tests

for (const mode of UDP_MODES) t.test(`UDP through ${mode === 'auto' ? 'the batched addon' : 'node:dgram'}`, async (t) => {
  udp = mode

t.test('A records for names, aliases and short ids; case and trailing dot', async (t) => {
  const { addr, server } = await startServer(t)
  t.not(addr.port, 0)
  for (const [name, ip] of [['web', '10.1.0.2'], ['frontend', '10.1.0.2'], ['0123456789ab', '10.1.0.2'], ['POSTGRES.', '10.1.0.3'], ['wEb', '10.1.0.2']] as const) {
    const r = await udpDecoded(addr, query(name))
    t.equal(rcode(r), 'NOERROR', name)
    t.same(datas(r), [ip], name)
    t.ok(r.flag_aa, 'authoritative for its own names')
    t.ok(r.flag_rd && r.flag_ra)
    t.equal(r.questions?.[0]?.name, name.replace(/\.$/, ''), 'question echoed as asked (0x20 case kept)')
    t.equal(r.answers?.[0]?.name, name.replace(/\.$/, ''), 'owner name points at the question')
    t.equal((r.answers?.[0] as { ttl: number }).ttl, 0, 'TTL 0 by default')
  }
  const tcp = await tcpAsk(addr, query('web'))
  t.same(datas(tcp), ['10.1.0.2'], 'the same over TCP')
  t.equal(server.metrics.answered, 6)
  t.equal(server.metrics.byType.A, 6)
})

t.test('ttlSeconds: the TTL of every answer of ferry\'s own, over UDP and TCP, after a change too', async (t) => {
  const { addr, src } = await startServer(t, { ttlSeconds: 7 })
  const ttls = (r: { answers?: readonly unknown[] }): number[] => (r.answers ?? []).map((a) => (a as { ttl: number }).ttl)
  t.same(ttls(await udpDecoded(addr, query('web'))), [7])
  t.same(ttls(await udpDecoded(addr, query('db', 'ANY' as RecordType))), [7, 7])
  t.same(ttls(await udpDecoded(addr, query('2.0.1.10.in-addr.arpa', 'PTR'))), [7])
  t.same(ttls(await tcpAsk(addr, query('db', 'AAAA'))), [7])
  src.delta({ remove: [], add: [{ network: 'n1', name: 'late', aliases: [], ip: '10.1.0.44' }] })
  t.same(ttls(await udpDecoded(addr, query('late'))), [7], 'a record added by a delta')
  src.add({ network: 'n1', name: 'later', aliases: [], ip: '10.1.0.45' })
  t.same(ttls(await udpDecoded(addr, query('later'))), [7], 'a record added by a rebuild')
})

t.test('SRV for published ports: answer with the target\'s addresses, scoped, NODATA and NXDOMAIN', async (t) => {
  const up = await fakeUpstream('127.53.0.5', () => ({ rcode: 3 }))
  t.teardown(() => up.close())
  const entries = baseEntries().map((e) => e.name === 'web' && e.network === 'n1' ? { ...e, ports: [{ proto: 'tcp' as const, port: 80 }, { proto: 'udp' as const, port: 53 }] } : e)
    .map((e) => e.name === 'db' ? { ...e, ports: [{ proto: 'tcp' as const, port: 5432 }] } : e)
  const { addr, server } = await startServer(t, { ttlSeconds: 5, upstreams: { servers: [up.spec] } }, new StaticRecordSource(entries))
  const r = await udpDecoded(addr, query('_80._tcp.web', 'SRV'))
  t.equal(rcode(r), 'NOERROR')
  t.ok(r.flag_aa)
  t.same(r.answers, [{ name: '_80._tcp.web', type: 'SRV', class: 'IN', ttl: 5, flush: false, data: { priority: 0, weight: 0, port: 80, target: 'web' } }])
  t.same(r.additionals, [{ name: 'web', type: 'A', class: 'IN', ttl: 5, flush: false, data: '10.1.0.2' }], 'the target\'s address in the additional section')
  t.same(datas(await udpDecoded(addr, query('_80._tcp.frontend', 'SRV'))), [{ priority: 0, weight: 0, port: 80, target: 'web' }], 'under an alias too')
  t.same(datas(await udpDecoded(addr, query('_53._udp.web', 'SRV'))), [{ priority: 0, weight: 0, port: 53, target: 'web' }])
  const dual = await tcpAsk(addr, query('_5432._tcp.postgres', 'SRV', { edns: 1232 }))
  t.same(datas(dual), [{ priority: 0, weight: 0, port: 5432, target: 'db' }])
  t.same(dual.additionals?.filter((a) => a.type !== 'OPT').map((a) => [a.name, a.type, (a as { data: unknown }).data]), [['db', 'A', '10.1.0.3'], ['db', 'AAAA', 'fd00:1::3']], 'A and AAAA of a dual-stack target; OPT still there')
  const nodata = await udpDecoded(addr, query('_80._tcp.web', 'A'))
  t.equal(rcode(nodata), 'NOERROR')
  t.same(nodata.answers, [], 'the SRV name with another type: NODATA')
  for (const name of ['_81._tcp.web', '_80._udp.web', '_http._tcp.web']) {
    const nx = await udpDecoded(addr, query(name, 'SRV'))
    t.equal(rcode(nx), 'NXDOMAIN', `${name}: a service of a ferry name that is not published`)
    t.ok(nx.flag_aa, 'answered by ferry')
  }
  t.equal(up.seen.length, 0, 'none of that was forwarded')
  // n2 has its own "web" (no ports) and no "frontend": n1's SRV records are not seen there.
  const other = await udpDecoded(addr, query('_80._tcp.web', 'SRV'), C2)
  t.equal(rcode(other), 'NXDOMAIN')
  t.same(other.answers, [])
  t.equal(up.seen.length, 0)
  const alias = await udpDecoded(addr, query('_80._tcp.frontend', 'SRV'), C2)
  t.same(alias.answers, [], 'a name n2 does not have: nothing of n1\'s')
  t.equal(up.seen.length, 1, 'not ferry\'s in that scope: asked upstream, as any other name')
  t.equal(rcode(alias), 'NXDOMAIN')
  t.ok(server.metrics.answered >= 9)
})

t.test('SRV answers too big for UDP drop the additional records first, then truncate', async (t) => {
  const entries = Array.from({ length: 60 }, (_, i): RecordEntry => ({ network: 'n1', name: `replica-with-a-long-name-${i}`, aliases: ['pool'], ip: `10.1.1.${i + 10}`, ports: [{ proto: 'tcp', port: 8080 }] }))
  // Each SRV record is 47 bytes, each A record of a target 43: 8 of each make 33 + 376 + 344 bytes.
  const few = await startServer(t, {}, new StaticRecordSource(entries.slice(0, 8)))
  const r = await udpDecoded(few.addr, query('_8080._tcp.pool', 'SRV'))
  t.equal(r.answers?.length, 8, '8 SRV records fit in 512 bytes')
  t.same(r.additionals, [], 'their addresses do not: left out, not truncated')
  t.notOk(r.flag_tc)
  const roomy = await udpDecoded(few.addr, query('_8080._tcp.pool', 'SRV', { edns: 1232 }))
  t.equal(roomy.additionals?.filter((x) => x.type === 'A').length, 8, 'with EDNS 1232 they do')
  const { addr } = await startServer(t, {}, new StaticRecordSource(entries))
  const big = await udpDecoded(addr, query('_8080._tcp.pool', 'SRV'))
  t.ok(big.flag_tc, '60 do not fit: truncated')
  const tcp = await tcpAsk(addr, query('_8080._tcp.pool', 'SRV'))
  t.equal(tcp.answers?.length, 60)
  t.equal(tcp.additionals?.length, 60, 'all of it over TCP')
})

t.test('AAAA, NODATA, PTR', async (t) => {
  const { addr } = await startServer(t)
  t.same(datas(await udpDecoded(addr, query('db', 'AAAA'))), ['fd00:1::3'])
  const nodata = await udpDecoded(addr, query('web', 'AAAA'))
  t.equal(rcode(nodata), 'NOERROR')
  t.same(nodata.answers, [], 'known name without IPv6: NODATA, not forwarded, not NXDOMAIN')
  t.same(datas(await udpDecoded(addr, query('2.0.1.10.in-addr.arpa', 'PTR'))), ['web'])
  t.same(datas(await udpDecoded(addr, query('3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa', 'PTR'))), ['db'])
  const any = await udpDecoded(addr, query('db', 'ANY' as RecordType))
  t.same(any.answers?.map((a) => a.type), ['A', 'AAAA'])
})

t.test('names are scoped by the client\'s networks; strangers are refused', async (t) => {
  const up = await fakeUpstream('127.53.1.1', () => ({ rcode: 3 }))
  t.teardown(() => up.close())
  const { addr, server } = await startServer(t, { upstreams: { servers: [up.spec] } })
  t.same(datas(await udpDecoded(addr, query('web'), C1)), ['10.1.0.2'])
  t.same(datas(await udpDecoded(addr, query('web'), C2)), ['10.2.0.9'], 'same name, other network, other address')
  t.same(datas(await udpDecoded(addr, query('web'), C12)), ['10.1.0.2', '10.2.0.9'])
  t.same(datas(await udpDecoded(addr, query('backend'), C12)), ['10.2.0.2'])
  const other = await udpDecoded(addr, query('backend'), C1)
  t.equal(rcode(other), 'NXDOMAIN', 'a name of n2 is not ferry\'s for a client of n1: forwarded, upstream says NXDOMAIN')
  t.equal(up.seen.length, 1)
  t.same(await udpDecoded(addr, query('2.0.2.10.in-addr.arpa', 'PTR'), C2).then(datas), ['api'])
  for (const name of ['web', 'example.com']) {
    const r = await udpDecoded(addr, query(name), STRANGER)
    t.equal(rcode(r), 'REFUSED', `stranger asking ${name}`)
    t.same(r.answers, [])
  }
  await t.rejects(tcpAsk(addr, query('example.com'), STRANGER), { code: 'ECONNRESET' }, 'over TCP, closed at accept (no slot taken)')
  t.equal(server.metrics.tcpRejectedNonClient, 1)
  t.equal(up.seen.length, 1, 'nothing of the stranger\'s reached the upstream')
  t.equal(server.metrics.refused, 2)
})

t.test('forwarding: id kept, EDNS passed through, answer relayed', async (t) => {
  const up = await fakeUpstream('127.53.1.2', (q) => {
    const name = q.questions?.[0]?.name ?? ''
    if (name.toLowerCase() === 'example.com') return { answers: [{ type: 'A', name, ttl: 300, data: '192.0.2.10' }] }
    return { rcode: 3 }
  })
  t.teardown(() => up.close())
  const { addr, server } = await startServer(t, { upstreams: { servers: [up.spec] } })
  const cookie = Buffer.from('0102030405060708', 'hex')
  const raw = await udpAsk(addr, query('Example.COM', 'A', { id: 777, edns: 1400, options: [{ code: 10, data: cookie }] }))
  const r = dnsPacket.decode(raw!)
  t.equal(r.id, 777, 'the client\'s id comes back')
  t.same(datas(r), ['192.0.2.10'])
  t.equal(up.seen.length, 1)
  const sent = up.seen[0]!
  t.not(sent.q.id, 777, 'upstream sees a fresh id')
  t.equal(sent.q.questions?.[0]?.name, 'Example.COM', 'the question is relayed as asked')
  const opt = sent.q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize: number, options: { code: number, data: Buffer }[] } | undefined
  t.equal(opt?.udpPayloadSize, 1400, 'EDNS passed through')
  t.same(opt?.options.map((o) => [o.code, o.data.toString('hex')]), [[10, cookie.toString('hex')]], 'EDNS options passed through')
  t.equal(sent.tcp, false)
  const nx = await udpDecoded(addr, query('nowhere.invalid'))
  t.equal(rcode(nx), 'NXDOMAIN')
  const tcp = await tcpAsk(addr, query('example.com'))
  t.same(datas(tcp), ['192.0.2.10'], 'a TCP client is forwarded over TCP')
  t.equal(up.seen.at(-1)?.tcp, true)
  t.equal(server.metrics.forwarded, 3)
  t.equal(server.metrics.upstreamAnswers, 3)
  const viaApi = await server.query('example.com', 'A', N1)
  t.same(datas(viaApi), ['192.0.2.10'], 'server.query forwards too')
  t.same(datas(await server.query('web', 'A', N1)), ['10.1.0.2'], 'server.query answers ferry\'s names')
})

t.test('upstream fallback: a dead one, a silent one, a SERVFAIL one, then a good one', async (t) => {
  const good = await fakeUpstream('127.53.1.3', (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 1, data: '192.0.2.1' }] }))
  const silent = await fakeUpstream('127.53.1.4', () => null)
  const failing = await fakeUpstream('127.53.1.5', () => ({ rcode: 2 }))
  t.teardown(() => Promise.all([good.close(), silent.close(), failing.close()]))
  const dead = await deadPort('127.53.1.6')
  // The clock decides when an upstream is given up: the order of events, not the time taken.
  const clock = new FakeClock()
  const { addr, server } = await startServer(t, { clock, upstreams: { servers: [dead, silent.spec, failing.spec, good.spec], timeoutMs: 300 } })
  let answered = false
  const first = udpDecoded(addr, query('example.org'), C1, 3000).finally(() => { answered = true })
  await until('the silent upstream asked', () => silent.seen.length === 1)
  t.same([failing.seen.length, good.seen.length, answered], [0, 0, false], 'the dead one skipped at once; the silent one waited for, until the clock says')
  clock.advance(300)
  t.same(datas(await first), ['192.0.2.1'])
  t.equal(server.metrics.upstreamTimeouts, 1, 'one timeout spent (the silent upstream)')
  t.ok(server.metrics.upstreamErrors >= 1, 'ICMP refused counted')
  t.equal(silent.seen.length, 1)
  t.equal(failing.seen.length, 1)
  // The dead and the silent one are down now, asked after the others: the next query needs no clock advance.
  t.same(datas(await udpDecoded(addr, query('example.net'), C1, 3000)), ['192.0.2.1'], 'answered with no clock advance: no timeout spent again')
  t.same([silent.seen.length, failing.seen.length], [1, 2], 'the silent one not asked again; the SERVFAIL one (which answers at once) still is')
})

t.test('all upstreams down: SERVFAIL within the timeout', async (t) => {
  const dead1 = await deadPort('127.53.1.7')
  const dead2 = await deadPort('127.53.1.8')
  const { addr: a1 } = await startServer(t, { clock: new FakeClock(), upstreams: { servers: [dead1, dead2], timeoutMs: 2000 } })
  const r = await udpDecoded(a1, query('example.com'), C1, 3000)
  t.equal(rcode(r), 'SERVFAIL', 'refused upstreams give SERVFAIL with no clock advance: no timeout waited for')
  t.equal(r.id, 4242)

  const s1 = await fakeUpstream('127.53.1.9', () => null)
  const s2 = await fakeUpstream('127.53.1.10', () => null)
  t.teardown(() => Promise.all([s1.close(), s2.close()]))
  const clock = new FakeClock()
  const { addr: a2, server } = await startServer(t, { clock, upstreams: { servers: [s1.spec, s2.spec], timeoutMs: 250 } })
  let answered = false
  const second = udpDecoded(a2, query('example.com'), C1, 3000).finally(() => { answered = true })
  await until('the first silent upstream asked', () => s1.seen.length === 1)
  clock.advance(250)
  await until('the second silent upstream asked', () => s2.seen.length === 1)
  t.notOk(answered, 'no answer while the second one has time left')
  clock.advance(250)
  t.equal(rcode(await second), 'SERVFAIL', 'silent upstreams: SERVFAIL after one timeout each')
  t.equal(server.metrics.servfail, 1)
  const tcp = tcpAsk(a2, query('example.com'))
  await until('asked again over TCP', () => s1.seen.length + s2.seen.length > 2)
  clock.advance(500)
  t.equal(rcode(await tcp), 'SERVFAIL', 'over TCP too')

  const { addr: a3 } = await startServer(t, { upstreams: { servers: [] } })
  t.equal(rcode(await udpDecoded(a3, query('example.com'))), 'SERVFAIL', 'no upstream at all: SERVFAIL')
})

t.test('large answers: TC over UDP, in full over TCP (own names and forwarded)', async (t) => {
  const txt = Array.from({ length: 12 }, (_, i) => `${i}`.repeat(100))
  const up = await fakeUpstream('127.53.1.11', (q) => {
    const name = q.questions![0]!.name
    // A careless upstream: sends 1.2 kB over UDP whatever the client's size.
    return { answers: [{ type: 'TXT', name, ttl: 5, data: [...txt] }] } as Packet
  })
  t.teardown(() => up.close())
  const { addr, server } = await startServer(t, { upstreams: { servers: [up.spec] } })

  const udp = await udpDecoded(addr, query('big'))
  t.ok(udp.flag_tc, '60 addresses do not fit 512 bytes: TC')
  t.same(udp.answers, [])
  t.equal(udp.questions?.[0]?.name, 'big')
  const tcp = await tcpAsk(addr, query('big'))
  t.notOk(tcp.flag_tc)
  t.equal(tcp.answers?.length, 60, 'all 60 over TCP')
  const edns = await udpDecoded(addr, query('big', 'A', { edns: 1232 }))
  t.notOk(edns.flag_tc, 'an EDNS client taking 1232 bytes gets them over UDP')
  t.equal(edns.answers?.length, 60)
  t.ok(edns.additionals?.some((a) => a.type === 'OPT'), 'OPT in the answer')

  const fwdUdp = await udpDecoded(addr, query('big.example'))
  t.ok(fwdUdp.flag_tc, 'a forwarded answer larger than 512 bytes: TC')
  const fwdTcp = await tcpAsk(addr, query('big.example'))
  t.same((fwdTcp.answers?.[0] as { data: Buffer[] }).data.map(String), txt, 'in full over TCP')
  t.same(up.seen.map((s) => s.tcp), [false], 'the whole answer came once over UDP; the TCP retry is served from the cache')
  t.equal(server.metrics.truncated, 2)
})

t.test('a record disappears when its source changes; new ones appear', async (t) => {
  const up = await fakeUpstream('127.53.1.12', () => ({ rcode: 3 }))
  t.teardown(() => up.close())
  const { addr, src } = await startServer(t, { upstreams: { servers: [up.spec] } })
  t.same(datas(await udpDecoded(addr, query('web'))), ['10.1.0.2'])
  src.remove((e) => e.name === 'web' && e.network === 'n1')
  const gone = await udpDecoded(addr, query('web'))
  t.equal(rcode(gone), 'NXDOMAIN', 'gone, so forwarded, and the upstream does not know it')
  t.equal(rcode(await udpDecoded(addr, query('frontend'))), 'NXDOMAIN', 'its aliases too')
  t.equal(rcode(await udpDecoded(addr, query('2.0.1.10.in-addr.arpa', 'PTR'))), 'NXDOMAIN', 'and its PTR')
  t.same(datas(await udpDecoded(addr, query('web'), C2)), ['10.2.0.9'], 'the n2 one stays')
  src.add({ network: 'n1', name: 'newbie', aliases: [], ip: '10.1.0.77' })
  t.same(datas(await udpDecoded(addr, query('newbie'))), ['10.1.0.77'])
})

for (const family of [4, 6] as const) {
  t.test(`rate limiting per source address (IPv${family})`, async (t) => {
    // Over IPv6 the client is ::1 (the only IPv6 loopback address), listening on ::1.
    const client = family === 4 ? C1 : V6_CLIENT
    // A token per 1000 s after the burst: however long sending takes, exactly the burst is answered.
    const { addr: addr4, server } = await startServer(t, { rateLimit: { perSecond: 0.001, burst: 20 }, clientNetworks: withV6Client })
    const addr = family === 4 ? addr4 : (await server.listen([{ ip: V6_CLIENT, port: 0 }]))[0]!
    const s = createSocket(family === 4 ? 'udp4' : 'udp6')
    let got = 0
    s.on('message', () => { got++ })
    await new Promise<void>((resolve) => s.bind(0, client, resolve))
    const msg = query('web')
    for (let i = 0; i < 100; i++) s.send(msg, addr.port, addr.ip)
    t.equal(await observe(() => got + server.metrics.rateLimited, (n) => n >= 100), 100, 'every query answered or dropped')
    s.close()
    t.equal(got, 20, 'a burst of 20 answered')
    t.equal(server.metrics.rateLimited, 80, 'the rest dropped')
    t.same(datas(await udpDecoded(addr4, query('web'), C2)), ['10.2.0.9'], 'another source is not affected')
  })
}

t.test('IPv6: listening on ::1 beside an IPv4 address; AAAA, NODATA and PTR (ip6.arpa) over UDP and TCP from an IPv6 client', async (t) => {
  const up = await fakeUpstream('127.53.1.21', (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 5, data: '192.0.2.99' }] }) as Packet)
  t.teardown(() => up.close())
  const src = new StaticRecordSource([...baseEntries(), { network: 'n1', name: 'six', aliases: ['sixalias'], ip: 'fd00:1::6' }])
  const { server, addr: addr4 } = await startServer(t, { clientNetworks: withV6Client, upstreams: { servers: [up.spec] } }, src)
  const [addr6] = await server.listen([{ ip: '::1', port: 0 }])
  t.same(server.addresses().map((a) => a.ip).sort(), ['127.53.0.1', '::1'])
  const ptr6 = '3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa'
  for (const [how, ask] of [
    ['UDP', (m: Buffer) => udpDecoded(addr6!, m, V6_CLIENT)],
    ['TCP', (m: Buffer) => tcpAsk(addr6!, m, V6_CLIENT)],
  ] as const) {
    t.same(datas(await ask(query('db', 'AAAA'))), ['fd00:1::3'], `${how}: AAAA of a dual-stack name`)
    t.same(datas(await ask(query('postgres', 'AAAA'))), ['fd00:1::3'], `${how}: AAAA of its alias`)
    t.same(datas(await ask(query('db'))), ['10.1.0.3'], `${how}: its A, asked over IPv6`)
    t.same(datas(await ask(query(ptr6, 'PTR'))), ['db'], `${how}: PTR in ip6.arpa`)
    t.same(datas(await ask(query('sixalias', 'AAAA'))), ['fd00:1::6'], `${how}: AAAA of an IPv6-only name`)
    for (const [name, type] of [['web', 'AAAA'], ['six', 'A']] as const) {
      const r = await ask(query(name, type))
      t.equal(rcode(r), 'NOERROR', `${how}: ${type} of ${name}: NOERROR`)
      t.same(r.answers, [], `${how}: ${type} of ${name}: no answer (NODATA), not NXDOMAIN`)
      t.ok(r.flag_aa)
    }
  }
  t.same(up.seen, [], 'NODATA answers are ferry\'s own: nothing forwarded')
  t.same(datas(await udpDecoded(addr4, query('db', 'AAAA'), C1)), ['fd00:1::3'], 'the IPv4 listener answers AAAA too')
  t.equal(rcode(await udpDecoded(addr6!, query('db', 'AAAA'), V6_CLIENT)), 'NOERROR')
  const stranger = await startServer(t)
  const [s6] = await stranger.server.listen([{ ip: '::1', port: 0 }])
  t.equal(rcode(await udpDecoded(s6!, query('db', 'AAAA'), V6_CLIENT)), 'REFUSED', 'an IPv6 source that is no client is refused')
  await server.unlisten([addr6!])
  t.equal(await udpAsk(addr6!, query('db', 'AAAA'), V6_CLIENT, 200), undefined, 'the IPv6 listener closes')
})

t.test('forwarding to an IPv6 upstream ([::1]:port): over UDP, and over TCP after a truncated answer', async (t) => {
  const txt = Array.from({ length: 12 }, (_, i) => `${i}`.repeat(100))
  const up = await fakeUpstream('::1', (q) => {
    const name = q.questions![0]!.name
    return (name === 'big.example'
      ? { answers: [{ type: 'TXT', name, ttl: 5, data: [...txt] }] }
      : { answers: [{ type: 'AAAA', name, ttl: 5, data: '2001:db8::7' }] }) as Packet
  })
  t.teardown(() => up.close())
  t.match(up.spec, /^\[::1\]:\d+$/)
  const { addr, server } = await startServer(t, { upstreams: { servers: [up.spec] }, cache: false, clientNetworks: withV6Client })
  const [addr6] = await server.listen([{ ip: '::1', port: 0 }])
  t.same(server.upstreams(), [{ ip: '::1', port: up.addr.port }], 'an upstream on ::1 at another port is not ferry\'s own listener')
  t.same(datas(await udpDecoded(addr, query('far.example', 'AAAA'))), ['2001:db8::7'], 'UDP query, forwarded over UDP to ::1')
  const udp = await udpDecoded(addr6!, query('big.example'), V6_CLIENT)
  t.ok(udp.flag_tc, 'a forwarded answer larger than 512 bytes: TC')
  const tcp = await tcpAsk(addr6!, query('big.example'), V6_CLIENT)
  t.same((tcp.answers?.[0] as { data: Buffer[] }).data.map(String), txt, 'in full over TCP')
  t.same(up.seen.map((s) => [s.q.questions?.[0]?.name, s.tcp]), [['far.example', false], ['big.example', false], ['big.example', true]],
    'the retry over TCP went to the IPv6 upstream over TCP')
  t.equal(server.metrics.servfail, 0)
})

t.test('protocol errors: FORMERR, NOTIMP, BADVERS, drops', async (t) => {
  const { addr, server } = await startServer(t)
  const ok = query('web')
  const noQuestion = Buffer.from(ok.subarray(0, 12))
  noQuestion.writeUInt16BE(0, 4)
  const r1 = await udpDecoded(addr, noQuestion)
  t.equal(rcode(r1), 'FORMERR', 'no question')
  t.equal(r1.id, 4242)
  const cut = ok.subarray(0, ok.length - 3)
  t.equal(rcode(await udpDecoded(addr, cut)), 'FORMERR', 'cut short')
  const badAr = Buffer.concat([ok, Buffer.from([1, 2, 3])])
  badAr.writeUInt16BE(1, 10)
  t.equal(rcode(await udpDecoded(addr, badAr)), 'FORMERR', 'an additional record that is garbage')
  const status = Buffer.from(ok)
  status[2] = (2 << 3) | 1
  t.equal(rcode(await udpDecoded(addr, status)), 'NOTIMP', 'opcode STATUS')
  const v1 = query('web', 'A', { edns: 1232 })
  v1[v1.length - 5] = 1 // EDNS version
  const bad = await udpDecoded(addr, v1)
  t.equal((bad.additionals?.find((a) => a.type === 'OPT') as { extendedRcode: number } | undefined)?.extendedRcode, 1, 'BADVERS')
  t.equal(await udpAsk(addr, Buffer.from([1, 2, 3]), C1, 200), undefined, 'shorter than a header: dropped')
  const resp = Buffer.from(ok)
  resp[2]! |= 0x80
  t.equal(await udpAsk(addr, resp, C1, 200), undefined, 'a response sent to the server: dropped')
  t.equal(server.metrics.internalErrors, 0)
  t.same(datas(await udpDecoded(addr, ok)), ['10.1.0.2'])
})

t.test('listen addresses change at runtime; own addresses are never upstreams', async (t) => {
  const candidates = [35353, 45353, 55353]
  const { server, addr } = await startServer(t, { upstreams: { servers: [...candidates.map((p) => `127.53.0.2:${p}`), '192.0.2.53'] } })
  const [second] = await server.listen([{ ip: '127.53.0.2', port: 0 }])
  t.same(datas(await udpDecoded(second!, query('web'))), ['10.1.0.2'])
  t.same(datas(await tcpAsk(second!, query('web'))), ['10.1.0.2'])
  t.equal(server.addresses().length, 2)
  t.same(await server.listen([addr]), [addr], 'listening twice is a no-op')
  await server.unlisten([second!])
  t.equal(await udpAsk(second!, query('web'), C1, 200), undefined, 'closed')
  t.same(server.addresses(), [addr])
  await server.setAddresses([])
  t.same(server.addresses(), [])
  t.equal(await udpAsk(addr, query('web'), C1, 200), undefined)
  let own: number | undefined
  for (const port of candidates) {
    const ok = await server.setAddresses([{ ip: '127.53.0.2', port }]).then(() => true, () => false)
    if (ok) { own = port; break }
  }
  t.ok(own !== undefined, 'one of the candidate ports is free')
  t.same(server.upstreams().map((u) => `${u.ip}:${u.port}`), [...candidates.filter((p) => p !== own).map((p) => `127.53.0.2:${p}`), '192.0.2.53:53'],
    'its own listen address is dropped from the upstreams (no loop)')
  await t.rejects(server.listen([{ ip: '192.0.2.1', port: 0 }]), /cannot listen on 192\.0\.2\.1/, 'an address the host lacks')
})

t.test('upstream specs and resolv.conf, re-read on change', async (t) => {
  t.same(parseUpstream('1.1.1.1'), { ip: '1.1.1.1', port: 53 })
  t.same(parseUpstream('127.0.0.1:5353'), { ip: '127.0.0.1', port: 5353 })
  t.same(parseUpstream('[::1]:54'), { ip: '::1', port: 54 })
  t.same(parseUpstream('fd00::1'), { ip: 'fd00::1', port: 53 })
  t.same(parseUpstream('[FD00:1:0::0001]:53'), { ip: 'fd00:1::1', port: 53 }, 'IPv6 in canonical text, as listen addresses are')
  t.same(parseUpstream('fe80::1%eth0'), { ip: 'fe80::1%eth0', port: 53 }, 'a link-local one keeps its zone')
  t.throws(() => parseUpstream('10.0.0.1%eth0'), { code: 'INVALID_OPTION' })
  t.same(parseResolvConf('nameserver FD00::0053\nnameserver 10.0.0.300\n'), [{ ip: 'fd00::53', port: 53 }])
  t.throws(() => parseUpstream('dns.example'), { code: 'INVALID_OPTION' })
  t.same(resolvConfServers(['1.1.1.1', '10.0.0.1:5353', '[FD00::53]:53', 'fd00::53', '2001:db8::1', '[::1]:54', 'bogus']), ['1.1.1.1', 'fd00::53', '2001:db8::1'],
    'a container\'s resolv.conf: the port-53 upstreams of both families (it used to drop every IPv6 one)')
  t.throws(() => parseUpstream('1.1.1.1:0'), { code: 'INVALID_OPTION' })
  t.same(parseResolvConf('# c\nsearch x\nnameserver 10.0.0.1 # home\nnameserver ::1\nnameserver bogus\n;nameserver 1.1.1.1\noptions ndots:2\n'),
    [{ ip: '10.0.0.1', port: 53 }, { ip: '::1', port: 53 }])

  const dir = await mkdtemp(join(tmpdir(), 'ferry-dns-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'resolv.conf')
  await writeFile(path, 'nameserver 127.0.0.9\n')
  const src = new ResolvConfUpstreams(path, 60_000)
  t.teardown(() => src.close())
  await src.start()
  t.same(src.current(), [{ ip: '127.0.0.9', port: 53 }])
  // Replaced by rename, as resolvconf and editors do: fs.watch sees it.
  await writeFile(join(dir, 'resolv.conf.new'), 'nameserver 127.0.0.10\nnameserver 127.0.0.11\n')
  await rename(join(dir, 'resolv.conf.new'), path)
  t.same(await observe(() => src.current().map((u) => u.ip), (ips) => ips.length === 2), ['127.0.0.10', '127.0.0.11'], 'picked up by the watcher')
  await rm(path)
  t.equal(await src.check(), false)
  t.equal(src.current().length, 2, 'a vanished file keeps the last list')
  await writeFile(path, 'nameserver 127.0.0.12\n')
  t.equal(await src.check(), true, 'the periodic check sees a change too')
  t.same(src.current().map((u) => u.ip), ['127.0.0.12'])

  // The server follows the file.
  const up = await fakeUpstream('127.53.1.13', (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 1, data: '192.0.2.99' }] }))
  t.teardown(() => up.close())
  const conf2 = join(dir, 'resolv2.conf')
  await writeFile(conf2, 'nameserver 127.53.1.14\n')
  const { server } = await startServer(t, { upstreams: { resolvConf: conf2, pollMs: 50 } })
  t.same(server.upstreams(), [{ ip: '127.53.1.14', port: 53 }])
  await writeFile(conf2, 'nameserver 127.53.1.13\n')
  t.same(await observe(() => server.upstreams(), (ups) => ups[0]?.ip === '127.53.1.13'), [{ ip: '127.53.1.13', port: 53 }], 'server upstreams follow resolv.conf')
})

const prng = mulberry32

function mutate (rand: () => number, base: Buffer): Buffer {
  const b = Buffer.from(base)
  const kind = Math.floor(rand() * 5)
  if (kind === 0) { // flip bytes
    for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256)
    return b
  }
  if (kind === 1) return b.subarray(0, Math.floor(rand() * b.length)) // truncate
  if (kind === 2) { // counts
    b.writeUInt16BE(Math.floor(rand() * 65536), 4 + 2 * Math.floor(rand() * 4))
    return b
  }
  if (kind === 3) return Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)))])
  // a label length pointing anywhere
  b[12 + Math.floor(rand() * Math.max(1, b.length - 12))] = Math.floor(rand() * 256)
  return b
}

t.test('fuzz: thousands of random and mutated packets, then it still answers', async (t) => {
  const up = await fakeUpstream('127.53.1.15', (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 1, data: '192.0.2.7' }] }))
  t.teardown(() => up.close())
  const { addr, server } = await startServer(t, { rateLimit: false, upstreams: { servers: [up.spec], timeoutMs: 200 } })
  const seed = Number(process.env.FERRY_FUZZ_SEED ?? 20240601)
  const rand = prng(seed)
  const bases = [query('web'), query('db', 'AAAA', { edns: 1232 }), query('big', 'A', { edns: 4096, options: [{ code: 10, data: Buffer.alloc(8, 1) }] }),
    query('2.0.1.10.in-addr.arpa', 'PTR'), query('example.com', 'MX')]
  const s = createSocket('udp4')
  const replies: Buffer[] = []
  s.on('message', (m) => replies.push(m))
  await new Promise<void>((resolve) => s.bind(0, C12, resolve))
  const N = 6000
  for (let i = 0; i < N; i++) {
    const r = rand()
    let pkt: Buffer
    if (r < 0.3) pkt = Buffer.from(Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)))
    else pkt = mutate(rand, bases[Math.floor(rand() * bases.length)]!)
    s.send(pkt, addr.port, addr.ip)
    if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  // TCP: garbage streams, frames with random lengths, frames cut short.
  for (let i = 0; i < 40; i++) {
    await new Promise<void>((resolve) => {
      const c = connect({ host: addr.ip, port: addr.port, localAddress: C12 })
      c.on('error', () => resolve())
      c.on('close', () => resolve())
      c.on('data', () => undefined)
      c.on('connect', () => {
        const parts: Buffer[] = []
        for (let k = 0; k < 5; k++) {
          const body = rand() < 0.5 ? mutate(rand, bases[k % bases.length]!) : Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)))
          const len = Buffer.alloc(2)
          len.writeUInt16BE(rand() < 0.8 ? body.length : Math.floor(rand() * 65536))
          parts.push(len, body)
        }
        c.end(Buffer.concat(parts))
        setTimeout(() => c.destroy(), 100)
      })
    })
  }
  await new Promise((resolve) => setTimeout(resolve, 500))
  s.close()
  t.equal(server.metrics.internalErrors, 0, `no handler threw (seed ${seed})`)
  t.ok(replies.length > 1000, `${replies.length} replies`)
  let undecodable = 0
  for (const r of replies) {
    try {
      const p = dnsPacket.decode(r)
      if (p.type !== 'response') undecodable++
    } catch {
      undecodable++
    }
  }
  t.equal(undecodable, 0, 'every reply is a well-formed response')
  t.ok(server.metrics.formerr > 0 && server.metrics.dropped > 0, 'FORMERR and drops happened')
  t.same(datas(await udpDecoded(addr, query('web'), C1)), ['10.1.0.2'], 'still answers its own names')
  t.same(datas(await udpDecoded(addr, query('example.com'), C1)), ['192.0.2.7'], 'still forwards')
  t.same(datas(await tcpAsk(addr, query('web'), C1)), ['10.1.0.2'], 'still answers over TCP')
})

t.test('a delta of the records is answered at once, without rebuilding them', async (t) => {
  const { addr, server, src } = await startServer(t)
  t.same(datas(await udpDecoded(addr, query('web'), C1)), ['10.1.0.2'])
  const before = server.records()
  src.delta({ remove: [{ network: 'n1', name: 'web', aliases: ['frontend', '0123456789ab'], ip: '10.1.0.2' }], add: [{ network: 'n1', name: 'late', aliases: ['web'], ip: '10.1.0.77' }] })
  t.same(datas(await udpDecoded(addr, query('late'), C1)), ['10.1.0.77'], 'a name added by a delta answers')
  t.same(datas(await udpDecoded(addr, query('web'), C1)), ['10.1.0.77'], 'a cached answer is not served stale')
  t.equal(rcode(await udpDecoded(addr, query('frontend'), C1)), 'SERVFAIL', 'a removed alias is no longer ferry\'s (forwarded; no upstream)')
  t.equal(server.records(), before, 'the same record set, patched in place')
  t.same(server.records().list('n1'), RecordSet.from(src.records()).list('n1'), 'equal to a rebuild from the source')
})

t.test('UDP helper processes: same answers, scoping, record changes, forwarding', async (t) => {
  const up = await fakeUpstream('127.53.1.16', (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 1, data: '192.0.2.8' }] }))
  t.teardown(() => up.close())
  const { addr, server, src } = await startServer(t, { udpHelpers: 1, upstreams: { servers: [up.spec] } })
  t.equal(await observe(() => server.helpersReady(), (n) => n >= 1, 30_000), 1, 'the helper started')
  // Many queries: the kernel spreads them over both readers; every one is answered right.
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, C1, resolve))
  const answers = new Map<number, unknown[]>()
  s.on('message', (m) => { const p = dnsPacket.decode(m); answers.set(p.id!, datas(p)) })
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 100; i++) s.send(query('web', 'A', { id: round * 100 + i }), addr.port, addr.ip)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(await observe(() => answers.size, (n) => n >= 400), 400, 'no query lost')
  s.close()
  t.ok([...answers.values()].every((d) => JSON.stringify(d) === '["10.1.0.2"]'), 'all the same answer')
  t.same(datas(await udpDecoded(addr, query('web'), C2)), ['10.2.0.9'], 'scoped')
  t.equal(rcode(await udpDecoded(addr, query('web'), STRANGER)), 'REFUSED')
  t.same(datas(await udpDecoded(addr, query('example.com'), C1)), ['192.0.2.8'], 'forwarded through the main process')
  src.remove((e) => e.name === 'web' && e.network === 'n1')
  let id = 0
  const web = async (): Promise<unknown[]> => datas(await udpDecoded(addr, query('web', 'A', { id: id++ }), C1))
  t.same(await observe(web, (d) => JSON.stringify(d) === '["192.0.2.8"]', { everyMs: 0 }), ['192.0.2.8'], 'a removed record is gone from the helper too (now forwarded)')
  src.delta({ remove: [], add: [{ network: 'n1', name: 'web', aliases: [], ip: '10.1.0.66' }] })
  t.same(await observe(web, (d) => JSON.stringify(d) === '["10.1.0.66"]', { everyMs: 0 }), ['10.1.0.66'], 'a record added by a delta reaches the helper')
  let more = 0
  const s2 = createSocket('udp4')
  await new Promise<void>((resolve) => s2.bind(0, C1, resolve))
  s2.on('message', (m) => { if (JSON.stringify(datas(dnsPacket.decode(m))) === '["10.1.0.3"]') more++ })
  for (let i = 0; i < 50; i++) s2.send(query('db', 'A', { id: i }), addr.port, addr.ip)
  t.equal(await observe(() => more, (n) => n >= 50), 50, 'every answer arrives')
  s2.close()
  // The helper reports its counters every second.
  const answered = await observe(() => server.metrics.answered, (n) => n >= 450)
  t.ok(answered >= 450, `helper counters reach the server's metrics (${answered})`)
  t.equal(server.metrics.internalErrors, 0)
})

t.test('UDP helper processes on an IPv6 listener: IPv6 clients answered by both readers, an unknown IPv6 source refused', async (t) => {
  let known = true
  const { server } = await startServer(t, { udpHelpers: 1, clientNetworks: (ip) => (ip === V6_CLIENT && known ? N1 : clientNetworks(ip)) })
  const [addr6] = await server.listen([{ ip: '::1', port: 0 }])
  t.equal(await observe(() => server.helpersReady(), (n) => n >= 1, 30_000), 1, 'the helper started')
  const s = createSocket('udp6')
  await new Promise<void>((resolve) => s.bind(0, V6_CLIENT, resolve))
  const answers = new Map<number, unknown[]>()
  s.on('message', (m) => { const p = dnsPacket.decode(m); answers.set(p.id!, datas(p)) })
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 100; i++) s.send(query('db', 'AAAA', { id: round * 100 + i }), addr6!.port, addr6!.ip)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(await observe(() => answers.size, (n) => n >= 300), 300, 'no query lost')
  s.close()
  t.ok([...answers.values()].every((d) => JSON.stringify(d) === '["fd00:1::3"]'), 'all the same answer')
  known = false
  server.clientsChanged()
  t.equal(rcode(await udpDecoded(addr6!, query('db', 'AAAA'), V6_CLIENT)), 'REFUSED', 'no longer a client: refused')
  t.equal(server.metrics.internalErrors, 0)
})
})
