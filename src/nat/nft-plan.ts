/**
 * The nftables plan, as data: ferry's own table `inet ferry`, whose chains are
 * fixed (they never change after creation) and whose per-network, per-endpoint
 * and per-link state lives in sets and maps. Adding or removing a network, a
 * container or a link adds or deletes elements only. Pure: no I/O, no clock.
 * src/nat/nftables.ts applies it with `nft -f -`, one transaction per change.
 *
 * Rules and elements are written exactly as `nft list table inet ferry`
 * (nftables 1.0.6) prints them, so that a plan can be compared with the kernel
 * text; test/kernel/nftables.test.ts checks that round trip.
 *
 * Base chains and their priorities (lower runs first; every chain at one hook
 * runs, an accept in one does not skip the others, a drop anywhere is final):
 *   raw-prerouting   filter hook prerouting  raw - 10     (-310) before conntrack (-200) and iptables' raw (-300):
 *                                                                 drops direct access to ports published on 127.0.0.0/8
 *   nat-prerouting   nat hook prerouting     dstnat - 10  (-110) before iptables' nat PREROUTING (-100, Docker's
 *   nat-output       nat hook output         -110                 DOCKER chain), Docker 29's nftables (dstnat) and
 *                                                                 firewalld (dstnat + 10): the first NAT binding of a
 *                                                                 connection wins, so a port ferry publishes is ferry's
 *   filter-forward   filter hook forward     filter - 10  (-10)   before iptables' FORWARD (0), Docker 29 (filter) and
 *                                                                 firewalld (filter + 10); the admin's chain `user` is
 *                                                                 jumped to first
 *   filter-input     filter hook input       filter - 10  (-10)   the guard against forged 127.0.0.0/8 packets, and
 *                                                                 encrypted overlays' VXLAN (UDP 4799) taken only from
 *                                                                 ferry's WireGuard device (fyw-*)
 *   nat-postrouting  nat hook postrouting    srcnat - 10  (90)    before iptables' POSTROUTING (100) and firewalld
 *                                                                 (srcnat + 10): ferry's masquerade/SNAT choice wins
 * Regular chains: `user` (the administrator's: created empty, never touched
 * again, kept at teardown when it holds rules) and `publish` (the DNAT lookups).
 *
 * Sets and maps (every element names what it belongs to by its content):
 *   bridges             ifname                         every ferry bridge (traffic through them is marked, see FORWARD_MARK)
 *   external, internal  ifname                         bridges of networks with/without a way out
 *   localnet            ifname                         bridges whose networks may publish on loopback (guard + masquerade)
 *   mss_clamp           ifname                         bridges of encrypted overlays: TCP SYNs into them get their MSS
 *                                                      lowered to the route's MTU (`tcp option maxseg size set rt mtu`)
 *   icc                 ifname . ifname : verdict      per bridge, traffic inside it: accept or drop
 *   subnets             ifname . ipv4_addr (interval)  bridge . subnet of external networks (hairpin, no NAT inside)
 *   masq                ipv4_addr (interval)           subnets masqueraded on the way out
 *   snat_to             ipv4_addr : ipv4_addr          subnets SNAT'd to a chosen host address (com.docker.network.host_ipv4)
 *   link_to, link_from  ifname . ip . ip . proto . port  legacy links on ICC-off networks (parent -> child port, and back)
 *   host_port           ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service   one port published on one host
 *                                                                                          address (a hash: O(1) to change)
 *   host_range          the same, flags interval   a range of host ports onto one container port
 *   host_keep           ipv4_addr . inet_proto . inet_service : ipv4_addr (interval)       an N:N range (DNAT keeps the port)
 *   any_port, any_range, any_keep   inet_proto . inet_service : …   the same for every local address (host IP 0.0.0.0 or empty)
 *   lo_only             ipv4_addr . inet_proto . inet_service (interval)   container ports published on 127.0.0.0/8 only
 *   lo_from             ifname . ipv4_addr . inet_proto . inet_service     … and the bridge that may still reach them
 * Single ports live in hash maps, ranges in interval maps: the kernel's set for
 * concatenated intervals (pipapo) copies its whole lookup table on every change,
 * so a change of an interval map costs in proportion to the ranges it holds, and
 * 10,000 single ports must not be there. A range of host ports onto the same range
 * of container ports is one interval element of a `_keep` map (DNAT to the address
 * keeps the port); a range onto one container port is one element of a `_range`
 * map; a range onto a shifted range (8000-8009:80-89) is one `_port` element per
 * port, since nft has no port-offset DNAT.
 *
 * Both families: every address-keyed set above has an IPv6 twin named with a `6`
 * (subnets6, masq6, snat_to6, link_to6, host_port6, …, routed6) and every rule that
 * reads one is generated per family from one template (NFT_FAMILIES: `ip`/`ip6`,
 * `ipv4_addr`/`ipv6_addr`). The interface-only rules (ICC, internal, isolation) serve
 * both families at once. A binding's family is its container address's. `routed6`:
 * `ifname . ipv6_addr . inet_proto . inet_service` (interval), the published container
 * ports of IPv6 'routed' networks, accepted from anything but a ferry bridge; `routed`
 * is its IPv4 twin (empty: IPv4 is always NAT'd today). No lo_only6: [::1] is refused.
 */
