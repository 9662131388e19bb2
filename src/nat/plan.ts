/**
 * The firewall plan, as data: which iptables chains ferry wants, with which
 * rules, and the one jump per built-in chain that leads into them. Pure: no
 * I/O, no clock. src/nat/iptables.ts applies it with `iptables-restore`.
 *
 * Rules are written exactly as `iptables-save` (nft backend, 1.8.x) prints them,
 * without the leading `-A CHAIN`, so that a plan can be compared with the kernel
 * line by line. test/kernel/iptables.test.ts checks that round trip.
 *
 * Chains (everything ferry owns is named FERRY-*):
 *   filter FERRY-FORWARD      ordered    jumped to first from FORWARD; FERRY-USER first, then the TCP MSS
 *                                        clamp of encrypted overlays' bridges (TCPMSS --clamp-mss-to-pmtu),
 *                                        internal networks, established, published ports, isolation, ICC, egress
 *   filter FERRY-USER         user       the administrator's; created when missing, never edited
 *   filter FERRY-PUBLISH      unordered  one ACCEPT per published port range (DNAT'd connections only)
 *   filter FERRY-LINKS        unordered  legacy links on ICC-off networks: two ACCEPTs per linked port;
 *                                        exists (and is jumped to, right after FERRY-USER) only when needed
 *   filter FERRY-INPUT        ordered    drops forged 127.0.0.0/8 traffic from every bridge that can publish
 *                                        (it matters where route_localnet=1, set only where needed), and UDP 4799
 *                                        (encrypted overlays' VXLAN) that did not come out of ferry's WireGuard device
 *   nat    FERRY-DNAT         ordered    reached for local destinations only: a jump to each of its 16 buckets
 *   nat    FERRY-DNAT-0…f     unordered  one DNAT per published port range, in the bucket of its endpoint
 *                                        (iptables-nft searches a chain to delete from it: small chains keep
 *                                        a removal as cheap with 1,000 endpoints as with one)
 *   nat    FERRY-POSTROUTING  ordered    per-network MASQUERADE, loopback MASQUERADE for localhost publishing
 *   nat    FERRY-HAIRPIN      unordered  one MASQUERADE per published range for a container reaching itself
 *   raw    FERRY-RAW          unordered  drops direct access to ports published on 127.0.0.0/8 (moby#45610)
 *
 * Per-endpoint rules only ever land in unordered chains, so one endpoint is added
 * or removed with a few `-A`/`-D` lines whatever the number of other endpoints.
 * Network-level chains are small and are rewritten whole when they change.
 */
import { crc32 } from 'node:zlib'
import { FerryError } from '../errors/errors.js'
import { canonical, familyOf, isCidr, isIp, normalizeIp, type Family } from '../util/ip.js'
import type { PortBinding } from '../model/types.js'
import type { FirewallState, NatEndpoint, NatLink, NatNetwork } from './types.js'
import { ENCRYPTED_VXLAN_PORT, WG_PREFIX } from '../wireguard/plan.js'

export type TableName = 'raw' | 'nat' | 'filter'
/** Tables in the order a batch touches them. */
export const TABLES: readonly TableName[] = ['raw', 'nat', 'filter']

/**
 * How a chain is kept in line with the plan:
 *   ordered   - rule order matters; rewritten whole (flush + append) when it differs
 *   unordered - rule order does not matter; rules are added and deleted one by one
 *   user      - belongs to the administrator; created when missing, content never touched
 */
export type ChainKind = 'ordered' | 'unordered' | 'user'

export interface ChainPlan {
  kind: ChainKind
  rules: string[]
}

/** A rule ferry puts at the top of a built-in chain (the only thing it adds outside its own chains). */
export interface JumpRule {
  table: TableName
  chain: string
  rule: string
}

