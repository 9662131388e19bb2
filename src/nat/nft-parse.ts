/**
 * Reads `nft list table inet ferry` (nftables 1.0.x text) back into data: sets
 * and maps with their declaration lines and elements, chains with their hook line
 * and rules. Pure. Anything it does not understand becomes a declaration line or a
 * rule, so it makes the table differ from the plan (and be rewritten), never
 * silently equal.
 */
import type { NftKernelTable } from './nft-plan.js'

/** Split `a, b, c` at top-level commas (elements hold no braces or quoted commas of ferry's). */
function splitElements (body: string): string[] {
  const out: string[] = []
  let depth = 0
  let quoted = false
  let cur = ''
  for (const ch of body) {
    if (ch === '"') quoted = !quoted
    if (!quoted && (ch === '{' || ch === '[' || ch === '(')) depth++
    if (!quoted && (ch === '}' || ch === ']' || ch === ')')) depth--
    if (ch === ',' && depth === 0 && !quoted) {
      out.push(cur.trim())
      cur = ''
      continue
    }
    cur += ch
  }
  if (cur.trim() !== '') out.push(cur.trim())
  return out
}

/** Parse the text of one table; undefined when there is no `table` block in it. */
export function parseNftTable (text: string): NftKernelTable | undefined {
  const lines = text.split('\n').map((l) => l.trim())
  if (!lines.some((l) => /^table \S+ \S+ \{$/.test(l))) return undefined
  const table: NftKernelTable = { sets: new Map(), chains: new Map() }
  let current: { kind: 'set' | 'map', spec: string[], elements: string[] } | { hook?: string, rules: string[] } | undefined
  let elements: string | undefined
  for (const line of lines) {
    if (elements !== undefined) {
      elements += ' ' + line
      if (line.endsWith('}')) {
        if (current !== undefined && 'elements' in current) current.elements.push(...splitElements(elements.replace(/^elements = \{/, '').replace(/\}$/, '')))
        elements = undefined
      }
      continue
    }
    if (line === '' || /^table \S+ \S+ \{$/.test(line)) continue
    const head = /^(set|map|chain) (\S+) \{$/.exec(line)
    if (head !== null) {
      const [, kind, name] = head as unknown as [string, 'set' | 'map' | 'chain', string]
      if (kind === 'chain') {
        const c = { rules: [] as string[] } as { hook?: string, rules: string[] }
        table.chains.set(name, c)
        current = c
      } else {
        const s = { kind, spec: [] as string[], elements: [] as string[] }
        table.sets.set(name, s)
        current = s
      }
      continue
    }
    if (line === '}') { current = undefined; continue }
    if (current === undefined) continue
    if ('elements' in current) {
      if (line.startsWith('elements = {')) {
        if (line.endsWith('}')) current.elements.push(...splitElements(line.replace(/^elements = \{/, '').replace(/\}$/, '')))
        else elements = line
      } else {
        current.spec.push(line)
      }
      continue
    }
    if (current.hook === undefined && current.rules.length === 0 && /^type \S+ hook /.test(line)) current.hook = line
    else current.rules.push(line)
  }
  return table
}