import { FerryError } from '../errors/errors.js'
import { canonical, familyOf, normalizeIp, type Family } from '../util/ip.js'
import type { PortBinding, Protocol } from '../model/types.js'
import {
  bindingFamily, familySubnet, isLoopback, isRouted, isWildcard, masqueradesFamily, networkFamilies, validateEndpoint, validateLink, validateNetwork,
  type PlanOptions,
} from './plan.js'
import type { FirewallState, NatEndpoint, NatLink, NatNetwork } from './types.js'
import { ENCRYPTED_VXLAN_PORT, WG_PREFIX } from '../wireguard/plan.js'

export const NFT_FAMILY = 'inet'
export const NFT_TABLE = 'ferry'
/** `inet ferry`, as nft commands name it. */
export const TABLE_REF = `${NFT_FAMILY} ${NFT_TABLE}`
export const USER_CHAIN = 'user'
/**
 * The packet mark bit ferry's forward chain sets on traffic of its bridges, so that
 * one iptables rule can accept it where iptables' FORWARD policy is DROP. One bit,
 * outside those of kube-proxy (0x4000, 0x8000), Weave (0x20000, 0x40000), Cilium
 * (0x0f00, 0xf000) and Istio (0x539); Calico's default mask 0xffff0000 includes it.
 */
export const FORWARD_MARK = 0x01000000
export const FORWARD_MARK_HEX = '0x01000000'

export interface NftSetPlan {
  name: string
  kind: 'set' | 'map'
  /** The declaration lines as `nft list` prints them (`type …`, `flags interval`). */
  spec: string[]
  /** Elements, as `nft list` prints them (`key` or `key : value`). */
  elements: string[]
}

export interface NftChainPlan {
  name: string
  /** Base chains: `type nat hook prerouting priority dstnat - 10; policy accept;` */
  hook?: string
  /** Rules in order; the user chain's are the administrator's and never planned. */
  rules: string[]
}

export interface NftTablePlan {
  sets: NftSetPlan[]
  chains: NftChainPlan[]
}

/** One element of one set or map: `key` alone deletes it, `key : value` adds it. */
export interface NftElement {
  set: string
  key: string
  value?: string
}

/** What one endpoint contributes: elements, and whether one of its ports is on loopback. */
export interface NftEndpointPlan {
  elements: NftElement[]
  localnet: boolean
}

const IFNAME = 'ifname'

/**
 * What differs between the families in the table: the address type of sets, the payload
 * keyword of rules, and the suffix of set names (IPv4's sets keep their names, IPv6's end in 6).
 */
export interface NftFamily { family: Family, sfx: '' | '6', addr: 'ipv4_addr' | 'ipv6_addr', ip: 'ip' | 'ip6' }
export const NFT_FAMILIES: readonly NftFamily[] = [
  { family: 4, sfx: '', addr: 'ipv4_addr', ip: 'ip' },
  { family: 6, sfx: '6', addr: 'ipv6_addr', ip: 'ip6' },
]
export function nftFamily (family: Family): NftFamily {
  return family === 4 ? NFT_FAMILIES[0]! : NFT_FAMILIES[1]!
}

function set (name: string, type: string, interval = false): NftSetPlan {
  return { name, kind: 'set', spec: [`type ${type}`, ...(interval ? ['flags interval'] : [])], elements: [] }
}

function map (name: string, type: string, interval = false): NftSetPlan {
  return { ...set(name, type, interval), kind: 'map' }
}

