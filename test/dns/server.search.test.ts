/**
 * Search domains through the server ("autopath", src/dns/search.ts): the
 * questions a stub resolver asks for a short name, in its search order, are
 * answered at once, and none of them reaches the upstream.
 */
import t from 'tap'
import { createSocket } from 'node:dgram'
import dnsPacket from 'dns-packet'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DnsServer, type DnsServerOptions, type UdpMode } from '../../src/dns/server.js'
import { StaticRecordSource, type RecordEntry } from '../../src/dns/records.js'
import { datas, fakeUpstream, query, rcode, tcpAsk, udpDecoded, type FakeUpstream, UDP_MODES } from '../harness/dns.js'
import { untilValue } from '../harness/until.js'

/** The UDP transport of the servers `startServer` makes (each test runs over both; see UDP_MODES). */
let udp: UdpMode = 'dgram'

const SERVER_IP = '127.53.0.1'
const C1 = '127.53.10.1' // a client on n1
const C2 = '127.53.10.2' // a client on n2
const clients: Record<string, readonly string[]> = { [C1]: ['n1'], [C2]: ['n2'] }

const entries: RecordEntry[] = [
  { network: 'n1', name: 'web', aliases: ['front'], ip: '10.1.0.2', ports: [{ proto: 'tcp', port: 80 }] },
  { network: 'n2', name: 'db', aliases: [], ip: '10.2.0.3' },
]

async function setup (t: Tap.Test, over: Partial<DnsServerOptions> = {}): Promise<{ server: DnsServer, up: FakeUpstream, addr: { ip: string, port: number }, src: StaticRecordSource }> {
  const up = await fakeUpstream('127.53.2.1', (q) => {
    const name = q.questions?.[0]?.name ?? ''
    if (name.toLowerCase() === 'mail.example.com') return { answers: [{ type: 'A', name, ttl: 300, data: '192.0.2.25' }] }
    return { rcode: 3, authorities: [{ type: 'SOA', name: 'example.com', ttl: 60, data: { mname: 'ns.example.com', rname: 'h.example.com', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } }] }
  })
  t.teardown(() => up.close())
  const src = new StaticRecordSource(entries)
  const server = new DnsServer({ udp, records: src, clientNetworks: (ip) => clients[ip] ?? [], upstreams: { servers: [up.spec] }, searchDomains: ['corp.example', 'example.com'], ...over })
  t.teardown(() => server.close())
  const [addr] = await server.listen([{ ip: SERVER_IP, port: 0 }])
  return { server, up, addr: addr!, src }
}

