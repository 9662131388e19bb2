/**
 * The shape of the local state, checked where it enters: the snapshot when it is
 * read, and the state again after the journal is replayed onto it. A tiny
 * declarative schema (no dependency): each record kind names the fields the
 * agent reads, with their types; unknown fields pass (a newer ferry may add some).
 *
 * `checkState` never throws: it returns the state it could keep and one sentence
 * per problem. A top-level problem (`"networks": null`, no version) drops that
 * section; a record that does not fit (a wrong type, a missing field, a key that
 * is not its id) drops that record. The caller decides whether problems are fatal.
 */
import { dict } from '../util/dict.js'
import type { State } from './store.js'

type Schema =
  | 'string' | 'boolean' | 'int'
  | { enum: readonly string[] }
  | { array: Schema }
  | { map: Schema }
  | { fields: Record<string, Schema>, optional?: Record<string, Schema> }

const str = 'string'
const bool = 'boolean'
const int = 'int'
const proto = { enum: ['tcp', 'udp', 'sctp'] } as const

const portRequest: Schema = { fields: { proto, containerPort: int, containerPortEnd: int, hostIp: str, hostPort: int, hostPortEnd: int } }
const portBinding: Schema = { fields: { proto, hostIp: str, hostPort: int, hostPortEnd: int, containerIp: str, containerPort: int, containerPortEnd: int } }
const exposed: Schema = { fields: { proto, port: int } }

const network: Schema = {
  fields: {
    id: str, bridge: str, ownsBridge: bool, mtu: int,
    icc: bool, masquerade: bool, internal: bool, hostBindingIp: str, options: { map: str }, createdAt: str,
  },
  optional: {
    overlay: { fields: { name: str, vni: int } },
    subnet: str, gateway: str, poolId: str, subnet6: str, gateway6: str, poolId6: str, gatewayMode6: { enum: ['nat', 'routed'] },
  },
}

const endpoint: Schema = {
  fields: {
    id: str, networkId: str, mac: str, hostVeth: str, containerVeth: str, joined: bool,
    portRequests: { array: portRequest }, ports: { array: portBinding }, exposed: { array: exposed }, createdAt: str,
  },
  optional: { sandboxKey: str, address: str, prefixLen: int, address6: str, prefixLen6: int },
}

const pool: Schema = {
  fields: {
    id: str, addressSpace: str, subnet: str, userDefined: bool, options: { map: str }, createdAt: str,
    allocated: { map: { fields: { kind: { enum: ['gateway', 'aux', 'endpoint', 'recovered'] }, at: str } } },
  },
  optional: { range: str, cursor: str, overlay: str },
}

const processRef: Schema = { fields: { pid: int, startTime: str } }
const container: Schema = {
  fields: {
    id: str, name: str, owner: { enum: ['run', 'attach', 'cni'] }, mode: { enum: ['network', 'none', 'container', 'host'] },
    netns: str, ifname: str, aliases: { array: str }, links: { array: { fields: { name: str, alias: str } } },
    exposed: { array: exposed }, hostname: str, dns: { array: str }, dnsSearch: { array: str }, createdAt: str,
  },
  optional: {
    pid: int, watch: processRef, process: processRef, detached: bool, log: str, env: { array: str }, networkId: str,
    endpointId: str, address: str, prefixLen: int, gateway: str, mac: str, sharesWith: str, filesDir: str,
  },
}

/** Record maps of the state, with the field that must equal each record's key. */
const SECTIONS = {
  networks: { schema: network, key: 'id' },
  endpoints: { schema: endpoint, key: 'id' },
  pools: { schema: pool, key: 'id' },
  containers: { schema: container, key: 'name' },
  networkNames: { schema: str, key: undefined },
} as const satisfies Record<string, { schema: Schema, key: string | undefined }>

