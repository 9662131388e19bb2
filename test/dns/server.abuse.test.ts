/**
 * What a container can do to the agent over DNS: slow readers asking for giant
 * forwarded answers, connection floods from clients and non-clients, trickled
 * queries, spoofed upstream answers. The server listens on loopback
 * (127.54.x.y; a client's identity is its source address), the upstream is a
 * fake one on loopback. Timers of the TCP limits are fake: no test waits on the
 * wall clock, they wait for events (a socket closing, a counter moving).
 */
import t, { type Test } from 'tap'
import { fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import dnsPacket, { type DecodedPacket, type Packet } from 'dns-packet'
import { DEFAULT_CACHE } from '../../src/dns/cache.js'
import { DnsServer, type DnsServerOptions, type UdpMode, type ListenAddress } from '../../src/dns/server.js'
import { StaticRecordSource } from '../../src/dns/records.js'
import type { DnsMetrics } from '../../src/dns/metrics.js'
import { DEFAULT_TCP_LIMITS, type TcpStats } from '../../src/dns/tcp.js'
import { datas, FakeClock, fakeUpstream, query, rcode, tcpAsk, udpAsk, UDP_MODES } from '../harness/dns.js'
import { until as untilChecked } from '../harness/until.js'

/** The UDP transport of the servers `startServer` makes (each test runs over both; see UDP_MODES). */
let udp: UdpMode = 'dgram'

const SERVER_IP = '127.54.0.1'
/** Every 127.54.10.x is a client on n1; anything else is a stranger. */
const client = (i: number): string => `127.54.10.${i}`
const STRANGER = '127.54.99.1'
const clientNetworks = (ip: string): readonly string[] => ip.startsWith('127.54.10.') ? ['n1'] : []

/** Resolve once `cond` holds (checked every 2 ms; a failure after 5 s, never a hang). */
const until = (cond: () => boolean | Promise<boolean>): Promise<void> => untilChecked(cond.toString(), cond, { everyMs: 2 })

async function startServer (t: Test, over: Partial<DnsServerOptions> = {}) {
  const timers = new FakeClock(0)
  const records = new StaticRecordSource([{ network: 'n1', name: 'web', aliases: [], ip: '10.1.0.2' }])
  const server = new DnsServer({ udp, records, clientNetworks, upstreams: { servers: [] }, tcpTimers: timers, ...over })
  t.teardown(() => server.close())
  const [addr] = await server.listen([{ ip: SERVER_IP, port: 0 }])
  return { server, addr: addr!, timers }
}

function frame (msg: Buffer): Buffer {
  const len = Buffer.alloc(2)
  len.writeUInt16BE(msg.length)
  return Buffer.concat([len, msg])
}

interface Conn {
  sock: Socket
  closed: Promise<void>
  isClosed: () => boolean
  ended: () => boolean
  /** Answers read so far (when reading). */
  answers: Buffer[]
}

/** A TCP connection from `from`; resolves once connected (or closed at once). */
function open (addr: ListenAddress, from: string, read = true): Promise<Conn> {
  return new Promise((resolve) => {
    const sock = connect({ host: addr.ip, port: addr.port, localAddress: from })
    let closed = false
    let ended = false
    const answers: Buffer[] = []
    let acc = Buffer.alloc(0)
    const c: Conn = {
      sock,
      closed: new Promise((resolve) => sock.on('close', () => { closed = true; resolve() })),
      isClosed: () => closed,
      ended: () => ended,
      answers,
    }
    sock.on('error', () => undefined)
    sock.on('end', () => { ended = true })
    if (read) {
      sock.on('data', (d) => {
        acc = Buffer.concat([acc, d])
        while (acc.length >= 2 && acc.length >= 2 + acc.readUInt16BE(0)) {
          answers.push(acc.subarray(2, 2 + acc.readUInt16BE(0)))
          acc = acc.subarray(2 + acc.readUInt16BE(0))
        }
      })
    } else {
      sock.pause()
    }
    sock.once('connect', () => resolve(c))
    sock.once('close', () => resolve(c))
  })
}

/** One query over its own TCP connection, waiting for the answer or the close (no timer). */
async function ask (addr: ListenAddress, msg: Buffer, from: string): Promise<DecodedPacket | undefined> {
  const c = await open(addr, from)
  c.sock.write(frame(msg))
  await until(() => c.answers.length > 0 || c.isClosed())
  c.sock.destroy()
  const a = c.answers[0]
  return a === undefined ? undefined : dnsPacket.decode(a)
}

/** `n` connections from `from`, opened 100 at a time (the listen backlog stays short). */
async function flood (addr: ListenAddress, from: string, n: number): Promise<Conn[]> {
  const out: Conn[] = []
  for (let i = 0; i < n; i += 100) {
    out.push(...await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => open(addr, from))))
  }
  return out
}

