/**
 * `ferry trace`: why a packet does or does not get from A to B, from the firewall's
 * planned state. Pure: no I/O.
 *
 * The verdicts are not re-derived by hand: the packet is run through the very table
 * the nftables driver applies (`planTable` of the same desired state, src/nat/nft-plan.ts),
 * by a small interpreter of the expressions that table uses (set and map lookups over
 * concatenations, `vmap`, `ct`, `fib daddr type local`, nat statements). A rule the
 * interpreter does not understand is an error (test/nat/trace.test.ts runs every planned
 * rule through it), so a change of the plan cannot make the explanation silently wrong.
 * The iptables backend applies the same desired state with equivalent rules (the kernel
 * tests compare their reachability matrices), so its explanation is the same one; only the
 * named rule is nftables text.
 *
 * Modelled: the first packet of a new connection (or an ICMP echo request), the hooks
 * in the order the kernel runs them (prerouting raw, then dstnat; routing; forward or
 * input; postrouting; or, from the host itself, output then postrouting), bridged
 * traffic through br_netfilter as routed traffic is. Not modelled: the admin chain
 * (`user`, evaluated first in forward: ferry does not plan it, only `--live` sees what
 * it does), other tables (Docker's, firewalld's), routes beyond "a ferry bridge, the host,
 * or out".
 */
import { FerryError } from '../errors/errors.js'
import { contains, familyOf, isCidr, isIp, normalizeIp, type Family } from '../util/ip.js'
import { planTable, USER_CHAIN, type NftChainPlan, type NftTablePlan } from './nft-plan.js'
import type { PlanOptions } from './plan.js'
import type { FirewallState, NatEndpoint, NatNetwork } from './types.js'

export type TraceProto = 'tcp' | 'udp' | 'sctp' | 'icmp'
/** Where the packet enters: a local container, the host itself, or another host (through the uplink). */
export type TraceIngress = 'container' | 'host' | 'remote'

export interface TracePacket {
  src: string
  dst: string
  /** tcp/udp/sctp need a port; icmp (an echo request) has none. */
  proto: TraceProto
  port?: number
  ingress: TraceIngress
}

export interface TraceInput {
  state: FirewallState
  opts?: PlanOptions
  /** The host's own addresses (`fib daddr type local`); loopback and the bridges' gateways are added. */
  hostAddrs: readonly string[]
  /** The interface a packet from another host comes in on, and one to the outside leaves by. */
  uplink?: string
  /** Names to show (endpoint id -> container, network id -> name), and overlay network ids. */
  names?: { endpoints?: ReadonlyMap<string, string>, networks?: ReadonlyMap<string, string>, overlays?: ReadonlySet<string> }
}

export type HopVerdict = 'pass' | 'accept' | 'drop' | 'nat' | 'unknown'

export interface TraceHop {
  /** Where: a chain of ferry's table (`filter-forward`), or a step of the path (`ingress`, `route`, `deliver`). */
  where: string
  verdict: HopVerdict
  /** The rule as `nft list table inet ferry` prints it, when a rule decided. */
  rule?: string
  /** What it means, naming the option or publication that decided. */
  note: string
}

export interface TraceResult {
  family: Family
  packet: TracePacket
  /** delivered: every rule of ferry's lets it through; dropped: one drops it; refused: it reaches the host, where nothing of ferry's forwards it. */
  verdict: 'delivered' | 'dropped' | 'refused'
  hops: TraceHop[]
  /** The hop that dropped or refused it. */
  decidedBy?: TraceHop
  /** Always true: the admin chain is evaluated first in forward and ferry cannot see its verdict without --live. */
  adminChainUnknown: boolean
}

// ---------------------------------------------------------------------------
// The packet as the interpreter sees it.

interface Pkt {
  family: Family
  saddr: string
  daddr: string
  proto: TraceProto
  sport: number
  dport: number | undefined
  iif: string | undefined
  oif: string | undefined
  dnat: boolean
  isLocal: (addr: string) => boolean
}

/** What one chain's evaluation did. */
interface ChainOutcome {
  verdict: 'continue' | 'accept' | 'drop' | 'return'
  rule?: string
  /** A nat statement's effect: the new destination (dnat) or 'masquerade' / the SNAT address. */
  nat?: { kind: 'dnat', addr: string, port?: number } | { kind: 'snat', to: string }
  /** Chains jumped through (user, publish). */
  via: string[]
}

