/**
 * The FDB and neighbour dumps' worker (src/kernel/dump-worker.ts): how it reads one datagram of a
 * dump's answer (scanReply) and which entries it keeps, packed (packEntries). Messages are written
 * by the driver's own encoder (encodeNeighFdb: the kernel's dump answers have the same layout).
 * The worker reading a real kernel: test/kernel/netlink.test.ts.
 */
import t from 'tap'
import { Flags, MessageType } from 'netlink'
import { ENTRY_BYTES, Packed, packEntries, scanReply } from '../../src/kernel/dump-worker.js'
import { bufferToMac, encodeNeighFdb } from '../../src/kernel/netlink.js'
import { ipFromBytes } from '../../src/util/ip.js'
import type { NeighFdbOp } from '../../src/kernel/types.js'

const SEQ = 7

/** Messages one after the other in one datagram; `ifindex` per op (default 5). */
function datagram (ops: Array<NeighFdbOp & { ifindex?: number }>): Buffer {
  const buf = Buffer.alloc(ops.length * 64 + 64)
  let off = 0
  for (const o of ops) off = encodeNeighFdb(buf, off, o, o.ifindex ?? 5, SEQ, 0)
  return buf.subarray(0, off)
}

/** A closing message: NLMSG_DONE or NLMSG_ERROR carrying -errno. */
function closing (type: number, errno: number, seq = SEQ, flags = Flags.MULTI): Buffer {
  const b = Buffer.alloc(20)
  b.writeUInt32LE(20, 0)
  b.writeUInt16LE(type, 4)
  b.writeUInt16LE(flags, 6)
  b.writeUInt32LE(seq, 8)
  b.writeInt32LE(-errno, 16)
  return b
}

function unpack (p: Packed): Array<{ mac: string, ip?: string }> {
  const out: Array<{ mac: string, ip?: string }> = []
  for (let i = 0; i < p.count; i++) {
    const at = i * ENTRY_BYTES
    const ip = ipFromBytes(p.bytes.subarray(at + 8, at + 8 + p.bytes[at + 6]!))
    out.push({ mac: bufferToMac(p.bytes.subarray(at, at + 6)), ...(ip === undefined ? {} : { ip }) })
  }
  return out
}

const fdb = (mac: string, dst?: string, ifindex?: number): NeighFdbOp & { ifindex?: number } =>
  ({ op: 'addFdb', entry: { dev: 'x', mac, ...(dst === undefined ? {} : { dst }) }, ...(ifindex === undefined ? {} : { ifindex }) })
const neigh = (ip: string, mac: string, ifindex?: number): NeighFdbOp & { ifindex?: number } =>
  ({ op: 'addNeigh', entry: { dev: 'x', ip, mac }, ...(ifindex === undefined ? {} : { ifindex }) })

t.test('scanReply: where the entries end, and how the dump closed', async (t) => {
  const body = datagram([fdb('02:00:00:00:00:01', '192.0.2.1'), fdb('02:00:00:00:00:02', '192.0.2.2')])
  t.same(scanReply(body, SEQ), { dataEnd: body.length, done: false, errno: 0, intr: false }, 'a datagram of entries: not over')
  const done = Buffer.concat([body, closing(MessageType.DONE, 0)])
  t.same(scanReply(done, SEQ), { dataEnd: body.length, done: true, errno: 0, intr: false }, 'NLMSG_DONE after the entries: over, entries before it')
  t.same(scanReply(closing(MessageType.DONE, 4), SEQ), { dataEnd: 0, done: true, errno: 4, intr: false }, 'the errno a dump closed with')
  t.same(scanReply(closing(MessageType.ERROR, 22), SEQ), { dataEnd: 0, done: true, errno: 22, intr: false }, 'a refused request')
  t.same(scanReply(closing(MessageType.DONE, 0, SEQ + 1), SEQ).done, false, "another request's closing message does not close this one")

  const interrupted = Buffer.from(body)
  interrupted.writeUInt16LE(interrupted.readUInt16LE(6) | Flags.DUMP_INTR, 6)
  t.equal(scanReply(interrupted, SEQ).intr, true, 'NLM_F_DUMP_INTR on any message')

  const short = Buffer.from(body)
  short.writeUInt32LE(8, 0)
  t.same(scanReply(short, SEQ), { dataEnd: 0, done: true, errno: 74, intr: false }, 'a length shorter than a header: malformed')
  const long = Buffer.from(body)
  long.writeUInt32LE(body.length + 4, 0)
  t.equal(scanReply(long, SEQ).errno, 74, 'a length past the datagram: malformed')
})

