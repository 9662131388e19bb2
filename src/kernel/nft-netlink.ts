/**
 * nf_tables over NETLINK_NETFILTER sockets of the calling process's network
 * namespace, through the `netlink` package's socket (no nft process):
 *
 * - The ruleset generation: NFT_MSG_GETGEN, one small request and one answer
 *   (NFT_MSG_NEWGEN with NFTA_GEN_ID). The kernel increments it once at every
 *   committed nf_tables transaction, whoever commits it (nft, iptables-nft,
 *   firewalld, Docker); an aborted transaction (a refused one, `nft -c`), a
 *   transaction that changed nothing and any read leave it as it is. So two equal
 *   readings mean no table, chain, rule, set or element of any nftables table
 *   changed in between.
 * - Deletions of a table's tables, chains, rules and sets, from the nf_tables
 *   event group (what `nft monitor destroy` prints), read in this process: only
 *   the message type and the table name are looked at, every other event
 *   (elements, additions, generations) is dropped unparsed.
 */
import { NetlinkSocket, Protocol, RawNetlinkSocket, parseAttributes } from 'netlink'
import type { NetlinkMessage } from 'netlink'
import { FerryError } from '../errors/errors.js'

export type DeletedKind = 'table' | 'chain' | 'rule' | 'set'

const NFNL_SUBSYS_NFTABLES = 10
const NFT_MSG_NEWGEN = 15
const NFT_MSG_GETGEN = 16
const NFTA_GEN_ID = 1
/** NFNLGRP_NFTABLES: the multicast group of nf_tables events. */
const NFNLGRP_NFTABLES = 7
/** NFT_MSG_DELTABLE, DELCHAIN, DELRULE, DELSET: their first attribute is the table's name (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, …). */
const DELETIONS = new Map<number, DeletedKind>([[2, 'table'], [5, 'chain'], [8, 'rule'], [11, 'set']])
const NAME_ATTR = 1
/** The events socket's receive buffer (the kernel caps it at net.core.rmem_max); an overflow is reported, not hidden. */
const EVENTS_RCVBUF = 1 << 20
/** struct nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id 0. */
const NFGENMSG = Buffer.alloc(4)
const REQUEST_TIMEOUT_MS = 5000

/** The generation in an NFT_MSG_NEWGEN answer; undefined when the message is not one. */
export function parseGeneration (m: Pick<NetlinkMessage, 'type' | 'data'>): number | undefined {
  if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) || m.data.length < NFGENMSG.length) return undefined
  let id: number | undefined
  parseAttributes(m.data.subarray(NFGENMSG.length), (a) => {
    if (a.type === NFTA_GEN_ID && a.data.length >= 4) id = a.data.readUInt32BE(0)
  })
  return id
}

/** The generation after `n` more commits (the kernel skips 0 when the u32 wraps). */
export function advanceGeneration (gen: number, n: number): number {
  let g = gen
  for (let i = 0; i < n; i++) {
    g = (g + 1) >>> 0
    if (g === 0) g = 1
  }
  return g
}

/** Reads the generation; one socket per reader, opened at the first read (it keeps no event loop alive while idle). */
export class NftGeneration {
  private sock: NetlinkSocket | undefined

  async read (): Promise<number> {
    try {
      this.sock ??= new NetlinkSocket(new RawNetlinkSocket(Protocol.NETFILTER, { messagePeeking: false, recvBufferSize: 0, sendBufferSize: 0 }))
      const sock = this.sock
      const [msgs] = await sock.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, NFGENMSG, { checkError: false, timeout: REQUEST_TIMEOUT_MS })
      for (const m of msgs) {
        const gen = parseGeneration(m)
        if (gen !== undefined) return gen
      }
      throw new Error('no generation in the answer')
    } catch (err) {
      this.close()
      throw new FerryError('KERNEL', `cannot read the nftables generation: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  }

  close (): void {
    try { this.sock?.close() } catch { /* already closed */ }
    this.sock = undefined
  }
}

/**
 * The kind of object an nf_tables event says was deleted from table `family name`
 * (family as in nfgenmsg: NFPROTO_INET is 1); undefined for any other event.
 */
export function deletedFrom (m: Pick<NetlinkMessage, 'type' | 'data'>, family: number, name: string): DeletedKind | undefined {
  if (m.type >> 8 !== NFNL_SUBSYS_NFTABLES || m.data.length < NFGENMSG.length || m.data[0] !== family) return undefined
  const kind = DELETIONS.get(m.type & 0xff)
  if (kind === undefined) return undefined
  let table: string | undefined
  parseAttributes(m.data.subarray(NFGENMSG.length), (a) => {
    if (a.type === NAME_ATTR && table === undefined) table = a.data.toString('latin1').replace(/\0+$/, '')
  })
  return table === name ? kind : undefined
}

/**
 * Calls `onDeleted` when a table, chain, rule or set of table `family name` is
 * deleted, and `onLost` when events may have been lost (the socket overflowed:
 * ENOBUFS) or cannot be read. Opened by `open()`, which throws when the socket
 * cannot be opened; keeps no event loop alive.
 */
export class NftDeletionEvents {
  private sock: NetlinkSocket | undefined

  constructor (
    private readonly family: number,
    private readonly name: string,
    private readonly onDeleted: (kind: DeletedKind) => void,
    private readonly onLost: (err: Error) => void,
  ) {}

  open (): void {
    if (this.sock !== undefined) return
    try {
      // Each datagram read into a buffer of its own size (peeked first): a fixed 64 KiB buffer per event, a few
      // events per change of ferry's, was enough external memory to make V8 collect a 100 MB heap mid-change.
      const raw = new RawNetlinkSocket(Protocol.NETFILTER, { messagePeeking: true, recvBufferSize: EVENTS_RCVBUF, sendBufferSize: 0 })
      raw.addMembership(NFNLGRP_NFTABLES)
      raw.unref()
      const sock = new NetlinkSocket(raw)
      sock.on('message', (msgs) => {
        for (const m of msgs) {
          const kind = deletedFrom(m, this.family, this.name)
          if (kind !== undefined) this.onDeleted(kind)
        }
      })
      sock.on('error', (err) => this.onLost(err))
      this.sock = sock
    } catch (err) {
      throw new FerryError('KERNEL', `cannot listen to nftables events: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  }

  close (): void {
    try { this.sock?.close() } catch { /* already closed */ }
    this.sock = undefined
  }
}

/** For test/harness/nsnode.ts: the deletions from `inet ferry` seen so far (and `lost: …` for lost events). */
export function openDeletionRecorder (): { open (): void, seen (): string[], close (): void } {
  const seen: string[] = []
  const events = new NftDeletionEvents(1, 'ferry', (kind) => seen.push(kind), (err) => seen.push(`lost: ${err.message}`))
  return { open: () => events.open(), seen: () => [...seen], close: () => events.close() }
}

/** Factory for test/harness/nsnode.ts. */
export function openNftGeneration (): NftGeneration {
  return new NftGeneration()
}