export interface Ruleset {
  /** The address family: iptables (4) or ip6tables (6). */
  family: Family
  /** Per table, chain name -> plan, in creation order. */
  tables: Record<TableName, Record<string, ChainPlan>>
  jumps: JumpRule[]
  /** Bridges that need net.ipv4.conf.<bridge>.route_localnet=1 (localhost publishing). */
  localnetBridges: string[]
}

export interface PlanOptions {
  /**
   * Publish on the host's loopback addresses too, as Docker's userland proxy does:
   * DNAT in nat OUTPUT for 127.0.0.0/8, route_localnet=1 on the bridges that carry
   * such publications, MASQUERADE of loopback sources towards them, and an INPUT
   * guard against forged 127.0.0.0/8 packets from those bridges. Default true.
   */
  hostAddrsLocalnet?: boolean
}

/** A rule that belongs to one endpoint, in one of the unordered chains of one family's ruleset. */
export interface EndpointRule {
  family: Family
  table: TableName
  chain: string
  rule: string
}

/** What one endpoint contributes to the plan. */
export interface EndpointPlan {
  rules: EndpointRule[]
  /** True when one of its publications is reachable on a loopback address. */
  localnet: boolean
}

export const CHAIN = {
  forward: 'FERRY-FORWARD',
  user: 'FERRY-USER',
  publish: 'FERRY-PUBLISH',
  links: 'FERRY-LINKS',
  input: 'FERRY-INPUT',
  dnat: 'FERRY-DNAT',
  postrouting: 'FERRY-POSTROUTING',
  hairpin: 'FERRY-HAIRPIN',
  raw: 'FERRY-RAW',
  routed: 'FERRY-ROUTED',
  routedPorts: 'FERRY-ROUTED-PORTS',
} as const

export const CHAIN_PREFIX = 'FERRY-'

/** FERRY-DNAT's buckets, and the one an endpoint's DNAT rules go to (by a hash of its id). */
export const DNAT_BUCKETS = Array.from({ length: 16 }, (_, i) => `${CHAIN.dnat}-${i.toString(16)}`)
export function dnatBucket (endpointId: string): string {
  return DNAT_BUCKETS[crc32(endpointId) % DNAT_BUCKETS.length]!
}
const LOOPBACK_NET = '127.0.0.0/8'

// ---------------------------------------------------------------------------
// Validation: everything interpolated into iptables-restore text is checked here,
// so that no name or address can smuggle a line into the batch.

const BRIDGE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/
const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/

function bad (msg: string): FerryError {
  return new FerryError('INVALID_REQUEST', msg)
}

export function validateNetwork (net: NatNetwork): void {
  if (!ID_RE.test(net.id)) throw bad(`network id "${net.id}" is not valid`)
  if (!BRIDGE_RE.test(net.bridge)) throw bad(`bridge name "${net.bridge}" of network ${shortId(net.id)} is not a valid interface name`)
  if (net.subnet === undefined && net.subnet6 === undefined) throw bad(`network ${shortId(net.id)} has neither an IPv4 nor an IPv6 subnet`)
  if (net.subnet !== undefined && !isCidr(net.subnet, 4)) throw bad(`subnet "${net.subnet}" of network ${shortId(net.id)} is not IPv4 CIDR notation`)
  if (net.gateway !== undefined && !isIp(net.gateway, 4)) throw bad(`gateway "${net.gateway}" of network ${shortId(net.id)} is not an IPv4 address`)
  if (net.outboundAddr !== undefined && !isIp(net.outboundAddr, 4)) throw bad(`outbound address "${net.outboundAddr}" of network ${shortId(net.id)} is not an IPv4 address`)
  if (net.subnet6 !== undefined && !isCidr(net.subnet6, 6)) throw bad(`IPv6 subnet "${net.subnet6}" of network ${shortId(net.id)} is not IPv6 CIDR notation`)
  if (net.gateway6 !== undefined && !isIp(net.gateway6, 6)) throw bad(`IPv6 gateway "${net.gateway6}" of network ${shortId(net.id)} is not an IPv6 address`)
  if (net.outboundAddr6 !== undefined && !isIp(net.outboundAddr6, 6)) throw bad(`IPv6 outbound address "${net.outboundAddr6}" of network ${shortId(net.id)} is not an IPv6 address`)
  if (net.mode6 !== undefined && net.mode6 !== 'nat' && net.mode6 !== 'routed') throw bad(`IPv6 gateway mode "${String(net.mode6)}" of network ${shortId(net.id)} is not nat or routed`)
}