/** The address-keyed sets and maps of one family. */
function familySets ({ sfx, addr }: NftFamily): NftSetPlan[] {
  const portKey = `${addr} . inet_proto . inet_service`
  return [
    set(`subnets${sfx}`, `${IFNAME} . ${addr}`, true),
    set(`masq${sfx}`, addr, true),
    map(`snat_to${sfx}`, `${addr} : ${addr}`, true),
    set(`link_to${sfx}`, `${IFNAME} . ${addr} . ${addr} . inet_proto . inet_service`),
    set(`link_from${sfx}`, `${IFNAME} . ${addr} . ${addr} . inet_proto . inet_service`),
    map(`host_port${sfx}`, `${portKey} : ${addr} . inet_service`),
    map(`host_range${sfx}`, `${portKey} : ${addr} . inet_service`, true),
    map(`host_keep${sfx}`, `${portKey} : ${addr}`, true),
    map(`any_port${sfx}`, `inet_proto . inet_service : ${addr} . inet_service`),
    map(`any_range${sfx}`, `inet_proto . inet_service : ${addr} . inet_service`, true),
    map(`any_keep${sfx}`, `inet_proto . inet_service : ${addr}`, true),
    set(`routed${sfx}`, `${IFNAME} . ${portKey}`, true),
  ]
}

/** Every set and map, in the order nft lists them (creation order). */
function skeletonSets (): NftSetPlan[] {
  const v4 = nftFamily(4)
  return [
    set('bridges', IFNAME),
    set('external', IFNAME),
    set('internal', IFNAME),
    set('localnet', IFNAME),
    set('mss_clamp', IFNAME),
    map('icc', `${IFNAME} . ${IFNAME} : verdict`),
    ...NFT_FAMILIES.flatMap(familySets),
    set('lo_only', `${v4.addr} . inet_proto . inet_service`, true),
    set('lo_from', `${IFNAME} . ${v4.addr} . inet_proto . inet_service`, true),
  ]
}

/** One rule per family, from a template. */
function perFamily (rule: (f: NftFamily) => string): string[] {
  return NFT_FAMILIES.map(rule)
}

const L4 = 'meta l4proto { tcp, udp, sctp }'

