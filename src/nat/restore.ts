/**
 * From a plan to an `iptables-restore --noflush` batch, and from `iptables-save`
 * output back to data. Pure.
 *
 * In --noflush mode a `:CHAIN - [0:0]` line creates the chain or, when it
 * exists, FLUSHES it: it is used to create chains and to rewrite ordered
 * chains, never on an unordered chain that exists or on FERRY-USER. `-D` lines
 * delete exact rules, `-A` appends, `-I CHAIN 1` puts a jump first, `-X`
 * deletes a chain (emptied first: nft refuses to delete a chain with rules).
 * Each table section is committed on its own by the kernel (the batch is not
 * atomic across tables), so the executor reconciles after a failed batch.
 */
import {
  CHAIN, CHAIN_PREFIX, TABLES,
  type EndpointPlan, type EndpointRule, type Ruleset, type TableName,
} from './plan.js'
import type { Family } from '../util/ip.js'

/** What the kernel (or the last applied plan) holds of ferry's. */
export interface KernelView {
  /** FERRY-* chains per table, rules in kernel order. */
  chains: Record<TableName, Map<string, string[]>>
  /** Per table, built-in chain -> its rules that jump into a FERRY-* chain. */
  jumps: Record<TableName, Map<string, string[]>>
}

export interface TableOps {
  /** Chains to create or flush (`:CHAIN - [0:0]`). */
  declare: string[]
  del: Array<[string, string]>
  add: Array<[string, string]>
  /** Rules put first in a chain (`-I CHAIN 1`). */
  insert: Array<[string, string]>
  /** Chains to delete (`-X`); they are declared (flushed) too. */
  remove: string[]
}

export type Batch = Record<TableName, TableOps>

export function emptyBatch (): Batch {
  const ops = (): TableOps => ({ declare: [], del: [], add: [], insert: [], remove: [] })
  return { raw: ops(), nat: ops(), filter: ops() }
}

export function batchSize (b: Batch): number {
  let n = 0
  for (const t of TABLES) {
    const o = b[t]
    n += o.declare.length + o.del.length + o.add.length + o.insert.length + o.remove.length
  }
  return n
}

/** Append `more` to `into` (in place) and return it. */
export function mergeBatch (into: Batch, more: Batch): Batch {
  for (const t of TABLES) {
    const a = into[t]
    const b = more[t]
    for (const c of b.declare) if (!a.declare.includes(c)) a.declare.push(c)
    a.del.push(...b.del)
    a.add.push(...b.add)
    a.insert.push(...b.insert)
    for (const c of b.remove) if (!a.remove.includes(c)) a.remove.push(c)
  }
  return into
}

function emptyView (): KernelView {
  return {
    chains: { raw: new Map(), nat: new Map(), filter: new Map() },
    jumps: { raw: new Map(), nat: new Map(), filter: new Map() },
  }
}

const JUMP_RE = /(?:^| )-[jg] FERRY-/

function isTable (s: string): s is TableName {
  return (TABLES as readonly string[]).includes(s)
}

/** Read ferry's chains and jumps out of `iptables-save` output. */
export function parseSave (text: string): KernelView {
  const view = emptyView()
  let table: TableName | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (line.startsWith('*')) {
      const name = line.slice(1)
      table = isTable(name) ? name : undefined
      continue
    }
    if (table === undefined || line === '' || line.startsWith('#') || line === 'COMMIT') continue
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0] ?? ''
      if (name.startsWith(CHAIN_PREFIX)) view.chains[table].set(name, [])
      continue
    }
    const m = /^-A (\S+) (.*)$/.exec(line)
    if (m === null) continue
    const chain = m[1] ?? ''
    const rule = m[2] ?? ''
    if (chain.startsWith(CHAIN_PREFIX)) {
      const rules = view.chains[table].get(chain)
      if (rules !== undefined) rules.push(rule)
      else view.chains[table].set(chain, [rule])
    } else if (JUMP_RE.test(rule)) {
      const rules = view.jumps[table].get(chain) ?? []
      rules.push(rule)
      view.jumps[table].set(chain, rules)
    }
  }
  return view
}

/** The view a ruleset gives once applied (used to diff plan against plan). */
export function viewOf (rs: Ruleset): KernelView {
  const view = emptyView()
  for (const t of TABLES) {
    for (const [name, chain] of Object.entries(rs.tables[t])) view.chains[t].set(name, [...chain.rules])
  }
  for (const j of rs.jumps) {
    const rules = view.jumps[j.table].get(j.chain) ?? []
    rules.push(j.rule)
    view.jumps[j.table].set(j.chain, rules)
  }
  return view
}