for (const mode of UDP_MODES) t.test(`UDP through ${mode === 'auto' ? 'the batched addon' : 'node:dgram'}`, async (t) => {
  udp = mode

t.test('a short name asked through the search list (ndots:1 order) never leaves the host', async (t) => {
  const { addr, up, server } = await setup(t)
  // What glibc asks for "web" with `search corp.example example.com`: the first expansion is answered.
  const first = await udpDecoded(addr, query('web.corp.example'), C1)
  t.equal(rcode(first), 'NOERROR')
  t.same(datas(first), ['10.1.0.2'])
  t.ok(first.flag_aa, 'authoritative, as for the short name')
  t.equal(first.answers?.[0]?.name, 'web.corp.example', 'under the name asked')
  t.same(datas(await udpDecoded(addr, query('Front.Example.COM'), C1)), ['10.1.0.2'], 'an alias through the second domain, any case')
  t.same(datas(await tcpAsk(addr, query('web.example.com'), C1)), ['10.1.0.2'], 'over TCP too')
  const srv = await udpDecoded(addr, query('_80._tcp.web.corp.example', 'SRV'), C1)
  t.same(srv.answers?.map((a) => a.type), ['SRV'], 'SRV of a published port through a search domain')
  t.equal(rcode(await udpDecoded(addr, query('_81._tcp.web.corp.example', 'SRV'), C1)), 'NXDOMAIN', 'an unpublished port: ferry\'s NXDOMAIN')
  t.same(datas(await udpDecoded(addr, query('web.corp.example', 'AAAA'), C1)), [], 'NODATA for a type the name lacks, not forwarded')
  t.equal(up.seen.length, 0, 'no question reached the upstream')
  t.equal(server.metrics.forwarded, 0)
})

t.test('scope and other names: forwarded as before', async (t) => {
  const { addr, up } = await setup(t)
  t.equal(rcode(await udpDecoded(addr, query('db.example.com'), C1)), 'NXDOMAIN', 'a container of a network the client is not on is not expanded')
  t.same(datas(await udpDecoded(addr, query('db.example.com'), C2)), ['10.2.0.3'], 'but it is for a client of its network')
  t.same(datas(await udpDecoded(addr, query('mail.example.com'), C1)), ['192.0.2.25'], 'a name that is no container: forwarded')
  t.equal(rcode(await udpDecoded(addr, query('web.other.org'), C1)), 'NXDOMAIN', 'not a search domain: forwarded')
  t.same(up.seen.map((s) => s.q.questions?.[0]?.name), ['db.example.com', 'mail.example.com', 'web.other.org'])
})

t.test('a name ferry starts answering through a search domain leaves the cache', async (t) => {
  const { addr, up, src } = await setup(t)
  t.equal(rcode(await udpDecoded(addr, query('api.example.com'), C1)), 'NXDOMAIN', 'forwarded, negative answer cached')
  t.equal(rcode(await udpDecoded(addr, query('api.example.com'), C2)), 'NXDOMAIN', 'from the cache')
  t.equal(up.seen.length, 1)
  src.add({ network: 'n1', name: 'api', aliases: [], ip: '10.1.0.9' })
  t.same(datas(await udpDecoded(addr, query('api.example.com'), C1)), ['10.1.0.9'], 'ferry answers its client at once')
  t.equal(rcode(await udpDecoded(addr, query('api.example.com'), C2)), 'NXDOMAIN')
  t.equal(up.seen.length, 2, 'the cached NXDOMAIN was dropped: another network\'s client is asked upstream again')
})

t.test('default: the search list of the host\'s resolv.conf, followed when it changes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-search-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const conf = join(dir, 'resolv.conf')
  await writeFile(conf, 'nameserver 127.53.2.9\nsearch example.com\n')
  const { addr, server } = await setup(t, { searchDomains: undefined, upstreams: { resolvConf: conf, pollMs: 50 } })
  t.same(server.searchDomains().domains, ['example.com'])
  t.same(datas(await udpDecoded(addr, query('web.example.com'), C1)), ['10.1.0.2'])
  await writeFile(conf, 'nameserver 127.53.2.9\nsearch lan.test\n')
  await untilValue('the new search list', () => server.searchDomains().domains[0] === 'lan.test')
  t.same(datas(await udpDecoded(addr, query('web.lan.test'), C1)), ['10.1.0.2'], 'the new domain is expanded')
  t.equal(rcode(await udpDecoded(addr, query('web.example.com'), C1)), 'SERVFAIL', 'the old one no longer is (forwarded to the dead upstream of the file)')
})

t.test('with --dns upstreams and no search list given, the host\'s resolv.conf still gives it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-search-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const conf = join(dir, 'resolv.conf')
  await writeFile(conf, 'nameserver 127.53.2.9\nsearch example.com\n')
  const { addr, server, up } = await setup(t, { searchDomains: undefined, upstreams: { servers: [], resolvConf: conf } })
  t.same(server.upstreams(), [], 'the upstreams are the ones given')
  t.same(server.searchDomains().domains, ['example.com'])
  t.same(datas(await udpDecoded(addr, query('web.example.com'), C1)), ['10.1.0.2'])
  t.equal(up.seen.length, 0)
})

t.test('UDP helpers answer search expansions themselves once they know the client', async (t) => {
  const { addr, server, up } = await setup(t, { udpHelpers: 1, helperClientTtlMs: 600_000 })
  await untilValue('the helper started', () => server.helpersReady() === 1, 30_000)
  // The client's first packets teach the helper its networks (and the search list, with the answers).
  const s = createSocket('udp4')
  t.teardown(() => s.close())
  await new Promise<void>((resolve) => s.bind(0, C1, resolve))
  const got = new Map<number, unknown[]>()
  s.on('message', (m) => { const p = dnsPacket.decode(m); got.set(p.id!, datas(p)) })
  const burst = async (from: number, n: number): Promise<void> => {
    for (let i = from; i < from + n; i++) s.send(query(i % 2 === 0 ? 'web.corp.example' : 'front.example.com', 'A', { id: i }), addr.port, addr.ip)
    await untilValue(`answers ${from}..${from + n - 1}`, () => [...got.keys()].filter((id) => id >= from && id < from + n).length === n)
  }
  await untilValue('the helper knows the client', async () => {
    const before = server.helperDeferred()
    await burst(got.size, 20)
    return before > 0 && server.helperDeferred() === before
  })
  const before = server.helperDeferred()
  await burst(got.size, 200)
  t.equal(server.helperDeferred(), before, 'none of 200 expansions was passed to the main process')
  t.equal(got.size, [...got.values()].filter((d) => JSON.stringify(d) === '["10.1.0.2"]').length, 'every answer right, from either reader')
  t.equal(up.seen.length, 0, 'none went upstream')
})
})
