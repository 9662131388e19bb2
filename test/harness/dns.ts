/**
 * DNS test helpers: queries over UDP and TCP from a chosen loopback source
 * address (a client's identity is its source address), and fake upstream DNS
 * servers on loopback.
 */
import { createSocket } from 'node:dgram'
import { connect, createServer, isIPv6, type Server as TcpServer } from 'node:net'
import dnsPacket, { type Answer, type DecodedPacket, type Packet, type RecordType } from 'dns-packet'
import type { ListenAddress } from '../../src/dns/server.js'

/** The source queries come from unless told: a client on n1 in the DNS tests. */
export const DEFAULT_CLIENT = '127.53.10.1'

export interface QueryOpts {
  id?: number
  edns?: number
  options?: { code: number, data: Buffer }[]
}

export function query (name: string, type: RecordType = 'A', o: QueryOpts = {}): Buffer {
  const p: Packet = { type: 'query', id: o.id ?? 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] }
  if (o.edns !== undefined) {
    p.additionals = [{ type: 'OPT', name: '.', udpPayloadSize: o.edns, flags: 0, options: o.options ?? [] } as unknown as Answer]
  }
  return dnsPacket.encode(p)
}

/** Send one datagram from `from`; the first reply, or undefined after `timeoutMs`. */
export function udpAsk (server: ListenAddress, msg: Buffer, from = DEFAULT_CLIENT, timeoutMs = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const s = createSocket(isIPv6(from) ? 'udp6' : 'udp4')
    const timer = setTimeout(() => { s.close(); resolve(undefined) }, timeoutMs)
    s.on('message', (m) => { clearTimeout(timer); s.close(); resolve(m) })
    s.on('error', (err) => { clearTimeout(timer); s.close(); reject(err) })
    s.bind(0, from, () => s.send(msg, server.port, server.ip))
  })
}

export async function udpDecoded (server: ListenAddress, msg: Buffer, from = DEFAULT_CLIENT, timeoutMs = 1000): Promise<DecodedPacket> {
  const r = await udpAsk(server, msg, from, timeoutMs)
  if (r === undefined) throw new Error('no answer')
  return dnsPacket.decode(r)
}

/** One query over TCP from `from`; the decoded reply. */
export function tcpAsk (server: ListenAddress, msg: Buffer, from = DEFAULT_CLIENT): Promise<DecodedPacket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: server.ip, port: server.port, localAddress: from })
    let acc = Buffer.alloc(0)
    s.setTimeout(3000, () => { s.destroy(); reject(new Error('tcp timeout')) })
    s.on('connect', () => {
      const len = Buffer.alloc(2)
      len.writeUInt16BE(msg.length)
      s.write(Buffer.concat([len, msg]))
    })
    s.on('data', (d) => {
      acc = Buffer.concat([acc, d])
      if (acc.length >= 2 && acc.length >= 2 + acc.readUInt16BE(0)) {
        s.destroy()
        resolve(dnsPacket.decode(acc.subarray(2, 2 + acc.readUInt16BE(0))))
      }
    })
    s.on('error', reject)
  })
}

export const rcode = (p: DecodedPacket): string => (p as DecodedPacket & { rcode: string }).rcode
export const datas = (p: DecodedPacket): unknown[] => (p.answers ?? []).map((a) => (a as { data: unknown }).data)

/**
 * An upstream's answer to `q` (null: stay silent); `from` is the UDP query's
 * source. Fields given replace the echoed id and question (to forge answers).
 */
export type Handler = (q: DecodedPacket, tcp: boolean, from?: { address: string, port: number }) => (Packet & { rcode?: number }) | null

export interface FakeUpstream {
  addr: ListenAddress
  spec: string
  seen: { q: DecodedPacket, tcp: boolean, raw: Buffer, port?: number }[]
  close (): Promise<void>
}

/**
 * A DNS server on `ip` (UDP and TCP, same port) that answers with `handler`
 * (null: stay silent). `tcpRaw`, when it returns bytes, answers a TCP query
 * without decoding it (for large answers built by hand).
 */
