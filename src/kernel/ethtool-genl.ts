/**
 * A device's offload features (what `ethtool -k` shows and `ethtool -K` sets)
 * through the kernel's ethtool netlink interface: generic netlink family
 * "ethtool", version 1, ETHTOOL_MSG_FEATURES_GET (11) and ETHTOOL_MSG_FEATURES_SET
 * (12), attributes per include/uapi/linux/ethtool_netlink.h. Features go by
 * their kernel names ("tx-checksum-ip-generic", "rx-gro", …) in the verbose
 * bitset form, so no table of bit numbers is needed: a GET answers the active
 * features as a list of names (ETHTOOL_A_BITSET_NOMASK: only the set bits), a
 * SET sends the wanted ones, each name with or without ETHTOOL_A_BITSET_BIT_VALUE.
 *
 * The generic netlink plumbing (family lookup, one request at a time) is
 * src/kernel/wireguard-genl.ts'.
 */
import { FerryError } from '../errors/errors.js'
import { Mutex } from '../util/mutex.js'
import { KernelErrno, checkIfname, type NetlinkReplySocket } from './netlink.js'
import { attr, genlError, genlRequest, nest, openGenlFamily, parseAttrs, strz, u32 } from './genl.js'

export const ETHTOOL_GENL_NAME = 'ethtool'
export const ETHTOOL_GENL_VERSION = 1
export const ETHTOOL_MSG_FEATURES_GET = 11
export const ETHTOOL_MSG_FEATURES_SET = 12

const ETHTOOL_A_HEADER_DEV_NAME = 2
const ETHTOOL_A_HEADER_FLAGS = 3
/** No FEATURES_SET_REPLY: the request's acknowledgement is its only answer. */
const ETHTOOL_FLAG_OMIT_REPLY = 2
const ETHTOOL_A_FEATURES_HEADER = 1
const ETHTOOL_A_FEATURES_WANTED = 3
const ETHTOOL_A_FEATURES_ACTIVE = 4
const ETHTOOL_A_BITSET_NOMASK = 1
const ETHTOOL_A_BITSET_BITS = 3
const ETHTOOL_A_BITSET_BITS_BIT = 1
const ETHTOOL_A_BITSET_BIT_NAME = 2
const ETHTOOL_A_BITSET_BIT_VALUE = 3

/** A feature name as the kernel spells them: lower case, digits, '-' and '_' (validated: it goes into a request). */
function checkFeature (name: string): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(name)) throw new FerryError('INVALID_REQUEST', `invalid offload feature name "${name}"`)
  return name
}

const header = (ifname: string, flags = 0): Buffer => nest(ETHTOOL_A_FEATURES_HEADER, [attr(ETHTOOL_A_HEADER_DEV_NAME, strz(checkIfname(ifname))),
  ...(flags === 0 ? [] : [attr(ETHTOOL_A_HEADER_FLAGS, u32(flags))])])

/** The attributes of ETHTOOL_MSG_FEATURES_GET for one device (verbose bitsets: names). */
export function encodeFeaturesGet (ifname: string): Buffer {
  return header(ifname)
}

/**
 * The attributes of ETHTOOL_MSG_FEATURES_SET: the wanted bitset with a mask (no
 * NOMASK), so only the features named change; a name with VALUE is turned on,
 * without it off (as `ethtool -K DEV name on|off`).
 */
export function encodeFeaturesSet (ifname: string, wanted: Readonly<Record<string, boolean>>): Buffer {
  const bits = Object.entries(wanted).map(([name, on]) => nest(ETHTOOL_A_BITSET_BITS_BIT,
    [attr(ETHTOOL_A_BITSET_BIT_NAME, strz(checkFeature(name))), ...(on ? [attr(ETHTOOL_A_BITSET_BIT_VALUE, Buffer.alloc(0))] : [])]))
  return Buffer.concat([header(ifname, ETHTOOL_FLAG_OMIT_REPLY), nest(ETHTOOL_A_FEATURES_WANTED, [nest(ETHTOOL_A_BITSET_BITS, bits)])])
}

/**
 * The active features of a FEATURES_GET answer (its attributes after the genl
 * header): the names listed in ETHTOOL_A_FEATURES_ACTIVE. That bitset comes
 * without a mask (NOMASK), so the kernel lists the features that are on; a
 * listed bit with a VALUE flag is read the same way, one without it (a bitset
 * sent with a mask) as off.
 */
export function decodeActiveFeatures (attrs: Buffer): Set<string> {
  const on = new Set<string>()
  const active = parseAttrs(attrs).find((a) => a.type === ETHTOOL_A_FEATURES_ACTIVE)
  if (active === undefined) throw new FerryError('KERNEL', 'the kernel answered a features request without the active features')
  const set = parseAttrs(active.data)
  const nomask = set.some((a) => a.type === ETHTOOL_A_BITSET_NOMASK)
  for (const bits of set.filter((a) => a.type === ETHTOOL_A_BITSET_BITS)) {
    for (const bit of parseAttrs(bits.data).filter((a) => a.type === ETHTOOL_A_BITSET_BITS_BIT)) {
      const fields = parseAttrs(bit.data)
      const name = fields.find((f) => f.type === ETHTOOL_A_BITSET_BIT_NAME)?.data.toString('utf8').replace(/\0.*$/s, '')
      if (name === undefined || name === '') continue
      if (nomask || fields.some((f) => f.type === ETHTOOL_A_BITSET_BIT_VALUE)) on.add(name)
    }
  }
  return on
}

/** One generic netlink socket for the ethtool family (opened at first use; requests one at a time). */
export class EthtoolGenl {
  private readonly queue = new Mutex()
  private constructor (private readonly sock: NetlinkReplySocket, private readonly family: number) {}

  static async open (): Promise<EthtoolGenl> {
    const { sock, family } = await openGenlFamily(ETHTOOL_GENL_NAME, 'the ethtool', 'the kernel has no ethtool netlink interface (Linux 5.6 or later has it)')
    return new EthtoolGenl(sock, family)
  }

  /** The names of the device's active features. */
  async features (ifname: string): Promise<Set<string>> {
    return await this.queue.run(async () => {
      const msgs = await genlRequest(this.sock, this.family, ETHTOOL_MSG_FEATURES_GET, ETHTOOL_GENL_VERSION, encodeFeaturesGet(ifname), 0)
        .catch((err: unknown) => { throw genlError(`cannot read the offload features of ${ifname}`, err) })
      const first = msgs[0]
      if (first === undefined) throw new FerryError('KERNEL', `cannot read the offload features of ${ifname}: no answer`)
      return decodeActiveFeatures(first)
    })
  }

  /** Turn the named features on or off (the others stay as they are). */
  async setFeatures (ifname: string, wanted: Readonly<Record<string, boolean>>): Promise<void> {
    await this.queue.run(async () => {
      await genlRequest(this.sock, this.family, ETHTOOL_MSG_FEATURES_SET, ETHTOOL_GENL_VERSION, encodeFeaturesSet(ifname, wanted), 0)
        .catch((err: unknown) => {
          if (err instanceof KernelErrno && err.code === 'ENODEV') throw new FerryError('KERNEL', `cannot set the offload features of ${ifname}: no such device`, { cause: err })
          throw genlError(`cannot set the offload features of ${ifname}`, err)
        })
    })
  }

  close (): void {
    try { this.sock.close() } catch { /* closed */ }
  }
}