/** The fixed chains. Only `hostAddrsLocalnet` changes a rule (the output hook's loopback exclusion). */
function skeletonChains (opts: PlanOptions): NftChainPlan[] {
  const localnetOn = opts.hostAddrsLocalnet ?? true
  return [
    { name: USER_CHAIN, rules: [] },
    {
      name: 'publish',
      rules: NFT_FAMILIES.flatMap(({ ip, sfx }) => [
        `${L4} dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @host_port${sfx}`,
        `${L4} dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @host_range${sfx}`,
        `${L4} dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @host_keep${sfx}`,
        `${L4} dnat ${ip} to meta l4proto . th dport map @any_port${sfx}`,
        `${L4} dnat ${ip} to meta l4proto . th dport map @any_range${sfx}`,
        `${L4} dnat ${ip} to meta l4proto . th dport map @any_keep${sfx}`,
      ]),
    },
    {
      name: 'raw-prerouting',
      hook: 'type filter hook prerouting priority raw - 10; policy accept;',
      rules: ['ip daddr . meta l4proto . th dport @lo_only iifname . ip daddr . meta l4proto . th dport != @lo_from drop'],
    },
    {
      name: 'nat-prerouting',
      hook: 'type nat hook prerouting priority dstnat - 10; policy accept;',
      rules: ['fib daddr type local jump publish'],
    },
    {
      name: 'nat-output',
      hook: 'type nat hook output priority -110; policy accept;',
      rules: [
        // ::1 is never published (src/nat/plan.ts unpublishableHostIp): a connection to it is refused at once
        // instead of being sent to a container it cannot reach.
        'ip6 daddr ::1 return',
        localnetOn ? 'fib daddr type local jump publish' : 'ip daddr != 127.0.0.0/8 fib daddr type local jump publish',
      ],
    },
    {
      name: 'filter-forward',
      hook: 'type filter hook forward priority filter - 10; policy accept;',
      rules: [
        // Marked for iptables: a FORWARD policy of DROP (an engine's --iptables=true) accepts what carries the
        // mark (src/nat/iptables-accept.ts); what ferry drops below is dropped whatever the mark.
        `iifname @bridges meta mark set meta mark | ${FORWARD_MARK_HEX}`,
        `oifname @bridges meta mark set meta mark | ${FORWARD_MARK_HEX}`,
        `jump ${USER_CHAIN}`,
        // TCP MSS clamping into an encrypted overlay's bridge (not a verdict: the packet goes on). The kernel only
        // ever lowers the option: the route's MTU less the IPv4 or IPv6 and TCP headers.
        'oifname @mss_clamp tcp flags syn tcp option maxseg size set rt mtu',
        // Link exceptions first: they only accept traffic inside one ICC-off bridge.
        ...perFamily(({ ip, sfx }) => `iifname . ${ip} saddr . ${ip} daddr . meta l4proto . th dport @link_to${sfx} accept`),
        ...perFamily(({ ip, sfx }) => `iifname . ${ip} saddr . ${ip} daddr . meta l4proto . th sport @link_from${sfx} accept`),
        // Neighbour discovery inside a bridge, as ARP is for IPv4: an ICC-off bridge would take the solicitations
        // and no IPv6 link could connect. Hop limit 255 holds only for bridged packets: a routed one (between
        // bridges) was decremented before this hook, so nothing crosses bridges here.
        'iifname @bridges icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept',
        // Internal networks: nothing leaves or enters them, not even a published port of another network.
        'iifname @internal iifname . oifname vmap @icc',
        'iifname @internal drop',
        'oifname @internal drop',
        'oifname @external ct state established,related accept',
        'oifname @external ct status dnat accept',
        'iifname . oifname vmap @icc',
        // Routed mode: a published container port is open to what comes from outside ferry's bridges.
        ...perFamily(({ ip, sfx }) => `iifname != @bridges oifname . ${ip} daddr . meta l4proto . th dport @routed${sfx} accept`),
        // Isolation: nothing else (another ferry bridge, the uplink) forwards into a bridge.
        'oifname @external drop',
        'iifname @external accept',
      ],
    },
    {
      name: 'filter-input',
      hook: 'type filter hook input priority filter - 10; policy accept;',
      rules: [
        // Encrypted overlays' VXLAN is received only from ferry's WireGuard device: the same frame sent in the
        // clear from the underlay would be decapsulated into the overlay (docs/encryption.md: injection).
        `udp dport ${ENCRYPTED_VXLAN_PORT} iifname != "${WG_PREFIX}*" drop`,
        'iifname @localnet ip daddr 127.0.0.0/8 ct state != { established, related } ct status != dnat drop',
      ],
    },
    {
      name: 'nat-postrouting',
      hook: 'type nat hook postrouting priority srcnat - 10; policy accept;',
      rules: [
        // Hairpin: a connection DNAT'd back into the bridge it came from answers through the host.
        ...perFamily(({ ip, sfx }) => `ct status dnat oifname . ${ip} saddr @subnets${sfx} masquerade`),
        ...perFamily(({ ip, sfx }) => `oifname . ${ip} saddr @subnets${sfx} return`),
        ...perFamily(({ ip, sfx }) => `snat ${ip} to ${ip} saddr map @snat_to${sfx}`),
        ...perFamily(({ ip, sfx }) => `${ip} saddr @masq${sfx} masquerade`),
        'oifname @localnet ip saddr 127.0.0.0/8 masquerade',
      ],
    },
  ]
}

// ---------------------------------------------------------------------------
// Element text.

function quote (ifname: string): string {
  return `"${ifname}"`
}

/** A subnet as nft prints an interval of addresses (a /32 or /128 is a plain address). */
function subnetText (cidr: string): string {
  const c = canonical(cidr)
  return c.endsWith('/32') || c.endsWith('/128') ? c.slice(0, c.lastIndexOf('/')) : c
}

function ports (lo: number, hi: number): string {
  return lo === hi ? `${lo}` : `${lo}-${hi}`
}