/** Split a rule into tokens: words, `{ … }` groups and quoted names kept whole. */
function tokenize (rule: string): string[] {
  const out: string[] = []
  let i = 0
  while (i < rule.length) {
    const c = rule[i]!
    if (c === ' ') { i++; continue }
    if (c === '{') {
      const end = rule.indexOf('}', i)
      out.push(rule.slice(i, end + 1))
      i = end + 1
    } else if (c === '"') {
      const end = rule.indexOf('"', i + 1)
      out.push(rule.slice(i, end + 1))
      i = end + 1
    } else {
      let end = rule.indexOf(' ', i)
      if (end < 0) end = rule.length
      out.push(rule.slice(i, end))
      i = end
    }
  }
  return out
}

/** A selector's value for the packet; undefined: it does not apply (an `ip` selector on IPv6, no port on ICMP). */
type Value = string | number | undefined

const SELECTORS: Record<string, (p: Pkt) => Value> = {
  iifname: (p) => p.iif,
  oifname: (p) => p.oif,
  'ip saddr': (p) => p.family === 4 ? p.saddr : undefined,
  'ip daddr': (p) => p.family === 4 ? p.daddr : undefined,
  'ip6 saddr': (p) => p.family === 6 ? p.saddr : undefined,
  'ip6 daddr': (p) => p.family === 6 ? p.daddr : undefined,
  'meta l4proto': (p) => p.proto === 'icmp' ? (p.family === 4 ? 'icmp' : 'ipv6-icmp') : p.proto,
  'th dport': (p) => p.dport,
  'th sport': (p) => p.proto === 'icmp' ? undefined : p.sport,
  'udp dport': (p) => p.proto === 'udp' ? p.dport : undefined,
  // Only neighbour discovery reads these; a traced packet is never one.
  'icmpv6 type': () => undefined,
  'ip6 hoplimit': () => undefined,
  'ct state': () => 'new',
  'ct status': (p) => p.dnat ? 'dnat' : '',
}

/** Read a selector at tokens[i] (one or two words); returns its name and the next index. */
function selectorAt (tokens: readonly string[], i: number): [string, number] | undefined {
  const one = tokens[i]
  if (one !== undefined && one in SELECTORS) return [one, i + 1]
  const two = `${tokens[i] ?? ''} ${tokens[i + 1] ?? ''}`
  if (two in SELECTORS) return [two, i + 2]
  return undefined
}

/** A concatenation of selectors (`iifname . ip daddr`) from tokens[i]: the packet's values and the next index. */
function readSelectors (tokens: readonly string[], i: number, p: Pkt, rule: string): [Value[], number] {
  const values: Value[] = []
  for (;;) {
    const sel = selectorAt(tokens, i)
    if (sel === undefined) throw unknownRule(rule)
    values.push(SELECTORS[sel[0]]!(p))
    i = sel[1]
    if (tokens[i] !== '.') return [values, i]
    i++
  }
}

/** Does one component of an element (`"fy-x"`, `10.0.0.0/24`, `tcp`, `8000-8009`, `10.0.0.5`) hold a value? */
function componentHas (component: string, v: Value): boolean {
  if (v === undefined) return false
  if (component.startsWith('"')) {
    const name = component.slice(1, -1)
    return name.endsWith('*') ? String(v).startsWith(name.slice(0, -1)) : String(v) === name
  }
  if (typeof v === 'number') {
    const m = /^(\d+)(?:-(\d+))?$/.exec(component)
    if (m === null) return false
    return v >= Number(m[1]) && v <= Number(m[2] ?? m[1])
  }
  if (isIp(v)) {
    if (isCidr(component)) return contains(component, v)
    return isIp(component) && normalizeIp(component) === normalizeIp(v)
  }
  return component === v
}

/** A literal: a word, a CIDR, a `{ a, b }` group or `a,b` list. */
function literalHas (literal: string, v: Value): boolean {
  const items = literal.startsWith('{') ? literal.slice(1, -1).split(',') : literal.split(',')
  return items.map((s) => s.trim()).some((item) => componentHas(item, v))
}

/** The element of a set or map that holds a key, or undefined. */
function lookup (table: NftTablePlan, name: string, key: Value[]): { key: string, value?: string } | undefined {
  const set = table.sets.find((s) => s.name === name)
  if (set === undefined) throw new FerryError('INTERNAL', `trace: the plan has no set @${name}`)
  for (const text of set.elements) {
    const [k, value] = text.split(' : ')
    const parts = k!.split(' . ')
    if (parts.length === key.length && parts.every((c, i) => componentHas(c, key[i]))) return value === undefined ? { key: k! } : { key: k!, value }
  }
  return undefined
}