/** The families a network carries: IPv4 unless it is IPv6-only, IPv6 when it has an IPv6 subnet. */
export function networkFamilies (net: NatNetwork): Family[] {
  return ([4, 6] as const).filter((f) => familySubnet(net, f) !== undefined)
}

/** A network's subnet and outbound SNAT address in one family (undefined: the network has no such subnet). */
export function familySubnet (net: NatNetwork, family: Family): { subnet: string, outboundAddr?: string } | undefined {
  if (family === 4) return net.subnet === undefined ? undefined : { subnet: net.subnet, ...(net.outboundAddr !== undefined ? { outboundAddr: net.outboundAddr } : {}) }
  if (net.subnet6 === undefined) return undefined
  return { subnet: net.subnet6, ...(net.outboundAddr6 !== undefined ? { outboundAddr: net.outboundAddr6 } : {}) }
}

/** Whether a network masquerades outbound traffic of `family` (IPv6 'routed' never does). */
export function masqueradesFamily (net: NatNetwork, family: Family): boolean {
  return net.masquerade && !net.internal && (family === 4 || net.mode6 !== 'routed')
}

/** True when a binding is not NAT'd but opened in the filter (an IPv6 binding on a 'routed' network). */
export function isRouted (b: PortBinding, net: NatNetwork): boolean {
  return net.mode6 === 'routed' && bindingFamily(b) === 6
}

/** A binding's family: its container address's. */
export function bindingFamily (b: PortBinding): Family {
  return familyOf(b.containerIp) ?? 4
}

/**
 * Why a host address cannot carry a publication, or undefined. Linux has no route_localnet
 * for IPv6: a packet from ::1 never leaves the loopback device, so a DNAT from [::1] to a
 * container cannot work without a proxy process (Docker's userland proxy), which ferry has not.
 */
export function unpublishableHostIp (hostIp: string): string | undefined {
  if (isIp(hostIp, 6) && normalizeIp(hostIp) === '::1') {
    return 'IPv6 loopback [::1] cannot be published: Linux cannot forward ::1 traffic to a container (there is no route_localnet for IPv6); publish on 127.0.0.1 or on a host address'
  }
  return undefined
}

function validPort (n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535
}

export function validateBinding (b: PortBinding, where: string): void {
  if (!['tcp', 'udp', 'sctp'].includes(b.proto)) throw bad(`${where}: protocol "${String(b.proto)}" is not tcp, udp or sctp`)
  if (!isIp(b.containerIp)) throw bad(`${where}: container IP "${b.containerIp}" is not an IP address`)
  if (b.hostIp !== '' && !isIp(b.hostIp, bindingFamily(b))) {
    throw bad(`${where}: host IP "${b.hostIp}" is not an IPv${bindingFamily(b)} address like its container IP ${b.containerIp}`)
  }
  const refused = unpublishableHostIp(b.hostIp)
  if (refused !== undefined) throw bad(`${where}: ${refused}`)
  const ranges: Array<[number, number, string]> = [[b.hostPort, b.hostPortEnd, 'host'], [b.containerPort, b.containerPortEnd, 'container']]
  for (const [lo, hi, what] of ranges) {
    if (!validPort(lo) || !validPort(hi) || hi < lo) throw bad(`${where}: ${what} ports ${lo}-${hi} are not a valid range of 1-65535`)
  }
  const hostLen = b.hostPortEnd - b.hostPort
  const ctrLen = b.containerPortEnd - b.containerPort
  if (ctrLen !== 0 && ctrLen !== hostLen) {
    throw bad(`${where}: host ports ${b.hostPort}-${b.hostPortEnd} and container ports ${b.containerPort}-${b.containerPortEnd} differ in length`)
  }
}

