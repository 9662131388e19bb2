/**
 * docs/grafana/ferry.json: importable as is, and every metric its PromQL queries is one
 * the agent exports (read from a full render of FerryMetrics: DNS and cluster on).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { FerryMetrics } from '../../src/metrics/registry.js'
import { newMetrics } from '../../src/dns/metrics.js'

const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana/ferry.json', import.meta.url), 'utf8')) as Record<string, unknown>

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan'])

/**
 * The metric names of one PromQL expression. A small parser for the subset a dashboard
 * uses: it checks brackets balance and strings close (throws otherwise), drops string
 * literals, label matchers, ranges and the label lists of by/without/on/ignoring/group_*,
 * and keeps identifiers that are not functions (followed by '('), keywords or numbers.
 */
export function metricNames (expr: string): string[] {
  let rest = ''
  const stack: string[] = []
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' }
  let depthDrop = 0 // inside {…} or […]: dropped
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!
    if (c === '"' || c === "'" || c === '`') {
      const end = expr.indexOf(c, i + 1)
      if (end < 0) throw new Error(`unterminated string in ${expr}`)
      i = end
      continue
    }
    if (c === '(' || c === '[' || c === '{') {
      stack.push(c)
      if (c !== '(') depthDrop++
      if (depthDrop === 0 || (depthDrop === 1 && c !== '(')) rest += depthDrop === 0 ? c : ' '
      continue
    }
    if (c === ')' || c === ']' || c === '}') {
      if (stack.pop() !== pairs[c]) throw new Error(`unbalanced ${c} in ${expr}`)
      if (c !== ')') { depthDrop--; rest += ' '; continue }
      if (depthDrop === 0) rest += c
      continue
    }
    if (depthDrop === 0) rest += c
  }
  if (stack.length > 0) throw new Error(`unclosed ${stack.join('')} in ${expr}`)
  // Label lists: by (a, b), without (…), on (…), ignoring (…), group_left (…), group_right (…).
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g, ' ')
  const names: string[] = []
  for (const m of rest.matchAll(/[A-Za-z0-9_:.]+/g)) {
    const word = m[0]
    if (/^[0-9.]/.test(word)) continue // a number or a duration (5m)
    const after = rest.slice((m.index ?? 0) + word.length).trimStart()
    if (after.startsWith('(') || KEYWORDS.has(word.toLowerCase())) continue
    names.push(word)
  }
  return names
}

/** Every PromQL text of the dashboard: panel targets (rows' nested panels too) and query variables. */
function expressions (d: Record<string, unknown>): Array<{ where: string, expr: string }> {
  const out: Array<{ where: string, expr: string }> = []
  const walk = (panels: unknown): void => {
    for (const p of (panels as Array<Record<string, unknown>> | undefined) ?? []) {
      for (const target of (p.targets as Array<Record<string, unknown>> | undefined) ?? []) {
        out.push({ where: `panel "${String(p.title)}" ${String(target.refId)}`, expr: String(target.expr) })
      }
      walk(p.panels)
    }
  }
  walk(d.panels)
  for (const v of ((d.templating as { list?: Array<Record<string, unknown>> } | undefined)?.list ?? [])) {
    if (v.type !== 'query') continue
    const q = typeof v.query === 'string' ? v.query : String((v.query as { query?: unknown }).query)
    out.push({ where: `variable ${String(v.name)}`, expr: q })
  }
  return out
}

async function exported (): Promise<Map<string, string>> {
  const dns = newMetrics()
  const m = new FerryMetrics(async () => ({
    networks: { bridge: 1, overlay: 1 },
    endpoints: { created: 0, joined: 1 },
    publishedPorts: { tcp: 1, udp: 0, sctp: 0 },
    reconcile: { runs: 1, repairs: 0, failing: false },
    store: { writes: 1, lastWriteMs: 1, damagedFiles: 0 },
    dns,
    cluster: { connected: true, commands: 1, revision: 2, applied: 2, synced: true, overlays: [{ name: 'ov1', peers: 1 }], clusterKey: false, rejected: [] },
  }))
  const types = new Map<string, string>()
  for (const line of (await m.render()).split('\n')) {
    const hit = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (hit) types.set(hit[1]!, hit[2]!)
  }
  return types
}

t.test('the PromQL reader', async (t) => {
  t.same(metricNames('histogram_quantile(0.95, sum by (le, method) (rate(ferry_x_bucket{instance=~"$instance"}[$__rate_interval])))'), ['ferry_x_bucket'])
  t.same(metricNames('label_values(ferry_build_info, instance)'), ['ferry_build_info', 'instance'])
  t.same(metricNames('a / on (x) group_left (y) b offset 5m'), ['a', 'b'])
  t.throws(() => metricNames('sum(rate(x[5m])'))
  t.throws(() => metricNames('x{a="b}'))
})

t.test('the dashboard imports as is', async (t) => {
  t.type(dashboard.schemaVersion, 'number')
  t.equal(dashboard.id, null, 'no instance id: Grafana assigns one on import')
  t.match(dashboard.__inputs, [{ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }])
  const text = JSON.stringify(dashboard)
  for (const m of text.matchAll(/"uid":\s*"([^"]*)"/g)) {
    if (m[1] !== 'ferry-agents') t.equal(m[1], '${DS_PROMETHEUS}', 'every datasource is the input')
  }
})

t.test('every metric the dashboard queries is one the agent exports', async (t) => {
  const types = await exported()
  t.ok(types.has('ferry_dns_failures_total') && types.has('ferry_overlay_peers'), 'the render had DNS and cluster on')
  const used = new Set<string>()
  const exprs = expressions(dashboard)
  t.ok(exprs.length >= 15, `${exprs.length} expressions`)
  for (const { where, expr } of exprs) {
    const names = metricNames(expr)
    // label_values(metric, label): the second argument is a label name.
    const metrics = expr.startsWith('label_values(') ? names.slice(0, 1) : names
    t.ok(metrics.length > 0, `${where} queries a metric`)
    for (const name of metrics) {
      const hist = /^(.*)_(bucket|sum|count)$/.exec(name)
      const base = hist !== null && types.get(hist[1]!) === 'histogram' ? hist[1]! : name
      t.ok(types.has(base), `${where}: ${name} is exported`)
      if (hist !== null && types.get(hist[1]!) === 'histogram') t.equal(types.get(base), 'histogram')
      used.add(base)
    }
  }
  // The panels the issue asks for.
  for (const family of ['ferry_plugin_request_duration_seconds', 'ferry_plugin_errors_total', 'ferry_endpoints', 'ferry_published_ports',
    'ferry_dns_queries_total', 'ferry_dns_failures_total', 'ferry_reconcile_repairs_total', 'ferry_overlay_sync_lag_revisions', 'ferry_overlay_peers']) {
    t.ok(used.has(family), `the dashboard shows ${family}`)
  }
})
