/**
 * The batched UDP socket (src/dns/batch.ts and its addon, src/dns/native) on
 * loopback: batches larger than one `recvmmsg`, datagrams over a slot, IPv6
 * sources, what a closed socket does, the addon's checks of its arguments, and
 * the server choosing it. The DNS server's own tests run over both transports
 * (UDP_MODES in test/harness/dns.ts).
 */
import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { BatchSocket, bindingPath, loadBatch, MAX_BATCH, SLOT, type BatchBinding } from '../../src/dns/batch.js'
import { DnsServer } from '../../src/dns/server.js'
import { StaticRecordSource } from '../../src/dns/records.js'
import { datas, query, udpDecoded } from '../harness/dns.js'
import { until } from '../harness/until.js'

const lib = loadBatch()
if (lib instanceof Error) throw lib // the addon must build with `npm ci`; a test that skipped would hide it

const binding: BatchBinding = lib

/** A socket answering each datagram with "<address> <port> <length>" (or dropping ones that start with "drop"). */
function echo (t: Tap.Test, family: 4 | 6, seen: string[] = [], drops = { n: 0 }): BatchSocket {
  const s = new BatchSocket(binding, family, family === 4 ? '127.0.0.1' : '::1', 0)
  t.teardown(() => s.close())
  s.start((msg, address, port) => {
    const text = msg.toString('latin1')
    seen.push(text)
    if (text.startsWith('throw')) throw new Error('handler failed')
    return text.startsWith('drop') ? undefined : Buffer.from(`${address} ${port} ${msg.length} ${text}`)
  }, () => { drops.n += 1000 }, () => { drops.n++ })
  return s
}

function client (t: Tap.Test, family: 4 | 6): Promise<{ sock: Socket, got: string[] }> {
  const sock = createSocket(family === 4 ? 'udp4' : 'udp6')
  const got: string[] = []
  sock.on('message', (m) => got.push(m.toString('latin1')))
  t.teardown(() => sock.close())
  return new Promise((resolve) => sock.bind(0, family === 4 ? '127.0.0.1' : '::1', () => resolve({ sock, got })))
}

function send (sock: Socket, msg: Buffer | string, port: number, ip: string): Promise<void> {
  return new Promise((resolve, reject) => sock.send(msg, port, ip, (err) => (err ? reject(err) : resolve())))
}

t.test('the addon loads from build/Release', async (t) => {
  t.match(bindingPath(), /build\/Release\/ferry_udp_batch\.node$/)
  t.equal(typeof binding.open, 'function')
  const bad = loadBatch('/nonexistent/ferry_udp_batch.node')
  t.ok(bad instanceof Error)
  t.match((bad as Error).message, /did not load .*using node:dgram/)
})

t.test('more datagrams than one batch: every one answered, to its own source, in fewer reads than datagrams', async (t) => {
  for (const family of [4, 6] as const) {
    const seen: string[] = []
    const s = echo(t, family, seen)
    const ip = family === 4 ? '127.0.0.1' : '::1'
    const c = await client(t, family)
    const n = MAX_BATCH * 3 + 5
    // Sent before the server's loop turns: the kernel queues them and one wake-up reads them in batches.
    await Promise.all(Array.from({ length: n }, (_, i) => send(c.sock, `q${i}`, s.port, ip)))
    await until(`${n} answers over IPv${family}`, () => c.got.length === n)
    const port = c.sock.address().port
    t.same(new Set(c.got), new Set(Array.from({ length: n }, (_, i) => `${ip} ${port} ${String(i).length + 1} q${i}`)), `IPv${family}: each answer names its source`)
    const st = s.stats()
    t.equal(st.datagrams, n)
    t.ok(st.recvCalls < n, `IPv${family}: ${st.recvCalls} reads for ${n} datagrams`)
    t.equal(st.sendErrors, 0)
  }
})