export function validateLink (link: NatLink): void {
  if (!ID_RE.test(link.id)) throw bad(`link id "${link.id}" is not valid`)
  if (!ID_RE.test(link.networkId)) throw bad(`network id "${link.networkId}" of link ${link.id} is not valid`)
  const fam = familyOf(link.parentIp)
  if (fam === undefined || !isIp(link.childIp, fam)) throw bad(`link ${link.id}: "${link.parentIp}" and "${link.childIp}" must be addresses of one family`)
  for (const p of link.ports) {
    if (!['tcp', 'udp', 'sctp'].includes(p.proto) || !validPort(p.port)) throw bad(`link ${link.id}: port ${p.port}/${String(p.proto)} is not valid`)
  }
}

export function validateEndpoint (ep: NatEndpoint): void {
  if (!ID_RE.test(ep.id)) throw bad(`endpoint id "${ep.id}" is not valid`)
  if (ep.address === undefined && ep.address6 === undefined) throw bad(`endpoint ${shortId(ep.id)} has neither an IPv4 nor an IPv6 address`)
  if (ep.address !== undefined && !isIp(ep.address, 4)) throw bad(`address "${ep.address}" of endpoint ${shortId(ep.id)} is not an IPv4 address`)
  if (ep.address6 !== undefined && !isIp(ep.address6, 6)) throw bad(`IPv6 address "${ep.address6}" of endpoint ${shortId(ep.id)} is not an IPv6 address`)
  for (const b of ep.ports) validateBinding(b, `endpoint ${shortId(ep.id)}`)
}

// ---------------------------------------------------------------------------
// Rule text helpers.

export function shortId (id: string): string {
  return id.slice(0, 12)
}

function comment (what: string): string {
  return `-m comment --comment "ferry:${what}"`
}

function portSpec (lo: number, hi: number): string {
  return lo === hi ? `${lo}` : `${lo}:${hi}`
}

/** `-p tcp -m tcp --dport 80:90` */
function protoPorts (proto: string, lo: number, hi: number): string {
  return `-p ${proto} -m ${proto} --dport ${portSpec(lo, hi)}`
}

/** Every address of the host in the binding's family: '' (as stored), 0.0.0.0 or ::. */
export function isWildcard (hostIp: string): boolean {
  return hostIp === '' || hostIp === '0.0.0.0' || hostIp === '::'
}

export function isLoopback (ip: string): boolean {
  return ip.startsWith('127.')
}

/**
 * DNAT target: a range keeps each port's offset. When host and container ranges
 * start at different ports the kernel needs the base port (`ip:80-89/8080`,
 * NF_NAT_RANGE_PROTO_OFFSET); a range of host ports onto one container port maps all to it.
 */
function dnatTarget (b: PortBinding): string {
  const ip = bindingFamily(b) === 6 ? `[${normalizeIp(b.containerIp)}]` : b.containerIp
  if (b.containerPort === b.containerPortEnd) return `${ip}:${b.containerPort}`
  const base = b.hostPort === b.containerPort ? '' : `/${b.hostPort}`
  return `${ip}:${b.containerPort}-${b.containerPortEnd}${base}`
}

/** One address as iptables-save prints it in a match: `10.0.0.2/32`, `fd00::2/128`. */
function hostMask (ip: string): string {
  return familyOf(ip) === 6 ? `${normalizeIp(ip)}/128` : `${ip}/32`
}

// ---------------------------------------------------------------------------
// Per endpoint.