export function networkElements (net: NatNetwork, opts: PlanOptions = {}): NftElement[] {
  const localnetOn = opts.hostAddrsLocalnet ?? true
  const br = quote(net.bridge)
  const out: NftElement[] = [
    { set: 'bridges', key: br },
    { set: net.internal ? 'internal' : 'external', key: br },
    { set: 'icc', key: `${br} . ${br}`, value: net.icc ? 'accept' : 'drop' },
  ]
  if (net.clampMss === true) out.push({ set: 'mss_clamp', key: br })
  if (net.internal) return out
  for (const family of networkFamilies(net)) {
    const fs = familySubnet(net, family)
    if (fs === undefined) continue
    const { sfx } = nftFamily(family)
    const subnet = subnetText(fs.subnet)
    out.push({ set: `subnets${sfx}`, key: `${br} . ${subnet}` })
    if (masqueradesFamily(net, family)) {
      if (fs.outboundAddr !== undefined) out.push({ set: `snat_to${sfx}`, key: subnet, value: normalizeIp(fs.outboundAddr) })
      else out.push({ set: `masq${sfx}`, key: subnet })
    }
  }
  // Loopback publications are IPv4 (there is no route_localnet for IPv6): not on an IPv6-only network.
  if (localnetOn && net.subnet !== undefined) out.push({ set: 'localnet', key: br })
  return out
}

/** Merge overlapping or adjacent port ranges. */
function mergeRanges (ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0])
  const out: Array<[number, number]> = []
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi)
    else out.push([lo, hi])
  }
  return out
}

/** The DNAT elements of one publication (in its family's maps), or its filter opening when routed. */
function bindingElements (b: PortBinding, net: NatNetwork): NftElement[] {
  const { sfx } = nftFamily(bindingFamily(b))
  const containerIp = normalizeIp(b.containerIp)
  if (isRouted(b, net)) {
    // No NAT: the container port itself is opened (the host port means nothing here, as in Docker's routed mode).
    return [{ set: `routed${sfx}`, key: `${quote(net.bridge)} . ${containerIp} . ${b.proto} . ${ports(b.containerPort, b.containerPortEnd)}` }]
  }
  const wildcard = isWildcard(b.hostIp)
  const prefix = wildcard ? `${b.proto}` : `${normalizeIp(b.hostIp)} . ${b.proto}`
  const mapOf = (kind: 'port' | 'range' | 'keep'): string => `${wildcard ? 'any' : 'host'}_${kind}${sfx}`
  if (b.containerPort === b.containerPortEnd) {
    return [{ set: mapOf(b.hostPort === b.hostPortEnd ? 'port' : 'range'), key: `${prefix} . ${ports(b.hostPort, b.hostPortEnd)}`, value: `${containerIp} . ${b.containerPort}` }]
  }
  if (b.hostPort === b.containerPort) {
    return [{ set: mapOf('keep'), key: `${prefix} . ${ports(b.hostPort, b.hostPortEnd)}`, value: containerIp }]
  }
  // nft has no port-offset DNAT: one element per port.
  const out: NftElement[] = []
  for (let i = 0; i <= b.hostPortEnd - b.hostPort; i++) {
    out.push({ set: mapOf('port'), key: `${prefix} . ${b.hostPort + i}`, value: `${containerIp} . ${b.containerPort + i}` })
  }
  return out
}

/** The elements of one endpoint's publications; none on an internal network or an unknown one. */
export function endpointElements (ep: NatEndpoint, net: NatNetwork | undefined, opts: PlanOptions = {}): NftEndpointPlan {
  const localnetOn = opts.hostAddrsLocalnet ?? true
  const out: NftElement[] = []
  let localnet = false
  if (net === undefined || net.internal) return { elements: out, localnet }
  const seen = new Set<string>()
  const loopbackOnly = new Map<Protocol, Array<[number, number]>>()
  for (const b of ep.ports) {
    for (const e of bindingElements(b, net)) {
      const k = `${e.set} ${e.key}`
      if (seen.has(k)) continue
      seen.add(k)
      out.push(e)
    }
    if (!isWildcard(b.hostIp) && isLoopback(b.hostIp)) {
      loopbackOnly.set(b.proto, [...(loopbackOnly.get(b.proto) ?? []), [b.containerPort, b.containerPortEnd]])
    }
    // 127.0.0.1 reaches IPv4 bindings only (an IPv6-only network never needs route_localnet).
    if (localnetOn && bindingFamily(b) === 4 && (isWildcard(b.hostIp) || isLoopback(b.hostIp))) localnet = true
  }
  // Published on loopback only: nothing but the bridge may reach the container port directly.
  for (const [proto, ranges] of [...loopbackOnly].sort((a, b) => a[0].localeCompare(b[0]))) {
    for (const [lo, hi] of mergeRanges(ranges)) {
      const key = `${ep.address} . ${proto} . ${ports(lo, hi)}`
      out.push({ set: 'lo_only', key }, { set: 'lo_from', key: `${quote(net.bridge)} . ${key}` })
    }
  }
  return { elements: out, localnet }
}