function sameList (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** Multiset difference: occurrences in `from` beyond those in `keep`. */
function extras (from: readonly string[], keep: readonly string[]): string[] {
  const budget = new Map<string, number>()
  for (const r of keep) budget.set(r, (budget.get(r) ?? 0) + 1)
  const out: string[] = []
  for (const r of from) {
    const n = budget.get(r) ?? 0
    if (n > 0) budget.set(r, n - 1)
    else out.push(r)
  }
  return out
}

/**
 * The batch that turns `view` into `plan`. FERRY-* chains the plan does not have are
 * deleted, FERRY-USER only when empty. Ordered chains that differ are rewritten,
 * unordered ones get exact `-D`/`-A` lines, missing jumps are put first and
 * stray or duplicate ones deleted.
 */
export function diffViews (view: KernelView, plan: Ruleset): Batch {
  const batch = emptyBatch()
  for (const t of TABLES) {
    const ops = batch[t]
    const have = view.chains[t]
    const want = plan.tables[t]
    for (const [name, chain] of Object.entries(want)) {
      const current = have.get(name)
      if (current === undefined) {
        ops.declare.push(name)
        if (chain.kind !== 'user') for (const r of chain.rules) ops.add.push([name, r])
        continue
      }
      if (chain.kind === 'user') continue
      if (chain.kind === 'ordered') {
        if (sameList(current, chain.rules)) continue
        ops.declare.push(name)
        for (const r of chain.rules) ops.add.push([name, r])
        continue
      }
      for (const r of extras(current, chain.rules)) ops.del.push([name, r])
      for (const r of extras(chain.rules, current)) ops.add.push([name, r])
    }
    for (const [name, rules] of have) {
      if (Object.hasOwn(want, name)) continue
      if (name === CHAIN.user && rules.length > 0) continue
      if (rules.length > 0) ops.declare.push(name)
      ops.remove.push(name)
    }
    const wantJumps = new Map<string, string[]>()
    for (const j of plan.jumps) {
      if (j.table !== t) continue
      wantJumps.set(j.chain, [...(wantJumps.get(j.chain) ?? []), j.rule])
    }
    const builtins = new Set([...view.jumps[t].keys(), ...wantJumps.keys()])
    for (const chain of builtins) {
      const current = view.jumps[t].get(chain) ?? []
      const desired = wantJumps.get(chain) ?? []
      for (const r of extras(current, desired)) ops.del.push([chain, r])
      for (const r of extras(desired, current)) ops.insert.push([chain, r])
    }
  }
  return batch
}

function ruleKey (r: EndpointRule): string {
  return `${r.table}\n${r.chain}\n${r.rule}`
}

/** `-D`/`-A` lines that replace one endpoint's rules of `family` with another's (either may be absent). */
export function diffEndpoint (before: EndpointPlan | undefined, after: EndpointPlan | undefined, family: Family = 4): Batch {
  const batch = emptyBatch()
  const mine = (p: EndpointPlan | undefined): EndpointRule[] => (p?.rules ?? []).filter((r) => r.family === family)
  const old = new Map(mine(before).map((r) => [ruleKey(r), r]))
  const next = new Map(mine(after).map((r) => [ruleKey(r), r]))
  for (const [k, r] of old) if (!next.has(k)) batch[r.table].del.push([r.chain, r.rule])
  for (const [k, r] of next) if (!old.has(k)) batch[r.table].add.push([r.chain, r.rule])
  return batch
}

/** The iptables-restore text of a batch; '' when there is nothing to do. */
export function renderBatch (batch: Batch): string {
  const out: string[] = []
  for (const t of TABLES) {
    const o = batch[t]
    if (o.declare.length + o.del.length + o.add.length + o.insert.length + o.remove.length === 0) continue
    out.push(`*${t}`)
    for (const c of o.declare) out.push(`:${c} - [0:0]`)
    for (const [c, r] of o.del) out.push(`-D ${c} ${r}`)
    for (const [c, r] of o.add) out.push(`-A ${c} ${r}`)
    for (const [c, r] of o.insert) out.push(`-I ${c} 1 ${r}`)
    for (const c of o.remove) out.push(`-X ${c}`)
    out.push('COMMIT')
  }
  return out.length === 0 ? '' : out.join('\n') + '\n'
}