/** The rules of one endpoint's publications; none on an internal network or an unknown one. */
export function planEndpoint (ep: NatEndpoint, net: NatNetwork | undefined, opts: PlanOptions = {}): EndpointPlan {
  const localnetOn = opts.hostAddrsLocalnet ?? true
  const out: EndpointRule[] = []
  const seen = new Set<string>()
  const add = (family: Family, table: TableName, chain: string, rule: string): void => {
    const key = `${family} ${table} ${chain} ${rule}`
    if (seen.has(key)) return
    seen.add(key)
    out.push({ family, table, chain, rule })
  }
  let localnet = false
  if (net === undefined || net.internal) return { rules: out, localnet }
  const tag = comment(`ep ${shortId(ep.id)}`)
  for (const b of ep.ports) {
    const family = bindingFamily(b)
    const cip = hostMask(b.containerIp)
    const ctrPorts = protoPorts(b.proto, b.containerPort, b.containerPortEnd)
    if (isRouted(b, net)) {
      // No NAT: the container port is opened in the filter (src/nat/plan.ts planBase: not from ferry's bridges).
      add(family, 'filter', CHAIN.routedPorts, `-d ${cip} -o ${net.bridge} ${ctrPorts} ${tag} -j ACCEPT`)
      continue
    }
    const hostMatch = isWildcard(b.hostIp) ? '' : `-d ${hostMask(b.hostIp)} `
    add(family, 'nat', dnatBucket(ep.id), `${hostMatch}${protoPorts(b.proto, b.hostPort, b.hostPortEnd)} ${tag} -j DNAT --to-destination ${dnatTarget(b)}`)
    if (!isWildcard(b.hostIp) && isLoopback(b.hostIp)) {
      // Published on loopback only: nothing but the bridge may reach the container port directly.
      add(family, 'raw', CHAIN.raw, `-d ${cip} ! -i ${net.bridge} ${ctrPorts} ${tag} -j DROP`)
    }
    // 127.0.0.1 reaches IPv4 bindings only (an IPv6-only network never needs route_localnet).
    if (localnetOn && family === 4 && (isWildcard(b.hostIp) || isLoopback(b.hostIp))) localnet = true
  }
  return { rules: out, localnet }
}

// ---------------------------------------------------------------------------
// Links.

/**
 * The FERRY-LINKS rules of legacy links, as Docker writes them for `--icc=false`:
 * the parent reaches each exposed port of the child, and the child answers from
 * it. Links on ICC networks (everything is allowed already), on unknown
 * networks and links without ports add nothing. Sorted, deduplicated.
 * In IPv6 a bridge with a link also lets neighbour discovery (ICMPv6 135, 136)
 * through inside it, as ARP is for IPv4 (ebtables', not iptables', business):
 * without it the ICC drop takes the solicitations and no link can connect.
 */
export function planLinks (links: readonly NatLink[], networks: readonly NatNetwork[], family: Family = 4): string[] {
  const byId = new Map(networks.map((n) => [n.id, n]))
  const out = new Set<string>()
  for (const l of [...links].sort((a, b) => a.id.localeCompare(b.id))) {
    const net = byId.get(l.networkId)
    if (net === undefined || net.icc || familyOf(l.parentIp) !== family) continue
    const tag = comment(`link ${l.id}`)
    const ports = [...l.ports].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port)
    if (family === 6 && ports.length > 0) {
      for (const type of [135, 136]) out.add(`-i ${net.bridge} -o ${net.bridge} -p ipv6-icmp -m icmp6 --icmpv6-type ${type} ${comment(`link-nd ${shortId(net.id)}`)} -j ACCEPT`)
    }
    for (const p of ports) {
      const dev = `-i ${net.bridge} -o ${net.bridge} -p ${p.proto} -m ${p.proto}`
      out.add(`-s ${hostMask(l.parentIp)} -d ${hostMask(l.childIp)} ${dev} --dport ${p.port} ${tag} -j ACCEPT`)
      out.add(`-s ${hostMask(l.childIp)} -d ${hostMask(l.parentIp)} ${dev} --sport ${p.port} ${tag} -j ACCEPT`)
    }
  }
  return [...out]
}