t.test('a datagram longer than a slot is dropped and counted; an empty one is handed over; unanswered ones send nothing; a throw does not stop the batch', async (t) => {
  const drops = { n: 0 }
  const seen: string[] = []
  const s = echo(t, 4, seen, drops)
  const c = await client(t, 4)
  await send(c.sock, Buffer.alloc(SLOT + 1, 0x61), s.port, '127.0.0.1')
  await send(c.sock, Buffer.alloc(0), s.port, '127.0.0.1')
  await send(c.sock, 'drop me', s.port, '127.0.0.1')
  await send(c.sock, 'throw', s.port, '127.0.0.1')
  await send(c.sock, Buffer.alloc(SLOT, 0x62), s.port, '127.0.0.1')
  await send(c.sock, 'after', s.port, '127.0.0.1')
  await until('the last one answered', () => c.got.some((g) => g.endsWith(' after')))
  t.equal(drops.n, 1 + 1000, 'one oversized datagram dropped, one handler error reported')
  t.equal(s.stats().oversized, 1)
  t.same(seen.map((x) => x.slice(0, 5)), ['', 'drop ', 'throw', 'bbbbb', 'after'])
  t.equal(c.got.length, 3, 'answers: the empty one, the full slot and "after"')
  t.match(c.got[0], /^127\.0\.0\.1 \d+ 0 $/)
  t.match(c.got[1], new RegExp(`^127\\.0\\.0\\.1 \\d+ ${SLOT} b`))
})

t.test('a closed socket: no more reads or sends, close again is nothing, the port is free', async (t) => {
  const seen: string[] = []
  const s = echo(t, 6, seen)
  const c = await client(t, 6)
  await send(c.sock, 'one', s.port, '::1')
  await until('answered', () => c.got.length === 1)
  s.close()
  s.close()
  t.equal(s.sendTo(Buffer.from('x'), c.sock.address().port, '::1'), false)
  await send(c.sock, 'two', s.port, '::1').catch(() => undefined)
  const again = new BatchSocket(binding, 6, '::1', s.port)
  t.equal(again.port, s.port, 'the port can be bound again')
  again.close()
  t.same(seen, ['one'])
})

t.test('sendTo: a datagram to a textual address of the socket\'s family', async (t) => {
  const s = echo(t, 4)
  const c = await client(t, 4)
  t.equal(s.sendTo(Buffer.from('late answer'), c.sock.address().port, '127.0.0.1'), true)
  await until('received', () => c.got.includes('late answer'))
  t.throws(() => s.sendTo(Buffer.from('x'), c.sock.address().port, '::1'), /not an address of the socket's family/)
  t.throws(() => s.sendTo(Buffer.from('x'), 0, '127.0.0.1'), /sendTo\(handle, buffer, port 1-65535, ip\)/)
})

t.test('the addon checks what it is given', async (t) => {
  t.throws(() => binding.open(5 as 4, '127.0.0.1', 0, 0), /open\(family 4\|6/)
  t.throws(() => binding.open(4, '::1', 0, 0), /not an address of that family/)
  t.throws(() => binding.open(4, '127.0.0.1', 70000, 0), /port 0-65535/)
  t.throws(() => binding.port({}), /not a socket handle/)
  const first = new BatchSocket(binding, 4, '127.0.0.1', 0)
  t.teardown(() => first.close())
  t.throws(() => new BatchSocket(binding, 4, '127.0.0.1', first.port), { message: /bind 127\.0\.0\.1 port \d+: Address already in use/, errno: 98 })
  const h = binding.open(4, '127.0.0.1', 0, 0)
  const small = Buffer.alloc(16)
  t.throws(() => binding.start(h, small, small, small, small, 4, 512, () => undefined), /buffers too small/)
  t.throws(() => binding.start(h, small, small, small, small, 0, 512, () => undefined), /max 1-1024/)
  binding.close(h)
  t.throws(() => binding.send(h, 1), /send: Bad file descriptor/)
})

t.test('the server serves UDP in batches when the addon loads (IPv4 and IPv6 listen addresses), node:dgram when told', async (t) => {
  const records = new StaticRecordSource([{ network: 'n1', name: 'web', aliases: [], ip: '10.0.0.2' }])
  for (const udp of ['auto', 'dgram'] as const) {
    const server = new DnsServer({ udp, records, clientNetworks: () => ['n1'], upstreams: { servers: [] } })
    t.teardown(() => server.close())
    t.equal(server.udpMode, udp === 'auto' ? 'batch' : 'dgram')
    const [a4, a6] = await server.listen([{ ip: '127.53.0.1', port: 0 }, { ip: '::1', port: 0 }])
    t.same(datas(await udpDecoded(a4!, query('web'), '127.0.0.1')), ['10.0.0.2'])
    t.same(datas(await udpDecoded(a6!, query('web'), '::1')), ['10.0.0.2'])
    await server.close()
  }
  const withHelpers = new DnsServer({ records, clientNetworks: () => ['n1'], upstreams: { servers: [] }, udpHelpers: 1 })
  t.equal(withHelpers.udpMode, 'dgram', 'auto with UDP helpers: node:dgram (they share its sockets)')
  await withHelpers.close()
})