export type Section = keyof typeof SECTIONS

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function describe (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40) ?? ''}`.trim()
}

/** The first way `v` does not fit `s`, as `where: what` (undefined when it fits). */
export function mismatch (v: unknown, s: Schema, where: string): string | undefined {
  if (s === 'string') return typeof v === 'string' ? undefined : `${where} is ${describe(v)}, not a string`
  if (s === 'boolean') return typeof v === 'boolean' ? undefined : `${where} is ${describe(v)}, not true or false`
  if (s === 'int') return Number.isSafeInteger(v) ? undefined : `${where} is ${describe(v)}, not a whole number`
  if ('enum' in s) return typeof v === 'string' && s.enum.includes(v) ? undefined : `${where} is ${describe(v)}, not one of ${s.enum.join(', ')}`
  if ('array' in s) {
    if (!Array.isArray(v)) return `${where} is ${describe(v)}, not a list`
    for (let i = 0; i < v.length; i++) {
      const m = mismatch(v[i], s.array, `${where}[${i}]`)
      if (m !== undefined) return m
    }
    return undefined
  }
  if (!isPlainObject(v)) return `${where} is ${describe(v)}, not an object`
  if ('map' in s) {
    for (const [k, x] of Object.entries(v)) {
      const m = mismatch(x, s.map, `${where}/${k}`)
      if (m !== undefined) return m
    }
    return undefined
  }
  for (const [k, fs] of Object.entries(s.fields)) {
    if (!Object.hasOwn(v, k)) return `${where} has no ${k}`
    const m = mismatch(v[k], fs, `${where}.${k}`)
    if (m !== undefined) return m
  }
  for (const [k, fs] of Object.entries(s.optional ?? {})) {
    if (!Object.hasOwn(v, k) || v[k] === undefined) continue
    const m = mismatch(v[k], fs, `${where}.${k}`)
    if (m !== undefined) return m
  }
  return undefined
}

export interface StateCheck {
  /** What could be kept: every section an object of valid records. */
  state: State
  /** One sentence per dropped section or record (empty: the input was whole). */
  problems: string[]
  /** `section/key` of every dropped record (for the loss report). */
  dropped: string[]
}

/**
 * Check a parsed snapshot (or a replayed state) against the schema. `version` is
 * the caller's business (it is checked before); `journalSeq` is not part of State.
 */
export function checkState (input: unknown, version: number): StateCheck {
  const problems: string[] = []
  const dropped: string[] = []
  const state: State = { version, networks: dict(), endpoints: dict(), pools: dict(), containers: dict(), networkNames: dict() }
  if (!isPlainObject(input)) return { state, problems: [`the state is ${describe(input)}, not an object`], dropped }
  for (const [name, { schema, key }] of Object.entries(SECTIONS) as Array<[Section, { schema: Schema, key: string | undefined }]>) {
    const raw = input[name]
    // containers and networkNames came after version 1's first release: absent is fine.
    if (raw === undefined && (name === 'containers' || name === 'networkNames')) continue
    if (!isPlainObject(raw)) {
      problems.push(`"${name}" is ${describe(raw)}, not an object of records`)
      continue
    }
    const out = state[name] as Record<string, unknown>
    for (const [k, rec] of Object.entries(raw)) {
      let m = mismatch(rec, schema, `${name}/${k}`)
      if (m === undefined && key !== undefined && (rec as Record<string, unknown>)[key] !== k) m = `${name}/${k} has ${key} ${JSON.stringify((rec as Record<string, unknown>)[key])}, not its key`
      if (m !== undefined) {
        problems.push(m)
        dropped.push(`${name}/${k}`)
        continue
      }
      // Never a prototype: a record keyed "__proto__" stays a plain own property.
      Object.defineProperty(out, k, { value: rec, enumerable: true, writable: true, configurable: true })
    }
  }
  if (input.hostId !== undefined) {
    if (typeof input.hostId === 'string') state.hostId = input.hostId
    else problems.push(`"hostId" is ${describe(input.hostId)}, not a string`)
  }
  return { state, problems, dropped }
}