// ---------------------------------------------------------------------------
// Network level.

function emptyTables (): Record<TableName, Record<string, ChainPlan>> {
  return { raw: {}, nat: {}, filter: {} }
}

function sortedNetworks (networks: readonly NatNetwork[]): NatNetwork[] {
  return [...networks].sort((a, b) => a.bridge.localeCompare(b.bridge) || a.id.localeCompare(b.id))
}

function forwardRules (networks: NatNetwork[], links: boolean, routed: readonly NatNetwork[]): string[] {
  const rules = [`${comment('user')} -j ${CHAIN.user}`]
  // Link exceptions come before every drop: they only accept traffic inside one bridge.
  if (links) rules.push(`${comment('links')} -j ${CHAIN.links}`)
  // MSS clamping (not a verdict: the packet goes on): SYNs into a bridge whose MTU is below the path's.
  for (const n of networks) {
    if (n.clampMss === true) rules.push(`-o ${n.bridge} -p tcp -m tcp --tcp-flags SYN,RST SYN ${comment(`mss ${shortId(n.id)}`)} -j TCPMSS --clamp-mss-to-pmtu`)
  }
  const iccRule = (n: NatNetwork): string => `-i ${n.bridge} -o ${n.bridge} ${comment(`icc ${shortId(n.id)}`)} -j ${n.icc ? 'ACCEPT' : 'DROP'}`
  const internal = networks.filter((n) => n.internal)
  const external = networks.filter((n) => !n.internal)
  // Internal networks first: nothing leaves or enters them, not even a published port of another network.
  for (const n of internal) {
    const tag = comment(`internal ${shortId(n.id)}`)
    rules.push(iccRule(n), `-i ${n.bridge} ${tag} -j DROP`, `-o ${n.bridge} ${tag} -j DROP`)
  }
  for (const n of external) {
    rules.push(`-o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED ${comment(`ct ${shortId(n.id)}`)} -j ACCEPT`)
  }
  // Routed mode: published container ports, open to what does not come from a ferry bridge (FERRY-ROUTED).
  for (const n of routed) rules.push(`-o ${n.bridge} ${comment(`routed ${shortId(n.id)}`)} -j ${CHAIN.routed}`)
  rules.push(`${comment('publish')} -j ${CHAIN.publish}`)
  // Isolation: nothing else (another ferry bridge, the uplink) forwards into a bridge
  // except the replies and published ports accepted above. Every network's drop comes
  // before any network's "out" accept, or network A's way out would carry it into B.
  for (const n of external) rules.push(`! -i ${n.bridge} -o ${n.bridge} ${comment(`isolate ${shortId(n.id)}`)} -j DROP`)
  for (const n of external) rules.push(iccRule(n))
  for (const n of external) rules.push(`-i ${n.bridge} ! -o ${n.bridge} ${comment(`out ${shortId(n.id)}`)} -j ACCEPT`)
  return rules
}

/**
 * The network-level part of the plan: every chain (unordered ones empty), the
 * jumps, and the rules that depend only on the networks and on which bridges
 * carry loopback publications.
 */
