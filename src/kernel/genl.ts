/**
 * Generic netlink, what every family ferry speaks shares (WireGuard's configuration, src/kernel/wireguard-genl.ts;
 * ethtool's features, src/kernel/ethtool-genl.ts): attributes (struct nlattr: u16 length, u16 type, payload,
 * padding to 4 bytes) encoded and parsed by ferry itself, the controller's CTRL_CMD_GETFAMILY to find a
 * family's id, and one request and its answers over the `netlink` package's socket (src/kernel/netlink.ts'
 * NetlinkReplySocket, which turns an errno in a dump's closing NLMSG_DONE into a rejection).
 *
 * Integers are in host byte order (x86 and arm64 hosts: little endian).
 */
import { MessageType, Protocol, RawNetlinkSocket, parseError } from 'netlink'
import type { NetlinkMessage } from 'netlink'
import { FerryError } from '../errors/errors.js'
import { KernelErrno, NetlinkReplySocket } from './netlink.js'

const GENL_ID_CTRL = 16
const CTRL_CMD_GETFAMILY = 3
const CTRL_VERSION = 1
const CTRL_ATTR_FAMILY_ID = 1
const CTRL_ATTR_FAMILY_NAME = 2
const NLA_F_NESTED = 0x8000
const NLA_TYPE_MASK = 0x3fff
const GENL_HDRLEN = 4
const REQUEST_TIMEOUT_MS = 10_000

export interface RawAttr { type: number, data: Buffer }

/** One netlink attribute (length, type, payload, padding to 4 bytes). */
export function attr (type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length
  if (len > 0xffff) throw new FerryError('INTERNAL', `a netlink attribute of ${len} bytes does not fit its 16-bit length`)
  const head = Buffer.alloc(4)
  head.writeUInt16LE(len, 0)
  head.writeUInt16LE(type, 2)
  const pad = (4 - (len % 4)) % 4
  return Buffer.concat([head, payload, Buffer.alloc(pad)])
}

/** A nested attribute, flagged NLA_F_NESTED as libmnl's mnl_attr_nest_start() does. */
export function nest (type: number, children: readonly Buffer[]): Buffer {
  return attr(type | NLA_F_NESTED, Buffer.concat(children))
}

export function u32 (n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }

export function strz (s: string): Buffer { return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]) }

/** The attributes of CTRL_CMD_GETFAMILY for one family name. */
export function encodeGetFamily (name: string): Buffer {
  return attr(CTRL_ATTR_FAMILY_NAME, strz(name))
}

/** The attributes of a buffer; a truncated or overlong one is a KERNEL error (distrust what comes back). */
export function parseAttrs (b: Buffer): RawAttr[] {
  const out: RawAttr[] = []
  let off = 0
  while (off + 4 <= b.length) {
    const len = b.readUInt16LE(off)
    if (len < 4 || off + len > b.length) throw new FerryError('KERNEL', `the kernel answered a malformed attribute (length ${len} at ${off} of ${b.length})`)
    out.push({ type: b.readUInt16LE(off + 2) & NLA_TYPE_MASK, data: b.subarray(off + 4, off + len) })
    off += (len + 3) & ~3
  }
  return out
}

/** CTRL_ATTR_FAMILY_ID of a CTRL_CMD_NEWFAMILY answer (the attributes after the genl header). */
export function decodeFamilyId (attrs: Buffer): number {
  const a = parseAttrs(attrs).find((x) => x.type === CTRL_ATTR_FAMILY_ID)
  if (a === undefined || a.data.length < 2) throw new FerryError('KERNEL', 'the generic netlink controller answered without a family id')
  return a.data.readUInt16LE(0)
}

/** The generic netlink family id of `name`; undefined when the kernel has no such family (ENOENT). */
export async function resolveFamily (sock: NetlinkReplySocket, name: string): Promise<number | undefined> {
  try {
    const msgs = await genlRequest(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_VERSION, encodeGetFamily(name), 0)
    const first = msgs[0]
    if (first === undefined) throw new FerryError('KERNEL', `the generic netlink controller did not answer for ${name}`)
    return decodeFamilyId(first)
  } catch (err) {
    if (err instanceof KernelErrno && err.code === 'ENOENT') return undefined
    throw err
  }
}

/** One request; resolves the attributes (after the genl header) of each answer message. */
export async function genlRequest (sock: NetlinkReplySocket, family: number, cmd: number, version: number, attrs: Buffer, flags: number): Promise<Buffer[]> {
  const header = Buffer.from([cmd, version, 0, 0])
  const [msgs] = await sock.request(family, [header, attrs], { flags, checkError: false, timeout: REQUEST_TIMEOUT_MS }) as [NetlinkMessage[], unknown]
  const first = msgs[0]
  if (first !== undefined && first.type === MessageType.ERROR) {
    const { errno } = parseError(first.data, first.flags)
    if (errno !== 0) throw new KernelErrno(-errno)
    return []
  }
  return msgs.filter((m) => m.type === family && m.data.length >= GENL_HDRLEN).map((m) => m.data.subarray(GENL_HDRLEN))
}

/** A generic netlink socket (the WireGuard and ethtool families are reached through one each). */
export function openGenlSocket (): NetlinkReplySocket {
  try {
    return new NetlinkReplySocket(new RawNetlinkSocket(Protocol.GENERIC, { messagePeeking: false, msgBufferSize: 65536, recvBufferSize: 0, sendBufferSize: 0 }))
  } catch (err) {
    throw new FerryError('KERNEL', `cannot open a generic netlink socket: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}

/**
 * A socket and the id of generic netlink family `name`; KERNEL when the lookup fails
 * ("cannot find <what> generic netlink family"), UNSUPPORTED with `missing` when the kernel has no such family.
 */
export async function openGenlFamily (name: string, what: string, missing: string): Promise<{ sock: NetlinkReplySocket, family: number }> {
  const sock = openGenlSocket()
  const family = await resolveFamily(sock, name).catch((err: unknown) => { sock.close(); throw genlError(`cannot find ${what} generic netlink family`, err) })
  if (family === undefined) {
    sock.close()
    throw new FerryError('UNSUPPORTED', `${missing} (generic netlink family "${name}" not found)`)
  }
  return { sock, family }
}

export function genlError (what: string, err: unknown): FerryError {
  if (err instanceof FerryError) return err
  return new FerryError('KERNEL', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
}