t.test("packEntries 'fdb': the device's own permanent entries with a unicast or zero MAC", async (t) => {
  const foreign = fdb('02:00:00:00:00:09', '192.0.2.9')
  const master: NeighFdbOp = { op: 'addFdb', entry: { dev: 'x', mac: '02:00:00:00:00:08', master: true } } // NTF_MASTER, not permanent
  const buf = datagram([
    fdb('02:00:00:00:00:01', '192.0.2.1'),
    fdb('00:00:00:00:00:00', '192.0.2.2'),
    fdb('02:00:00:00:00:03', '2001:db8::3'),
    fdb('02:00:00:00:00:04'),
    fdb('01:00:5e:00:00:01', '192.0.2.5'), // multicast
    { ...foreign, ifindex: 6 }, // another device
    master,
    { op: 'deleteFdb', entry: { dev: 'x', mac: '02:00:00:00:00:07', dst: '192.0.2.7' } }, // not RTM_NEWNEIGH
    neigh('10.0.0.1', '02:00:00:00:00:0a'), // a neighbour, not the device's own (no NTF_SELF)
  ])
  const p = new Packed()
  packEntries(buf, buf.length, { keep: 'fdb', ifindex: 5 }, p)
  t.same(unpack(p), [
    { mac: '02:00:00:00:00:01', ip: '192.0.2.1' },
    { mac: '00:00:00:00:00:00', ip: '192.0.2.2' },
    { mac: '02:00:00:00:00:03', ip: '2001:db8::3' },
    { mac: '02:00:00:00:00:04' },
  ])
  const q = new Packed()
  packEntries(buf, 0, { keep: 'fdb', ifindex: 5 }, q)
  t.equal(q.count, 0, 'nothing past the end given')
})

t.test("packEntries 'neigh': the device's permanent neighbours of both families", async (t) => {
  const buf = datagram([
    neigh('10.0.0.1', '02:00:00:00:00:01'),
    neigh('2001:db8::2', '02:00:00:00:00:02'),
    neigh('10.0.0.3', '02:00:00:00:00:03', 6),
    { op: 'deleteNeigh', entry: { dev: 'x', ip: '10.0.0.4', mac: '02:00:00:00:00:04' } },
    fdb('02:00:00:00:00:05'), // no address
  ])
  const p = new Packed()
  packEntries(buf, buf.length, { keep: 'neigh', ifindex: 5 }, p)
  t.same(unpack(p), [{ mac: '02:00:00:00:00:01', ip: '10.0.0.1' }, { mac: '02:00:00:00:00:02', ip: '2001:db8::2' }])
  const notPermanent = datagram([neigh('10.0.0.1', '02:00:00:00:00:01')])
  notPermanent.writeUInt16LE(0x02, 16 + 8) // NUD_REACHABLE
  const q = new Packed()
  packEntries(notPermanent, notPermanent.length, { keep: 'neigh', ifindex: 5 }, q)
  t.equal(q.count, 0, 'a neighbour the kernel learned is not ferry\'s')
})

t.test('Packed grows past its first page, entries intact', async (t) => {
  const p = new Packed()
  const mac = new Uint8Array([2, 0, 0, 0, 0, 0])
  for (let i = 0; i < 10_000; i++) {
    mac[4] = i >> 8
    mac[5] = i & 255
    p.add(mac, new Uint8Array([10, 0, i >> 8, i & 255]))
  }
  t.equal(p.count, 10_000)
  t.same(unpack(p)[9_999], { mac: '02:00:00:00:27:0f', ip: '10.0.39.15' })
})