export function planBase (
  networks: readonly NatNetwork[], localnetBridges: ReadonlySet<string>, opts: PlanOptions = {}, links: readonly NatLink[] = [], family: Family = 4,
): Ruleset {
  // IPv6 has no route_localnet: nothing is published on ::1, so no loopback rules (unpublishableHostIp).
  const localnetOn = family === 4 && (opts.hostAddrsLocalnet ?? true)
  const nets = sortedNetworks(networks)
  const tables = emptyTables()
  // Every bridge is in both families' forward rules (isolation is per interface: netavark#1515);
  // addresses only where the network has a subnet of the family.
  const subnetOf = (n: NatNetwork): string | undefined => { const fs = familySubnet(n, family); return fs === undefined ? undefined : canonical(fs.subnet) }
  // The loopback MASQUERADE and the INPUT guard exist for every network that can publish,
  // whether or not one of its ports is on loopback right now: harmless while the bridge's
  // route_localnet is 0 (the kernel drops such packets anyway), and the first or last
  // loopback publication then changes one sysctl, not two more tables. (Not for an IPv6-only
  // network: nothing of it can be published on 127.0.0.1, so it gets no IPv4 NAT rule at all.)
  const guarded = nets.filter((n) => !n.internal && localnetOn && n.subnet !== undefined)
  const localnet = guarded.filter((n) => localnetBridges.has(n.bridge))

  tables.raw[CHAIN.raw] = { kind: 'unordered', rules: [] }

  tables.nat[CHAIN.dnat] = { kind: 'ordered', rules: DNAT_BUCKETS.map((b) => `-j ${b}`) }
  for (const b of DNAT_BUCKETS) tables.nat[b] = { kind: 'unordered', rules: [] }
  // Per network, not per port: a connection ferry DNAT'ed into a bridge is accepted, and
  // masqueraded when it comes from the same bridge (hairpin), so that adding or removing
  // an endpoint's publications touches the nat table's DNAT rules only (each table an
  // iptables-restore touches costs ~13 ms to delete from with the nft backend).
  const external = nets.filter((n) => !n.internal)
  tables.nat[CHAIN.hairpin] = {
    kind: 'unordered',
    rules: external.flatMap((n) => {
      const subnet = subnetOf(n)
      return subnet === undefined ? [] : [`-s ${subnet} -o ${n.bridge} -m conntrack --ctstate DNAT ${comment(`hairpin ${shortId(n.id)}`)} -j MASQUERADE`]
    }),
  }
  const post = [`${comment('hairpin')} -j ${CHAIN.hairpin}`]
  for (const n of nets) {
    const fs = familySubnet(n, family)
    if (fs === undefined || !masqueradesFamily(n, family)) continue
    // com.docker.network.host_ipv4 (host_ipv6): a chosen host address instead of the outgoing interface's.
    const out = fs.outboundAddr === undefined ? 'MASQUERADE' : `SNAT --to-source ${normalizeIp(fs.outboundAddr)}`
    post.push(`-s ${canonical(fs.subnet)} ! -o ${n.bridge} ${comment(`masq ${shortId(n.id)}`)} -j ${out}`)
  }
  for (const n of guarded) post.push(`-s ${LOOPBACK_NET} -o ${n.bridge} ${comment(`localnet ${shortId(n.id)}`)} -j MASQUERADE`)
  tables.nat[CHAIN.postrouting] = { kind: 'ordered', rules: post }

  tables.filter[CHAIN.user] = { kind: 'user', rules: [] }
  tables.filter[CHAIN.publish] = {
    kind: 'unordered',
    rules: external.map((n) => `-o ${n.bridge} -m conntrack --ctstate DNAT ${comment(`publish ${shortId(n.id)}`)} -j ACCEPT`),
  }
  const linkRules = planLinks(links, nets, family)
  if (linkRules.length > 0) tables.filter[CHAIN.links] = { kind: 'unordered', rules: linkRules }
  const routed = family === 6 ? external.filter((n) => n.mode6 === 'routed' && n.subnet6 !== undefined) : []
  if (routed.length > 0) {
    // Traffic from any ferry bridge goes back to the isolation rules; the rest meets the opened ports.
    tables.filter[CHAIN.routed] = { kind: 'ordered', rules: [...nets.map((n) => `-i ${n.bridge} -j RETURN`), `-j ${CHAIN.routedPorts}`] }
    tables.filter[CHAIN.routedPorts] = { kind: 'unordered', rules: [] }
  }
  tables.filter[CHAIN.forward] = { kind: 'ordered', rules: forwardRules(nets, linkRules.length > 0, routed) }
  tables.filter[CHAIN.input] = {
    kind: 'ordered',
    rules: [
      // Encrypted overlays' VXLAN only from ferry's WireGuard device (fyw-*), in both families like the nft rule.
      `! -i ${WG_PREFIX}+ -p udp -m udp --dport ${ENCRYPTED_VXLAN_PORT} ${comment('wireguard only')} -j DROP`,
      ...guarded.map((n) => `-d ${LOOPBACK_NET} -i ${n.bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT ${comment(`localnet ${shortId(n.id)}`)} -j DROP`),
    ],
  }

  const jumps: JumpRule[] = [
    { table: 'raw', chain: 'PREROUTING', rule: `-j ${CHAIN.raw}` },
    { table: 'nat', chain: 'PREROUTING', rule: `-m addrtype --dst-type LOCAL -j ${CHAIN.dnat}` },
    {
      table: 'nat',
      chain: 'OUTPUT',
      rule: family === 6
        ? `! -d ::1/128 -m addrtype --dst-type LOCAL -j ${CHAIN.dnat}`
        : localnetOn ? `-m addrtype --dst-type LOCAL -j ${CHAIN.dnat}` : `! -d ${LOOPBACK_NET} -m addrtype --dst-type LOCAL -j ${CHAIN.dnat}`,
    },
    { table: 'nat', chain: 'POSTROUTING', rule: `-j ${CHAIN.postrouting}` },
    { table: 'filter', chain: 'FORWARD', rule: `-j ${CHAIN.forward}` },
    { table: 'filter', chain: 'INPUT', rule: `-j ${CHAIN.input}` },
  ]
  return { family, tables, jumps, localnetBridges: localnet.map((n) => n.bridge) }
}