// ---------------------------------------------------------------- memory

/** ~60 KiB of TXT rdata: 240 strings of 250 bytes. */
const BIG_RDATA = Buffer.concat(Array.from({ length: 240 }, (_, i) => Buffer.concat([Buffer.from([250]), Buffer.alloc(250, 97 + (i % 26))])))

/**
 * The answer to a query for a name starting with "big": the query's header and
 * question, then one TXT record of ~60 KiB pointing at the question's name.
 * Built by hand (no dns-packet encode), so the test upstream stays cheap.
 */
function bigAnswer (q: Buffer): Buffer {
  let off = 12
  while (q[off]! !== 0) off += 1 + q[off]!
  const qEnd = off + 5
  const head = Buffer.from(q.subarray(0, qEnd))
  head.writeUInt16BE(0x8180, 2) // QR RD RA
  head.writeUInt16BE(1, 6) // one answer
  head.writeUInt32BE(0, 8) // no authority, no additional
  const rr = Buffer.alloc(12)
  rr.writeUInt16BE(0xc00c, 0) // the question's name
  rr.writeUInt16BE(16, 2) // TXT
  rr.writeUInt16BE(1, 4) // IN
  rr.writeUInt32BE(5, 6) // TTL
  rr.writeUInt16BE(BIG_RDATA.length, 10)
  return Buffer.concat([head, rr, BIG_RDATA])
}

/** An upstream whose "big…" names have ~60 KiB answers: truncated over UDP, in full over TCP. */
async function bigUpstream (t: Test, ip: string): Promise<string> {
  const up = await fakeUpstream(ip, (q, tcp) => {
    const name = q.questions![0]!.name
    if (!name.startsWith('big')) return { answers: [{ type: 'A', name, ttl: 1, data: '192.0.2.7' }] }
    if (!tcp) return { flags: dnsPacket.TRUNCATED_RESPONSE } as Packet
    return null // answered below
  }, (raw) => raw.length > 13 && raw.subarray(13, 16).toString() === 'big' ? bigAnswer(raw) : undefined)
  t.teardown(() => up.close())
  return up.spec
}