export async function fakeUpstream (ip: string, handler: Handler, tcpRaw?: (raw: Buffer) => Buffer | undefined): Promise<FakeUpstream> {
  const seen: FakeUpstream['seen'] = []
  const answer = (raw: Buffer, tcp: boolean, from?: { address: string, port: number }): Buffer | undefined => {
    const q = dnsPacket.decode(raw)
    seen.push({ q, tcp, raw, port: from?.port })
    const r = handler(q, tcp, from)
    if (r === null) return undefined
    const { rcode = 0, ...rest } = r
    return dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED | rcode, questions: q.questions, ...rest })
  }
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket(isIPv6(ip) ? 'udp6' : 'udp4')
    await new Promise<void>((resolve) => udp.bind(0, ip, resolve))
    const port = udp.address().port
    const tcp: TcpServer = createServer((s) => {
      let acc = Buffer.alloc(0)
      s.on('data', (d) => {
        acc = Buffer.concat([acc, d])
        while (acc.length >= 2 && acc.length >= 2 + acc.readUInt16BE(0)) {
          const len = acc.readUInt16BE(0)
          const raw = acc.subarray(2, 2 + len)
          const out = tcpRaw?.(raw) ?? answer(raw, true)
          acc = acc.subarray(2 + len)
          if (out !== undefined) {
            const l = Buffer.alloc(2)
            l.writeUInt16BE(out.length)
            s.write(Buffer.concat([l, out]))
          }
        }
      })
      s.on('error', () => undefined)
    })
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false))
      tcp.listen(port, ip, () => resolve(true))
    })
    if (!ok) {
      udp.close()
      if (attempt > 10) throw new Error('no free port for the fake upstream')
      continue
    }
    udp.on('message', (m, r) => {
      const out = answer(m, false, r)
      if (out !== undefined) udp.send(out, r.port, r.address)
    })
    return {
      addr: { ip, port },
      spec: isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`,
      seen,
      close: async () => {
        udp.close()
        await new Promise<void>((resolve) => tcp.close(() => resolve()))
      },
    }
  }
}

/** A loopback UDP port nobody listens on (ICMP port unreachable). */
export async function deadPort (ip: string): Promise<string> {
  const s = createSocket(isIPv6(ip) ? 'udp6' : 'udp4')
  await new Promise<void>((resolve) => s.bind(0, ip, resolve))
  const port = s.address().port
  await new Promise<void>((resolve) => s.close(resolve))
  return `${ip}:${port}`
}

/**
 * A fake clock for the DNS cache and forwarder: `now` moves only with
 * `advance`, which fires the timers that fall due, in order of their time.
 */
export class FakeClock {
  private t: number
  private seq = 0
  private readonly timers = new Map<number, { at: number, fn: () => void }>()
  /** Every timer ever set, in order: its delay in ms. */
  readonly delays: number[] = []

  constructor (start = 1_000_000) {
    this.t = start
  }

  now = (): number => this.t

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq
    this.delays.push(ms)
    this.timers.set(id, { at: this.t + ms, fn })
    return id
  }

  clearTimeout = (h: unknown): void => {
    this.timers.delete(h as number)
  }

  /** Timers pending now, as delays from now. */
  pending (): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b)
  }

  advance (ms: number): void {
    const end = this.t + ms
    for (;;) {
      let next: [number, { at: number, fn: () => void }] | undefined
      for (const e of this.timers) if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e
      if (next === undefined) break
      this.timers.delete(next[0])
      this.t = next[1].at
      next[1].fn()
    }
    this.t = end
  }
}

/**
 * The UDP transports the server tests run over (each file's tests once per mode):
 * 'auto' is the batched addon (test/dns/batch.test.ts fails when it does not load;
 * with UDP helpers it is `node:dgram`), 'dgram' is `node:dgram`.
 */
export const UDP_MODES = ['auto', 'dgram'] as const