/** Add one endpoint's rules of the ruleset's family to it (in place). */
export function addEndpointRules (rs: Ruleset, plan: EndpointPlan): void {
  for (const r of plan.rules) {
    if (r.family !== rs.family) continue
    const chain = rs.tables[r.table][r.chain]
    if (chain === undefined) throw new FerryError('INTERNAL', `endpoint rule for unknown chain ${r.table}/${r.chain}`)
    chain.rules.push(r.rule)
  }
}

/** Bridges whose endpoints publish on loopback addresses. */
export function localnetBridgesOf (state: FirewallState, plans: ReadonlyMap<string, EndpointPlan>): Set<string> {
  const byId = new Map(state.networks.map((n) => [n.id, n]))
  const out = new Set<string>()
  for (const ep of state.endpoints) {
    const net = byId.get(ep.networkId)
    if (net !== undefined && plans.get(ep.id)?.localnet === true) out.add(net.bridge)
  }
  return out
}

/** The whole plan for a state, in one family (iptables: 4, ip6tables: 6). */
export function planRules (state: FirewallState, opts: PlanOptions = {}, family: Family = 4): Ruleset {
  for (const n of state.networks) validateNetwork(n)
  for (const ep of state.endpoints) validateEndpoint(ep)
  for (const l of state.links ?? []) validateLink(l)
  const byId = new Map(state.networks.map((n) => [n.id, n]))
  const plans = new Map<string, EndpointPlan>()
  const endpoints = [...state.endpoints].sort((a, b) => a.id.localeCompare(b.id))
  for (const ep of endpoints) plans.set(ep.id, planEndpoint(ep, byId.get(ep.networkId), opts))
  const rs = planBase(state.networks, localnetBridgesOf(state, plans), opts, state.links, family)
  for (const ep of endpoints) {
    const p = plans.get(ep.id)
    if (p !== undefined) addEndpointRules(rs, p)
  }
  return rs
}

/** The plan of "nothing": what teardown converges to. */
export function emptyRuleset (family: Family = 4): Ruleset {
  return { family, tables: emptyTables(), jumps: [], localnetBridges: [] }
}
