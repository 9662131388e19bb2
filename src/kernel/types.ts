/**
 * The link/address driver: ferry's typed view of rtnetlink. The real
 * implementation (src/kernel/netlink.ts) talks to the kernel through the
 * `netlink` package; test/harness/kernel-fake.ts records calls for unit tests.
 * Every mutation is idempotent where the kernel allows: creating what exists
 * with the same kind, or deleting what is already gone, succeeds.
 */
export interface LinkInfo {
  index: number
  name: string
  /** IFLA_INFO_KIND: 'bridge', 'veth', 'vxlan', … (undefined for plain devices) */
  kind?: string
  mtu: number
  mac: string                 // lower-case aa:bb:cc:dd:ee:ff
  up: boolean
  /** ifindex of the master (bridge) when enslaved */
  master?: number
  /** for veth: ifindex of the peer (may be in another namespace) */
  peerIndex?: number
  /** for a bridge port: hairpin mode (IFLA_BRPORT_MODE), frames may leave by the port they came in */
  hairpin?: boolean
  /** for a bridge port: isolated (IFLA_BRPORT_ISOLATED), no frame goes between it and another isolated port */
  isolated?: boolean
}

export interface AddressInfo { ifname: string, index: number, cidr: string }   // e.g. 10.20.0.1/24

export interface RouteInfo {
  dst: string                 // CIDR, '0.0.0.0/0' for default
  dev?: string
  gateway?: string
  table: number
}

export interface FdbEntry {
  dev: string
  mac: string
  dst?: string
  /** An entry of the bridge the device is a port of (NTF_MASTER), e.g. one it learned; default: the device's own (NTF_SELF). */
  master?: boolean
}
export interface NeighEntry { dev: string, ip: string, mac: string }

export interface VxlanSpec {
  vni: number
  port: number                // UDP destination port, 4789 by default
  local?: string              // source VTEP address
  dev?: string                // underlay device
  learning: boolean
  /** Answer ARP from the device's static neighbour entries (IFLA_VXLAN_PROXY); can only be set at creation. */
  proxy?: boolean
  /**
   * Outer UDP checksums, set explicitly either way rather than left to the kernel's default:
   * IFLA_VXLAN_UDP_CSUM over IPv4, IFLA_VXLAN_UDP_ZERO_CSUM6_TX/RX (the reverse) over IPv6.
   */
  udpCsum?: boolean
  mtu?: number
  mac?: string
}

/** The per-interface IPv6 settings ferry sets (net.ipv6.conf.<ifname>.<key>). */
export type Ipv6ConfKey = 'disable_ipv6' | 'accept_ra' | 'autoconf'

export interface LinkDriver {
  listLinks (): Promise<LinkInfo[]>
  getLink (name: string): Promise<LinkInfo | undefined>
  createBridge (name: string, opts?: { mtu?: number, mac?: string }): Promise<void>
  /** A veth pair; both ends stay in the current namespace. */
  createVeth (name: string, peer: string, opts?: { mtu?: number, mac?: string, peerMac?: string }): Promise<void>
  createVxlan (name: string, spec: VxlanSpec): Promise<void>
  /** A kernel WireGuard device (IFLA_INFO_KIND "wireguard"; configured over generic netlink, src/kernel/wireguard-genl.ts). */
  createWireGuard (name: string): Promise<void>
  /** Enslave `name` to bridge `master` (master undefined = release). */
  setMaster (name: string, master: string | undefined): Promise<void>
  /**
   * Hairpin mode of bridge port `name` (`bridge link set dev NAME hairpin on`): the
   * bridge may send a frame back out of the port it came in, so a container reaches
   * itself through its own published port. Fails when `name` is not a bridge port;
   * the mode goes with the port when it is released.
   */
  setHairpin (name: string, on: boolean): Promise<void>
  /**
   * The isolated flag of bridge port `name` (`bridge link set dev NAME isolated on`): the bridge
   * never forwards a frame from one isolated port to another (it does to and from the others).
   * Fails when `name` is not a bridge port; the flag goes with the port when it is released.
   */
  setIsolated (name: string, on: boolean): Promise<void>
  setUp (name: string, up: boolean): Promise<void>
  setMtu (name: string, mtu: number): Promise<void>
  /** Offload features by their kernel names (`ethtool -K NAME feature on|off`), through ethtool netlink; the others stay as they are. */
  setFeatures (name: string, wanted: Readonly<Record<string, boolean>>): Promise<void>
  /** The names of the device's active offload features (`ethtool -k NAME`), sorted. */
  getFeatures (name: string): Promise<string[]>
  /** net.ipv6.conf.<name>.<key> in the driver's own network namespace. */
  setIpv6Conf (name: string, key: Ipv6ConfKey, value: string): Promise<void>
  /** Its value; undefined when the interface or IPv6 is absent (a kernel without IPv6). */
  getIpv6Conf (name: string, key: Ipv6ConfKey): Promise<string | undefined>
  /** Deleting a link that does not exist succeeds. */
  deleteLink (name: string): Promise<void>
  /** Adding an address that is already there succeeds. */
  addAddress (name: string, cidr: string): Promise<void>
  deleteAddress (name: string, cidr: string): Promise<void>
  listAddresses (): Promise<AddressInfo[]>
  /** IPv4 routes of every table except local. */
  listRoutes (): Promise<RouteInfo[]>
  addFdb (entry: FdbEntry): Promise<void>
  deleteFdb (entry: FdbEntry): Promise<void>
  listFdb (dev: string): Promise<FdbEntry[]>
  /** `listFdb`'s entries packed (`PackedEntries`): no object per entry (the periodic repair diffs them as they are). */
  listFdbPacked? (dev: string): Promise<PackedEntries>
  addNeigh (entry: NeighEntry): Promise<void>
  deleteNeigh (entry: NeighEntry): Promise<void>
  listNeigh (dev: string): Promise<NeighEntry[]>
  /** `listNeigh`'s entries packed (`PackedEntries`). */
  listNeighPacked? (dev: string): Promise<PackedEntries>
  /**
   * Many FDB and neighbour changes at once, in order (the netlink driver sends them in
   * packed messages and hears back only about failures). Each operation means what the
   * single call of its kind does (deleting what is gone succeeds); resolves the ones the
   * kernel refused, each with its errno. Optional: without it, callers go one by one.
   */
  applyNeighFdb? (ops: readonly NeighFdbOp[]): Promise<NeighFdbFailure[]>
  close (): void
}

/** A neighbour or FDB change (one of a batch). */
export type NeighFdbOp =
  | { op: 'addFdb', entry: FdbEntry }
  | { op: 'deleteFdb', entry: FdbEntry }
  | { op: 'addNeigh', entry: NeighEntry }
  | { op: 'deleteNeigh', entry: NeighEntry }

/** An operation of a batch the kernel refused: its place in the batch, and why (errno name and text). */
export interface NeighFdbFailure {
  index: number
  op: NeighFdbOp
  code: string
  message: string
}

/** Bytes of one packed FDB or neighbour entry: the MAC (6), the address's length (0, 4 or 16), a zero byte, the address (16). */
export const ENTRY_BYTES = 24

/**
 * FDB or neighbour entries of one device, packed (ENTRY_BYTES each, as src/kernel/dump-worker.ts keeps them):
 * `count` entries at the start of `bytes` (which may be longer).
 */
export interface PackedEntries {
  bytes: Uint8Array
  count: number
}