function unknownRule (rule: string): FerryError {
  return new FerryError('INTERNAL', `trace: cannot read the planned rule "${rule}"`)
}

/** Evaluate one rule: undefined when it does not match, else its statement's effect. */
function evalRule (table: NftTablePlan, rule: string, p: Pkt, evalChain: (name: string) => ChainOutcome): ChainOutcome | undefined {
  const t = tokenize(rule)
  let i = 0
  while (i < t.length) {
    const word = t[i]!
    // Statements.
    if (word === 'accept' || word === 'drop' || word === 'return') return { verdict: word, rule, via: [] }
    if (word === 'jump') {
      const target = t[i + 1]!
      const inner = evalChain(target)
      if (inner.verdict === 'accept' || inner.verdict === 'drop' || inner.nat !== undefined) return { ...inner, via: [target, ...inner.via] }
      return undefined
    }
    if (word === 'masquerade') return { verdict: 'accept', rule, nat: { kind: 'snat', to: 'masquerade' }, via: [] }
    if (word === 'meta' && t[i + 1] === 'mark' && t[i + 2] === 'set') return undefined // marks only; no verdict
    if (word === 'snat' || word === 'dnat') {
      // snat ip to ip saddr map @snat_to / dnat ip to <selectors> map @m: `ip` (`ip6`) applies to that family alone.
      if (t[i + 1] !== (p.family === 4 ? 'ip' : 'ip6')) return undefined
      const [key, j] = readSelectors(t, i + 3, p, rule)
      if (t[j] !== 'map' || !t[j + 1]?.startsWith('@')) throw unknownRule(rule)
      const hit = lookup(table, t[j + 1]!.slice(1), key)
      if (hit?.value === undefined) return undefined
      if (word === 'snat') return { verdict: 'accept', rule, nat: { kind: 'snat', to: hit.value }, via: [] }
      const [addr, port] = hit.value.split(' . ')
      return { verdict: 'accept', rule, nat: { kind: 'dnat', addr: addr!, ...(port === undefined ? {} : { port: Number(port) }) }, via: [] }
    }
    // Matches.
    if (word === 'fib' && t[i + 1] === 'daddr' && t[i + 2] === 'type' && t[i + 3] === 'local') {
      if (!p.isLocal(p.daddr)) return undefined
      i += 4
      continue
    }
    const [values, next] = readSelectors(t, i, p, rule)
    i = next
    let negate = false
    if (t[i] === '!=') { negate = true; i++ }
    const operand = t[i]
    if (operand === undefined) throw unknownRule(rule)
    if (operand === 'vmap') {
      const hit = lookup(table, t[i + 1]!.slice(1), values)
      if (hit === undefined) return undefined
      if (hit.value !== 'accept' && hit.value !== 'drop') throw unknownRule(rule)
      return { verdict: hit.value, rule, via: [] }
    }
    let matched: boolean
    if (operand.startsWith('@')) matched = values.every((v) => v !== undefined) && lookup(table, operand.slice(1), values) !== undefined
    else if (values.length === 1) matched = literalHas(operand, values[0])
    else throw unknownRule(rule)
    // A selector that does not apply (an `ip` one on IPv6) never matches, negated or not, as in nft.
    if (values.some((v) => v === undefined)) return undefined
    if (matched === negate) return undefined
    i++
  }
  throw unknownRule(rule)
}

/** Run a chain of the plan; the user chain is the admin's and never planned (its verdict is unknown). */
function runChain (table: NftTablePlan, name: string, p: Pkt, seen: string[] = []): ChainOutcome {
  if (name === USER_CHAIN) return { verdict: 'continue', via: [] }
  const chain: NftChainPlan | undefined = table.chains.find((c) => c.name === name)
  if (chain === undefined || seen.includes(name)) throw new FerryError('INTERNAL', `trace: the plan has no chain ${name}`)
  for (const rule of chain.rules) {
    const out = evalRule(table, rule, p, (inner) => runChain(table, inner, p, [...seen, name]))
    if (out === undefined) continue
    if (out.verdict === 'return') return { verdict: 'continue', via: [] }
    return out
  }
  return { verdict: 'continue', via: [] }
}

