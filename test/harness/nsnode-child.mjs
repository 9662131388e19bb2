/**
 * Child side of test/harness/nsnode.ts. Run as
 *   ip netns exec <ns> node nsnode-child.mjs <module path> [factory export]
 * It imports the module (from dist/), builds the target (the awaited result of
 * the factory, or the module itself when no factory is named), prints
 * {"ready":true} and then answers line-delimited JSON-RPC on stdin/stdout:
 *   -> {"id":1,"method":"createBridge","args":["br0",{"mtu":1400}]}
 *   <- {"id":1,"result":…,"ms":0.42}   or   {"id":1,"error":{"name","message","code",…}}
 * `ms` is the time spent inside the method; `cost` what else happened meanwhile in
 * this process (for benchmarks): CPU ms, involuntary context switches (the process
 * preempted) and GC pauses (ms, from the gc performance entries).
 * A null argument is passed as
 * undefined (JSON turns undefined array items into null). When stdin closes, the target's
 * close() is called (if any) and the process exits.
 */
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { performance, PerformanceObserver } from 'node:perf_hooks'

/** GC pauses of the last minute or so: [start, duration] in performance.now() ms. */
const gcs = []
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([e.startTime, e.duration])
  if (gcs.length > 1000) gcs.splice(0, gcs.length - 1000)
}).observe({ entryTypes: ['gc'] })

/** CPU ms, involuntary context switches and GC ms between two points (GC entries arrive a tick late). */
async function cost (start, end, ru0) {
  await new Promise((resolve) => setImmediate(resolve))
  const ru = process.resourceUsage()
  const gcMs = gcs.filter(([s, d]) => s + d >= start && s <= end).reduce((sum, [, d]) => sum + d, 0)
  return { cpuMs: (ru.userCPUTime + ru.systemCPUTime - ru0.userCPUTime - ru0.systemCPUTime) / 1000, ivcsw: ru.involuntaryContextSwitches - ru0.involuntaryContextSwitches, gcMs }
}

function send (msg) {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

function describeError (err) {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) }
  const out = { name: err.name, message: err.message, stack: err.stack }
  for (const key of ['code', 'category', 'errno']) {
    if (err[key] !== undefined) out[key] = err[key]
  }
  if (err.cause instanceof Error) out.cause = describeError(err.cause)
  return out
}

const [modulePath, factory] = process.argv.slice(2)
if (modulePath === undefined) {
  process.stderr.write('usage: nsnode-child.mjs <module> [factory]\n')
  process.exit(2)
}
const mod = await import(pathToFileURL(modulePath).href)
const target = factory ? await mod[factory]() : mod

async function handle (line) {
  let req
  try { req = JSON.parse(line) } catch { return send({ id: null, error: { name: 'Error', message: `bad request line: ${line}` } }) }
  const fn = target[req.method]
  if (typeof fn !== 'function') return send({ id: req.id, error: { name: 'Error', message: `no method ${req.method}` } })
  const ru0 = process.resourceUsage()
  const start = performance.now()
  try {
    // JSON has no undefined: a null argument stands for an absent one
    const args = (req.args ?? []).map((a) => (a === null ? undefined : a))
    const result = await fn.apply(target, args)
    const end = performance.now()
    send({ id: req.id, result, ms: end - start, cost: await cost(start, end, ru0) })
  } catch (err) {
    send({ id: req.id, error: describeError(err), ms: performance.now() - start })
  }
}

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => { if (line.trim() !== '') void handle(line) })
rl.on('close', () => {
  if (typeof target.close === 'function') { try { target.close() } catch { /* closing anyway */ } }
  process.exit(0)
})
send({ ready: true })