/** The agent's resident set now and at its peak (VmRSS, VmHWM), in bytes. */
async function rssOf (pid: number): Promise<{ rss: number, peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

interface AgentStats { metrics: DnsMetrics, tcp: TcpStats, memory: NodeJS.MemoryUsage }

/** The DNS server in a process of its own (test/fixtures/dns-agent.ts). */
async function startAgent (t: Test, upstream: string): Promise<{ pid: number, addr: ListenAddress, stats: (gc?: boolean) => Promise<AgentStats> }> {
  const child = fork(fileURLToPath(new URL('../fixtures/dns-agent.ts', import.meta.url)), [], { execArgv: [...process.execArgv, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => { child.disconnect() })
  const next = (t: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const on = (m: Record<string, unknown>): void => {
      if (m.t === 'error') reject(new Error(String(m.message)))
      if (m.t !== t) return
      child.off('message', on)
      resolve(m)
    }
    child.on('message', on)
  })
  const started = next('started')
  // Idle and lifetime limits and the upstream timeout out of the way: the test
  // shows the queue caps at work, however loaded the machine is.
  child.send({ t: 'start', ip: SERVER_IP, upstream, timeoutMs: 60_000, clientPrefix: '127.54.10.', tcp: { idleMs: 600_000, maxLifetimeMs: 600_000 } })
  const { addr } = await started as { addr: ListenAddress }
  return {
    pid: child.pid!,
    addr,
    stats: async (gc = false) => {
      const r = next('stats')
      child.send({ t: 'stats', gc })
      return await r as unknown as AgentStats
    },
  }
}

for (const mode of UDP_MODES) t.test(`UDP through ${mode === 'auto' ? 'the batched addon' : 'node:dgram'}`, async (t) => {
  udp = mode

t.test('slow readers asking for 60 KiB forwarded answers: bounded queues, dropped; the agent stays small; others are answered', async (t) => {
  const upstream = await bigUpstream(t, '127.54.1.1')
  const agent = await startAgent(t, upstream)
  const addr = agent.addr

  const big = await tcpAsk(addr, query('big-check.example', 'TXT'), client(200))
  const size = dnsPacket.encodingLength(big)
  t.ok(size > 60_000 && size < 65_535, `the upstream's answer is ${size} bytes`)
  const udpBig = await udpAsk(addr, query('big-check.example', 'TXT'), client(200), 5000)
  t.ok(dnsPacket.decode(udpBig!).flag_tc, 'over UDP: truncated')
  const heapBefore = (await agent.stats(true)).memory
  const before = await rssOf(agent.pid)

  // 8 containers x 4 connections, each pipelining 300 queries for giant answers
  // (18 MB of answers per connection) and never reading one.
  const SOURCES = 8
  const PER_SOURCE = 4
  const QUERIES = 300
  const abusers: Conn[] = []
  t.teardown(() => { for (const c of abusers) c.sock.destroy() })
  for (let s = 0; s < SOURCES; s++) {
    for (let c = 0; c < PER_SOURCE; c++) {
      const conn = await open(addr, client(20 + s), false)
      const frames = Array.from({ length: QUERIES }, (_, i) => frame(query(`big-${s}-${c}-${i}.example`, 'TXT', { id: i })))
      conn.sock.write(Buffer.concat(frames))
      abusers.push(conn)
    }
  }

  // Meanwhile another container keeps asking: its own name over UDP, a forwarded
  // one over TCP, until the agent has dropped every abuser (a paused client
  // socket does not notice that the server closed it: the agent's counters tell).
  let asked = 0
  let answered = 0
  const other = client(201)
  let st = await agent.stats()
  while (st.metrics.tcpSlowReaders + st.metrics.tcpTimeouts < abusers.length) {
    asked++
    const r = await udpAsk(addr, query('web'), other, 10_000)
    if (r !== undefined && datas(dnsPacket.decode(r))[0] === '10.1.0.2') answered++
    asked++
    const f = await ask(addr, query(`small-${asked}.example`), other)
    if (f !== undefined && datas(f)[0] === '192.0.2.7') answered++
    st = await agent.stats()
  }
  const after = await rssOf(agent.pid)
  const growth = (after.peak - before.rss) / 2 ** 20
  for (const c of abusers) c.sock.destroy()
  await until(async () => (await agent.stats()).tcp.open === 0)
  // Closed sockets give their native memory back a few turns of the child's
  // event loop later: look again (after a GC each time) until it is back.
  const live = (m: NodeJS.MemoryUsage): number => m.heapUsed + m.external
  let liveGrowth = Infinity
  for (let i = 0; i < 50 && liveGrowth >= 4; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100))
    // The forwarded answers the cache keeps (bounded by its maxBytes, 8 MiB) are not retention by the abuse.
    const now = await agent.stats(true)
    liveGrowth = Math.min(liveGrowth, (live(now.memory) - live(heapBefore) - now.metrics.cacheBytes) / 2 ** 20)
  }
  const retained = ((await rssOf(agent.pid)).rss - before.rss) / 2 ** 20

  const m = st.metrics
  t.equal(m.tcpSlowReaders, SOURCES * PER_SOURCE, 'every connection that did not read was dropped for it')
  t.equal(m.tcpTimeouts, 0, 'by the queue cap, not by a timer')
  t.ok(st.tcp.peakConnectionQueued <= DEFAULT_TCP_LIMITS.maxQueuedBytes,
    `answer bytes queued on one connection stayed under the cap: peak ${st.tcp.peakConnectionQueued} <= ${DEFAULT_TCP_LIMITS.maxQueuedBytes}`)
  t.equal((await agent.stats()).tcp.queuedBytes, 0, 'every queued byte was given back')
  t.ok(asked >= 2, `the other container asked ${asked} times during the abuse`)
  t.equal(answered, asked, `and was answered every time (${answered}/${asked})`)
  // RSS is the allocator's and V8's as much as ferry's: on the 2-core machines of 2026-12 the same code grows 34–68 MiB
  // here (the landed code before this bound was raised: 60–64), where another machine saw 14–30. The unbounded queues
  // this guards against grew 251 MiB in 10 s and kept climbing; the bound sits well between. What is retained is
  // checked exactly below (live heap and buffers).
  t.ok(growth < 96, `agent RSS growth under the abuse: ${growth.toFixed(1)} MiB (bound 96 MiB)`)
  t.ok(liveGrowth < 4, `nothing is retained after it: live heap and buffers grew ${liveGrowth.toFixed(1)} MiB beyond the DNS cache's ${(st.metrics.cacheBytes / 2 ** 20).toFixed(1)} MiB`)
  t.ok(st.metrics.cacheBytes <= DEFAULT_CACHE.maxBytes, 'the cache stayed within its byte bound')
  t.comment(`figures: agent RSS ${(before.rss / 2 ** 20).toFixed(1)} MiB before, peak ${(after.peak / 2 ** 20).toFixed(1)} MiB (+${growth.toFixed(1)}), RSS +${retained.toFixed(1)} MiB after it, live JS heap and buffers +${liveGrowth.toFixed(1)} MiB; ` +
    `forwarded ${m.forwarded}; peak queued on one connection ${st.tcp.peakConnectionQueued} B; other client answered ${answered}/${asked}`)
  t.equal(m.internalErrors, 0)
})

// ---------------------------------------------------------------- floods

t.test('a non-client\'s connection flood takes no slot; a client is still answered', async (t) => {
  const { server, addr } = await startServer(t)
  const conns = await flood(addr, STRANGER, DEFAULT_TCP_LIMITS.maxConnections + 100)
  t.teardown(() => { for (const c of conns) c.sock.destroy() })
  const r = await tcpAsk(addr, query('web'), client(1))
  t.same(datas(r), ['10.1.0.2'], 'a client is answered over TCP')
  t.equal(server.metrics.tcpRejectedNonClient, DEFAULT_TCP_LIMITS.maxConnections + 100, 'every stranger\'s connection closed at accept')
  t.equal(server.metrics.tcpRejected, 0, 'the total cap was never reached')
  await Promise.all(conns.map((c) => c.closed))
  t.ok(conns.every((c) => c.isClosed()), 'every stranger\'s connection is closed')
  await until(() => server.tcpStats().open === 0)
  t.equal(server.metrics.tcpConnections, 1, 'only the client took a slot')
})

t.test('one client\'s connection flood is capped per source; other clients are still answered', async (t) => {
  const { server, addr } = await startServer(t)
  const n = DEFAULT_TCP_LIMITS.maxConnections + 100
  const conns = await flood(addr, client(7), n)
  t.teardown(() => { for (const c of conns) c.sock.destroy() })
  const r = await tcpAsk(addr, query('web'), client(8))
  t.same(datas(r), ['10.1.0.2'], 'another client is answered over TCP')
  const per = DEFAULT_TCP_LIMITS.maxConnectionsPerSource
  t.equal(server.metrics.tcpRejectedPerSource, n - per, `all but ${per} refused at accept`)
  await until(() => conns.filter((c) => c.isClosed()).length === n - per && server.tcpStats().open === per)
  t.equal(server.tcpStats().open, per, `the flooding client holds ${per} connections`)
  const kept = conns.find((c) => !c.isClosed())!
  kept.sock.write(frame(query('web')))
  await until(() => kept.answers.length === 1)
  t.same(datas(dnsPacket.decode(kept.answers[0]!)), ['10.1.0.2'], 'its admitted connections still work')
  for (const c of conns) c.sock.destroy()
  await until(() => server.tcpStats().open === 0)
  t.equal((await tcpAsk(addr, query('web'), client(7))).answers?.length, 1, 'once they are closed it connects again')
})

// ---------------------------------------------------------------- time

t.test('a trickling client hits the query deadline; trickled bytes do not keep a connection alive', async (t) => {
  const { server, addr, timers } = await startServer(t)
  const lim = DEFAULT_TCP_LIMITS
  const c = await open(addr, client(1))
  await until(() => server.tcpStats().open === 1)
  const bytes = frame(query('web'))
  const step = lim.queryDeadlineMs / 4
  let sent = 0
  const base = server.tcpStats().bytesReceived
  for (; sent < 4; sent++) {
    c.sock.write(bytes.subarray(sent, sent + 1))
    await until(() => server.tcpStats().bytesReceived === base + sent + 1)
    t.notOk(c.isClosed(), `open after ${sent + 1} bytes, ${timers.now()} ms`)
    timers.advance(step)
  }
  await c.closed
  t.equal(timers.now(), lim.queryDeadlineMs, `closed at the deadline of the query (${timers.now()} ms), long before the idle time (${lim.idleMs} ms)`)
  t.equal(server.metrics.tcpTimeouts, 1)
  t.equal(c.answers.length, 0)
  t.equal(server.metrics.tcp, 0, 'the query never counted as received')
})

t.test('idle connections close; lifetime and query count are capped, gracefully', async (t) => {
  const { server, addr, timers } = await startServer(t, { tcp: { maxQueries: 3 } })
  const lim = DEFAULT_TCP_LIMITS

  const idle = await open(addr, client(1))
  idle.sock.write(frame(query('web')))
  await until(() => idle.answers.length === 1)
  timers.advance(lim.idleMs - 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(idle.isClosed(), 'open just before the idle time')
  timers.advance(1)
  await idle.closed
  t.equal(server.metrics.tcpTimeouts, 1, 'closed at the idle time')

  const busy = await open(addr, client(2))
  busy.sock.write(Buffer.concat(Array.from({ length: 5 }, (_, i) => frame(query('web', 'A', { id: i })))))
  await busy.closed
  t.equal(busy.answers.length, 3, 'three queries answered, then the connection ended')
  t.ok(busy.ended(), 'ended by the server (FIN after the answers), not reset')
  t.equal(server.metrics.tcpClosedAtLimit, 1)

  // Another server, whose connections may carry more than 3 queries.
  const other = await startServer(t)
  const long = await open(other.addr, client(3))
  const t0 = other.timers.now()
  // A query every 4 s keeps it from idling; it still ends at its lifetime.
  const every = 4000
  for (let i = 0; other.timers.now() - t0 + every < lim.maxLifetimeMs; i++) {
    long.sock.write(frame(query('web')))
    await until(() => long.answers.length === i + 1)
    other.timers.advance(every)
  }
  t.notOk(long.isClosed(), 'open just before its lifetime')
  other.timers.advance(lim.maxLifetimeMs - (other.timers.now() - t0))
  await long.closed
  t.ok(long.ended(), 'a long-lived connection is ended at its lifetime')
  t.equal(other.server.metrics.tcpClosedAtLimit, 1)
  t.equal(other.server.metrics.tcpTimeouts, 0)
  await until(() => other.server.tcpStats().open === 0 && server.tcpStats().open === 0)
  t.equal(other.server.metrics.tcp, Math.ceil((lim.maxLifetimeMs - every) / every), 'it was used until then')
})

// ---------------------------------------------------------------- upstream spoofing

t.test('each forwarded UDP query leaves from its own source port', async (t) => {
  const up = await fakeUpstream('127.54.1.2', (q) => ({ answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 1, data: '192.0.2.1' }] }))
  t.teardown(() => up.close())
  const { server, addr } = await startServer(t, { upstreams: { servers: [up.spec] } })
  for (let i = 0; i < 20; i++) {
    const r = await udpAsk(addr, query(`n${i}.example`), client(1), 5000)
    t.same(datas(dnsPacket.decode(r!)), ['192.0.2.1'])
  }
  const ports = new Set(up.seen.map((s) => s.port))
  t.ok(ports.size >= 15, `20 queries left from ${ports.size} different ports`)
  t.equal(server.upstreamSockets, 0, 'no socket is left open')
})

t.test('spoofed upstream answers are refused: wrong id or question means asking again over TCP', async (t) => {
  for (const forge of ['id', 'question'] as const) {
    const up = await fakeUpstream('127.54.1.3', (q, tcp) => {
      const name = q.questions![0]!.name
      const real = { answers: [{ type: 'A', name, ttl: 1, data: '192.0.2.1' }] } as Packet
      if (tcp) return real
      // The forger's answer arrives from the right address and port; the real one never comes over UDP.
      if (forge === 'id') return { id: (q.id! + 1) & 0xffff, answers: [{ type: 'A', name, ttl: 1, data: '203.0.113.66' }] } as Packet
      return { questions: [{ type: 'A', name: 'other.example', class: 'IN' }], answers: [{ type: 'A', name: 'other.example', ttl: 1, data: '203.0.113.66' }] } as Packet
    })
    const { server, addr } = await startServer(t, { upstreams: { servers: [up.spec] } })
    const r = await udpAsk(addr, query('victim.example'), client(1), 5000)
    t.same(datas(dnsPacket.decode(r!)), ['192.0.2.1'], `wrong ${forge}: the real answer is used`)
    t.equal(server.metrics.spoofedAnswers, 1, `wrong ${forge}: counted`)
    t.same(up.seen.map((s) => s.tcp), [false, true], `wrong ${forge}: asked again over TCP`)
    t.equal(server.metrics.upstreamTimeouts, 0, 'at once, not after a timeout')
    await up.close()
    await server.close()
  }
})

t.test('spoofed upstream answers from another port or address never reach the forwarder', async (t) => {
  const forgers = await Promise.all(['127.54.1.4', '127.54.1.5'].map((ip) => new Promise<ReturnType<typeof createSocket>>((resolve) => {
    const s = createSocket('udp4')
    s.bind(0, ip, () => resolve(s))
  })))
  t.teardown(() => { for (const f of forgers) f.close() })
  const up = await fakeUpstream('127.54.1.4', (q, _tcp, from) => {
    const name = q.questions![0]!.name
    // Two forgers answer first, to the query's own source port, with its id and question.
    const forged = dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: 'A', name, ttl: 1, data: '203.0.113.66' }] })
    for (const f of forgers) f.send(forged, from!.port, from!.address)
    return { answers: [{ type: 'A', name, ttl: 1, data: '192.0.2.1' }] }
  })
  t.teardown(() => up.close())
  const { server, addr } = await startServer(t, { upstreams: { servers: [up.spec] } })
  for (let i = 0; i < 5; i++) {
    const r = await udpAsk(addr, query(`v${i}.example`), client(1), 5000)
    t.same(datas(dnsPacket.decode(r!)), ['192.0.2.1'], 'the real answer is used')
  }
  t.equal(up.seen.filter((s) => s.tcp).length, 0, 'the kernel dropped the forgeries (the socket is connected): no fallback needed')
  t.equal(rcode(await tcpAsk(addr, query('web'), client(1))), 'NOERROR')
})
})