/** Check that the interpreter reads every rule of a plan (for the tests: a new rule form must be taught to it). */
export function readsEveryRule (table: NftTablePlan): string[] {
  const probe: Pkt = { family: 4, saddr: '10.0.0.2', daddr: '10.0.0.3', proto: 'tcp', sport: 40000, dport: 80, iif: 'x', oif: 'y', dnat: false, isLocal: () => true }
  const unread: string[] = []
  for (const c of table.chains) {
    for (const r of c.rules) {
      try { evalRule(table, r, probe, () => ({ verdict: 'continue', via: [] })) } catch { unread.push(r) }
    }
  }
  return unread
}

// ---------------------------------------------------------------------------
// The path.

const ADMIN_NOTE = 'the admin chain (`user`, FERRY-USER) is evaluated first; ferry cannot see its verdict without --live'

/** What option or publication a deciding rule stands for, in words. */
function meaning (where: string, rule: string, verdict: 'accept' | 'drop', pkt: Pkt, netOf: (bridge: string | undefined) => string): string {
  if (verdict === 'drop') {
    if (rule.includes('@lo_only')) return 'the port is published on 127.0.0.1 only (-p 127.0.0.1:…): nothing but the container\'s own bridge may reach the container port directly'
    if (rule.includes('vmap @icc')) return `ICC is off on ${netOf(pkt.iif)} (com.docker.network.bridge.enable_icc=false)`
    if (rule === 'iifname @internal drop') return `${netOf(pkt.iif)} is internal (--internal): nothing leaves it`
    if (rule === 'oifname @internal drop') return `${netOf(pkt.oif)} is internal (--internal): nothing enters it from elsewhere`
    if (rule === 'oifname @external drop') {
      return pkt.iif !== undefined && pkt.iif.startsWith('fy')
        ? `isolation between networks: ${netOf(pkt.oif)} takes no new connection from ${netOf(pkt.iif)} (only published ports, through the host's address)`
        : `isolation: ${netOf(pkt.oif)} takes no new connection from outside ferry's bridges except to a published port (through the host's address)`
    }
    if (rule.includes('127.0.0.0/8')) return 'a packet from a container to 127.0.0.0/8 that is not a published port (the forged-loopback guard)'
    if (rule.includes('fyw-')) return 'encrypted overlays take VXLAN only from ferry\'s WireGuard device'
    return `dropped by ${where}`
  }
  if (rule.includes('vmap @icc')) return `traffic inside ${netOf(pkt.iif)}: ICC is on`
  if (rule.includes('ct status dnat')) return 'a connection to a published port (DNAT) may enter the network'
  if (rule.includes('@link_')) return 'a --link exception on an ICC-off network'
  if (rule.includes('@routed')) return 'a published container port of a routed IPv6 network'
  if (rule === 'iifname @external accept') return `${netOf(pkt.iif)} may open connections out`
  return `accepted by ${where}`
}

function parsePortSpec (packet: TracePacket): void {
  if (!isIp(packet.src)) throw new FerryError('INVALID_REQUEST', `trace: the source "${packet.src}" is not an IP address`)
  if (!isIp(packet.dst)) throw new FerryError('INVALID_REQUEST', `trace: the destination "${packet.dst}" is not an IP address`)
  if (familyOf(packet.src) !== familyOf(packet.dst)) {
    throw new FerryError('INVALID_REQUEST', `trace: ${packet.src} and ${packet.dst} are of different address families; a packet has one`)
  }
  if (packet.proto === 'icmp') {
    if (packet.port !== undefined) throw new FerryError('INVALID_REQUEST', 'trace: an ICMP echo has no port; give tcp, udp or sctp with a port')
  } else if (packet.port === undefined || !Number.isInteger(packet.port) || packet.port < 1 || packet.port > 65535) {
    throw new FerryError('INVALID_REQUEST', `trace: ${packet.proto} needs a port from 1 to 65535`)
  }
}

function endpointAddr (ep: NatEndpoint, family: Family): string | undefined {
  const a = family === 4 ? ep.address : ep.address6
  return a === undefined ? undefined : normalizeIp(a)
}

function subnetOf (net: NatNetwork, family: Family): string | undefined {
  return family === 4 ? net.subnet : net.subnet6
}