/** The elements of one legacy link: only on an ICC-off network that the plan knows. */
export function linkElements (link: NatLink, net: NatNetwork | undefined): NftElement[] {
  if (net === undefined || net.icc) return []
  const br = quote(net.bridge)
  const { sfx } = nftFamily(familyOf(link.parentIp) ?? 4)
  const [parent, child] = [normalizeIp(link.parentIp), normalizeIp(link.childIp)]
  const seen = new Set<string>()
  const out: NftElement[] = []
  for (const p of [...link.ports].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port)) {
    const k = `${p.proto}/${p.port}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push(
      { set: `link_to${sfx}`, key: `${br} . ${parent} . ${child} . ${p.proto} . ${p.port}` },
      { set: `link_from${sfx}`, key: `${br} . ${child} . ${parent} . ${p.proto} . ${p.port}` },
    )
  }
  return out
}

export function elementText (e: NftElement): string {
  return e.value === undefined ? e.key : `${e.key} : ${e.value}`
}

// ---------------------------------------------------------------------------
// The whole table.

/** The table with empty sets: what exists whatever the state. */
export function planSkeleton (opts: PlanOptions = {}): NftTablePlan {
  return { sets: skeletonSets(), chains: skeletonChains(opts) }
}

/** Add elements to a plan (in place). Duplicates are kept once. */
export function addElements (plan: NftTablePlan, elements: readonly NftElement[]): void {
  const byName = new Map(plan.sets.map((s) => [s.name, { s, seen: new Set(s.elements) }]))
  for (const e of elements) {
    const entry = byName.get(e.set)
    if (entry === undefined) throw new FerryError('INTERNAL', `element for unknown set ${e.set}`)
    const text = elementText(e)
    if (entry.seen.has(text)) continue
    entry.seen.add(text)
    entry.s.elements.push(text)
  }
}

export interface NftStatePlan {
  table: NftTablePlan
  /** Bridges that need net.ipv4.conf.<bridge>.route_localnet=1 (localhost publishing). */
  localnetBridges: string[]
}

/** The whole plan for a state; elements sorted (the kernel lists sets in no particular order). */
export function planTable (state: FirewallState, opts: PlanOptions = {}): NftStatePlan {
  for (const n of state.networks) validateNetwork(n)
  for (const ep of state.endpoints) validateEndpoint(ep)
  for (const l of state.links ?? []) validateLink(l)
  const byId = new Map(state.networks.map((n) => [n.id, n]))
  const table = planSkeleton(opts)
  const localnet = new Set<string>()
  const nets = [...state.networks].sort((a, b) => a.bridge.localeCompare(b.bridge) || a.id.localeCompare(b.id))
  for (const n of nets) addElements(table, networkElements(n, opts))
  for (const ep of [...state.endpoints].sort((a, b) => a.id.localeCompare(b.id))) {
    const net = byId.get(ep.networkId)
    const p = endpointElements(ep, net, opts)
    addElements(table, p.elements)
    if (p.localnet && net !== undefined) localnet.add(net.bridge)
  }
  for (const l of [...(state.links ?? [])].sort((a, b) => a.id.localeCompare(b.id))) addElements(table, linkElements(l, byId.get(l.networkId)))
  for (const s of table.sets) s.elements.sort()
  return { table, localnetBridges: [...localnet].sort() }
}

// ---------------------------------------------------------------------------
// nft -f text.

function declareSet (s: NftSetPlan): string {
  return `add ${s.kind} ${TABLE_REF} ${s.name} { ${s.spec.join('; ')}; }`
}

function declareChain (c: NftChainPlan): string {
  return c.hook === undefined ? `add chain ${TABLE_REF} ${c.name}` : `add chain ${TABLE_REF} ${c.name} { ${c.hook} }`
}

/** `add element` / `create element` (refused when it exists) / `delete element` lines, one per set, in the plan's set order. */
export function elementLines (verb: 'add' | 'create' | 'delete', elements: readonly NftElement[]): string[] {
  const bySet = new Map<string, string[]>()
  for (const e of elements) {
    const text = verb === 'delete' ? e.key : elementText(e)
    bySet.set(e.set, [...(bySet.get(e.set) ?? []), text])
  }
  return [...bySet].map(([name, items]) => `${verb} element ${TABLE_REF} ${name} { ${items.join(', ')} }`)
}

/** What the kernel holds of `inet ferry` (src/nat/nft-parse.ts reads it from `nft list table`). */
export interface NftKernelTable {
  sets: Map<string, { kind: 'set' | 'map', spec: string[], elements: string[] }>
  chains: Map<string, { hook?: string, rules: string[] }>
}

function sameList (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** True when the kernel's table is exactly the plan (the user chain's rules aside; elements as sets). */
export function sameTable (kernel: NftKernelTable | undefined, plan: NftTablePlan): boolean {
  if (kernel === undefined) return false
  if (kernel.sets.size !== plan.sets.length || kernel.chains.size !== plan.chains.length) return false
  for (const s of plan.sets) {
    const k = kernel.sets.get(s.name)
    if (k === undefined || k.kind !== s.kind || !sameList(k.spec, s.spec)) return false
    if (!sameList([...k.elements].sort(), [...s.elements].sort())) return false
  }
  for (const c of plan.chains) {
    const k = kernel.chains.get(c.name)
    if (k === undefined || k.hook !== c.hook) return false
    if (c.name !== USER_CHAIN && !sameList(k.rules, c.rules)) return false
  }
  return true
}

/**
 * One transaction that turns whatever the kernel holds (undefined: no table) into
 * the plan: ferry's chains are flushed and refilled, its sets flushed and refilled,
 * objects the plan does not have (or whose declaration changed) deleted and made
 * again. The user chain is created when missing and never flushed. Sets are
 * flushed rather than deleted, so an admin rule that names one keeps working.
 */
export function renderRewrite (kernel: NftKernelTable | undefined, plan: NftTablePlan): string {
  const out = [`add table ${TABLE_REF}`]
  const planSets = new Map(plan.sets.map((s) => [s.name, s]))
  const planChains = new Map(plan.chains.map((c) => [c.name, c]))
  const stale: string[] = []
  if (kernel !== undefined) {
    for (const name of kernel.chains.keys()) if (name !== USER_CHAIN) out.push(`flush chain ${TABLE_REF} ${name}`)
    for (const [name, k] of kernel.chains) {
      const want = planChains.get(name)
      if (name === USER_CHAIN && want !== undefined) continue
      if (want === undefined || want.hook !== k.hook) stale.push(`delete chain ${TABLE_REF} ${name}`)
    }
    for (const [name, k] of kernel.sets) {
      const want = planSets.get(name)
      if (want === undefined || want.kind !== k.kind || !sameList(want.spec, k.spec)) stale.push(`delete ${k.kind} ${TABLE_REF} ${name}`)
      else out.push(`flush ${k.kind} ${TABLE_REF} ${name}`)
    }
  }
  out.push(...stale)
  for (const s of plan.sets) out.push(declareSet(s))
  for (const c of plan.chains) out.push(declareChain(c))
  for (const c of plan.chains) {
    if (c.name === USER_CHAIN) continue
    for (const r of c.rules) out.push(`add rule ${TABLE_REF} ${c.name} ${r}`)
  }
  for (const s of plan.sets) {
    if (s.elements.length > 0) out.push(`add element ${TABLE_REF} ${s.name} { ${s.elements.join(', ')} }`)
  }
  return out.join('\n') + '\n'
}

/**
 * The transaction that removes ferry from nftables: the whole table, or, when the
 * administrator's chain holds rules, everything but that chain (and the table).
 */
export function renderTeardown (kernel: NftKernelTable | undefined, opts: { keepSets?: boolean } = {}): string {
  if (kernel === undefined) return ''
  const user = kernel.chains.get(USER_CHAIN)
  if (user === undefined || user.rules.length === 0) return `delete table ${TABLE_REF}\n`
  const out: string[] = []
  for (const name of kernel.chains.keys()) if (name !== USER_CHAIN) out.push(`flush chain ${TABLE_REF} ${name}`)
  for (const name of kernel.chains.keys()) if (name !== USER_CHAIN) out.push(`delete chain ${TABLE_REF} ${name}`)
  // keepSets: the admin's rules name some of them (nft refuses to delete a set in use): emptied instead.
  for (const [name, k] of kernel.sets) out.push(`${opts.keepSets === true ? 'flush' : 'delete'} ${k.kind} ${TABLE_REF} ${name}`)
  return out.length === 0 ? '' : out.join('\n') + '\n'
}