/** Explain one packet. Throws FerryError (INVALID_REQUEST) on a packet that cannot exist. */
export function tracePacket (input: TraceInput, packet: TracePacket): TraceResult {
  parsePortSpec(packet)
  const family = familyOf(packet.src)!
  const { table } = planTable(input.state, input.opts)
  const uplink = input.uplink ?? 'uplink'
  const nets = input.state.networks
  const byBridge = new Map(nets.map((n) => [n.bridge, n]))
  const local = new Set<string>([...input.hostAddrs.filter((a) => isIp(a)).map((a) => normalizeIp(a)), '::1'])
  for (const n of nets) for (const g of [n.gateway, n.gateway6]) if (g !== undefined) local.add(normalizeIp(g))
  const isLocal = (a: string): boolean => local.has(normalizeIp(a)) || (familyOf(a) === 4 && contains('127.0.0.0/8', a))
  const netName = (n: NatNetwork): string => `network ${input.names?.networks?.get(n.id) ?? n.id.slice(0, 12)}`
  const netOf = (bridge: string | undefined): string => {
    const n = bridge === undefined ? undefined : byBridge.get(bridge)
    return n === undefined ? (bridge === undefined ? '' : bridge) : netName(n)
  }
  const endpointAt = (addr: string): { ep: NatEndpoint, net: NatNetwork } | undefined => {
    for (const ep of input.state.endpoints) {
      if (endpointAddr(ep, family) !== normalizeIp(addr)) continue
      const net = nets.find((n) => n.id === ep.networkId)
      if (net !== undefined) return { ep, net }
    }
    return undefined
  }
  const bridgeFor = (addr: string): NatNetwork | undefined => nets.find((n) => {
    const s = subnetOf(n, family)
    return s !== undefined && contains(s, addr)
  })
  const epName = (ep: NatEndpoint): string => `container ${input.names?.endpoints?.get(ep.id) ?? ep.id.slice(0, 12)}`

  const hops: TraceHop[] = []
  const p: Pkt = {
    family, saddr: normalizeIp(packet.src), daddr: normalizeIp(packet.dst), proto: packet.proto, sport: 40000, dport: packet.port,
    iif: undefined, oif: undefined, dnat: false, isLocal,
  }
  const done = (verdict: TraceResult['verdict'], decidedBy?: TraceHop): TraceResult =>
    ({ family, packet, verdict, hops, ...(decidedBy === undefined ? {} : { decidedBy }), adminChainUnknown: true })
  /** Run a base chain; returns the deciding hop when it drops. */
  const base = (name: string): TraceHop | undefined => {
    const out = runChain(table, name, p)
    if (out.verdict === 'drop') {
      const hop: TraceHop = { where: [name, ...out.via].join(' → '), verdict: 'drop', rule: out.rule, note: meaning(name, out.rule!, 'drop', p, netOf) }
      hops.push(hop)
      return hop
    }
    if (out.nat?.kind === 'dnat') {
      const before = `${p.daddr}${p.dport === undefined ? '' : `:${p.dport}`}`
      p.daddr = normalizeIp(out.nat.addr)
      if (out.nat.port !== undefined) p.dport = out.nat.port
      p.dnat = true
      hops.push({ where: [name, ...out.via].join(' → '), verdict: 'nat', rule: out.rule, note: `DNAT of a published port: ${before} → ${p.daddr}${p.dport === undefined ? '' : `:${p.dport}`}` })
    } else if (out.nat?.kind === 'snat') {
      const note = out.nat.to === 'masquerade'
        ? (out.rule!.includes('127.0.0.0/8') ? 'masquerade: a loopback source becomes the bridge\'s address'
            : out.rule!.includes('ct status dnat') ? 'hairpin: masqueraded so that the answer comes back through the host'
              : 'masquerade: the source becomes the host\'s address on the way out')
        : `SNAT to ${out.nat.to} (com.docker.network.host_ipv4/host_ipv6)`
      hops.push({ where: name, verdict: 'nat', rule: out.rule, note })
    } else if (out.verdict === 'accept' && out.rule !== undefined) {
      hops.push({ where: name, verdict: 'accept', rule: out.rule, note: meaning(name, out.rule, 'accept', p, netOf) })
    } else if (name !== 'filter-forward') {
      hops.push({ where: name, verdict: 'pass', note: 'no rule of ferry\'s applies' })
    } else {
      hops.push({ where: name, verdict: 'pass', note: 'no rule of ferry\'s decides: the chain\'s policy accepts' })
    }
    return undefined
  }

  // Ingress.
  if (packet.ingress === 'container') {
    const src = endpointAt(p.saddr)
    if (src === undefined) throw new FerryError('ENDPOINT_NOT_FOUND', `trace: no container of a ferry network on this host has the address ${p.saddr}`)
    p.iif = src.net.bridge
    const own = subnetOf(src.net, family)
    if (src.net.internal && (own === undefined || !contains(own, p.daddr))) {
      // No gateway is handed to a container of an internal network: nothing outside its subnet is routed.
      const hop: TraceHop = {
        where: 'container route', verdict: 'drop',
        note: `${netName(src.net)} is internal (--internal): ${epName(src.ep)} has no default route, so the packet does not leave it (the host would drop it too: iifname @internal drop)`,
      }
      hops.push(hop)
      return done('dropped', hop)
    }
    hops.push({ where: 'ingress', verdict: 'pass', note: `from ${epName(src.ep)} on ${netName(src.net)}: its veth, into bridge ${src.net.bridge}` })
  } else if (packet.ingress === 'host') {
    if (!isLocal(p.saddr)) throw new FerryError('INVALID_REQUEST', `trace: ${p.saddr} is not an address of this host`)
    hops.push({ where: 'ingress', verdict: 'pass', note: `from the host itself (${p.saddr}): the output path, no forward filter` })
  } else {
    if (isLocal(p.saddr) || endpointAt(p.saddr) !== undefined) throw new FerryError('INVALID_REQUEST', `trace: ${p.saddr} is on this host, not another one`)
    p.iif = uplink
    hops.push({ where: 'ingress', verdict: 'pass', note: `from another host (${p.saddr}), in through ${uplink}` })
  }

  // Prerouting (raw, then dstnat) or output.
  if (packet.ingress === 'host') {
    const d = base('nat-output')
    if (d !== undefined) return done('dropped', d)
  } else {
    const raw = base('raw-prerouting')
    if (raw !== undefined) return done('dropped', raw)
    const nat = base('nat-prerouting')
    if (nat !== undefined) return done('dropped', nat)
  }

  // Routing.
  if (isLocal(p.daddr)) {
    if (packet.ingress !== 'host') {
      const input = base('filter-input')
      if (input !== undefined) return done('dropped', input)
    }
    const hop: TraceHop = {
      where: 'route', verdict: 'drop',
      note: `${p.daddr}${p.dport === undefined ? '' : ` ${p.proto} port ${p.dport}`} is the host's own: ferry publishes nothing there${p.dport === undefined ? '' : ' (a port published on another address, or on 127.0.0.1 only, is not reachable here)'}; only the host's own sockets answer`,
    }
    if (p.dport === undefined) {
      hops.push({ where: 'deliver', verdict: 'accept', note: `to the host itself (${p.daddr})` })
      return done('delivered')
    }
    hops.push(hop)
    return done('refused', hop)
  }
  const outNet = bridgeFor(p.daddr)
  const dest = endpointAt(p.daddr)
  if (outNet !== undefined) {
    p.oif = outNet.bridge
    const how = p.iif === outNet.bridge ? `bridged inside ${outNet.bridge}` : `routed into bridge ${outNet.bridge} (${netName(outNet)})`
    hops.push({ where: 'route', verdict: 'pass', note: how })
  } else {
    p.oif = uplink
    hops.push({ where: 'route', verdict: 'pass', note: `out through ${uplink} (not a ferry network on this host)` })
  }

  if (packet.ingress !== 'host') {
    hops.push({ where: 'filter-forward → user', verdict: 'unknown', note: ADMIN_NOTE })
    const d = base('filter-forward')
    if (d !== undefined) return done('dropped', d)
  }
  base('nat-postrouting')

  if (dest !== undefined) {
    const overlay = input.names?.overlays?.has(dest.net.id) === true ? ' (an overlay: the same bridge carries the VXLAN tunnel to the other hosts)' : ''
    hops.push({ where: 'deliver', verdict: 'accept', note: `to ${epName(dest.ep)} through its veth${overlay}` })
  } else if (outNet !== undefined) {
    const overlay = input.names?.overlays?.has(outNet.id) === true
    hops.push({
      where: 'deliver', verdict: 'accept',
      note: overlay
        ? `into the VXLAN tunnel of ${netName(outNet)}: no container here has ${p.daddr}, the host that holds it applies its own rules`
        : `no container of ${netName(outNet)} has ${p.daddr} here`,
    })
  } else {
    hops.push({ where: 'deliver', verdict: 'accept', note: `out of the host towards ${p.daddr}` })
  }
  return done('delivered')
}
