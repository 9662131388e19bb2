/**
 * bench:firewall's anchor: Docker's built-in bridge driver (Debian's 20.10, iptables, `--userland-proxy=false`),
 * publishing one port and a 200-port range while 0, 1,000 and 10,000 ports are already published.
 *
 * "Already published" is made the equivalent way, not with 1,000 containers per size (vfs storage, about 1 s
 * each here): a real `docker run -p 9999:80` is made once and the rules the engine wrote for it are read back
 * with iptables-save (in 20.10, per port: a DNAT in nat `DOCKER`, a hairpin MASQUERADE in nat `POSTROUTING`, an
 * ACCEPT in filter `DOCKER`); the same lines, with made-up container addresses on the network's subnet and
 * other ports (ten per made-up container), go into the engine's chains with one `iptables-restore --noflush`
 * per size. What the engine does for a new container then meets the same chains as with real containers
 * (its port allocator does not know the made-up ports; they do not collide with the measured ones).
 *
 * What is timed: the engine exposes no time of its driver alone. From the engine's own events (`docker
 * events`, nanosecond stamps): publishing = container `create` → network `connect` (the start request,
 * the mount, the sandbox, the veth, the endpoint's join, and in it the port mapping: one iptables
 * process per rule and per check), removal = container `die` (or `kill`, if `die` came after) → network `disconnect` (the sandbox's
 * teardown, the veth, and the ports' rules deleted one iptables process each). The same interval of a
 * container without `-p`, taken in the same rounds (interleaved), is subtracted: p50 = p50(with) −
 * p50(without), p99 = p99(with) − p50(without). The docker CLI's wall time of `docker run -d` and `docker
 * rm -f` is printed beside it, not subtracted.
 */
import { startDockerd, type Dockerd } from '../test/harness/dockerd.js'
import { ensureBusyboxImage } from '../test/harness/image.js'
import { netns, nsExec } from '../test/harness/netns.js'
import { load, median, quantile, type Teardowns } from './lib.js'

const SUBNET = '10.88.0.0/16'
const PROBE_PORT = 9999

interface DockerEvent { Type: string, Action: string, Actor: { ID: string, Attributes?: Record<string, string> }, timeNano: number }

/** Per variant (no -p, one port, 200-port range): events' intervals and CLI wall times, ms. */
export interface DockerSamples { add: number[], rm: number[], cliRun: number[], cliRm: number[] }
export interface DockerCell { size: number, plain: DockerSamples, one: DockerSamples, range: DockerSamples, rangeRules: number }

const empty = (): DockerSamples => ({ add: [], rm: [], cliRun: [], cliRm: [] })

async function eventsOf (d: Dockerd, sinceMs: number, cid: string): Promise<DockerEvent[]> {
  const out = await d.dockerOk(['events', '--since', ((sinceMs - 1000) / 1000).toFixed(3), '--until', ((Date.now() + 50) / 1000).toFixed(3), '--format', '{{json .}}'])
  return out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as DockerEvent)
    .filter((e) => e.Actor.ID === cid || e.Actor.Attributes?.container === cid)
}

function at (evs: DockerEvent[], type: string, action: string): number {
  const e = evs.find((x) => x.Type === type && x.Action === action)
  if (e === undefined) throw new Error(`no ${type} ${action} event among ${evs.map((x) => `${x.Type} ${x.Action}`).join(', ')}`)
  return e.timeNano / 1e6
}

let printedOrder = false

/** One container run and removed with `ports` (`[]`: none); its samples pushed into `s`. */
async function once (d: Dockerd, name: string, ports: string[], s: DockerSamples): Promise<void> {
  const t0 = Date.now()
  const cid = (await d.dockerOk(['run', '-d', '--net', 'bnet', '--name', name, ...ports, 'bb', 'sleep', '900'], { timeoutMs: 600_000 })).trim()
  const t1 = Date.now()
  await d.dockerOk(['rm', '-f', name], { timeoutMs: 600_000 })
  const t2 = Date.now()
  const evs = await eventsOf(d, t0, cid)
  if (!printedOrder) {
    printedOrder = true
    const first = evs[0]!.timeNano
    console.log(`  docker events of one container: ${evs.map((e) => `${e.Type} ${e.Action} +${((e.timeNano - first) / 1e6).toFixed(1)}`).join(', ')}`)
  }
  s.add.push(at(evs, 'network', 'connect') - at(evs, 'container', 'create'))
  const gone = at(evs, 'network', 'disconnect')
  s.rm.push(gone - Math.max(...[at(evs, 'container', 'kill'), at(evs, 'container', 'die')].filter((x) => x <= gone)))
  s.cliRun.push(t1 - t0)
  s.cliRm.push(t2 - t1)
}

/** iptables-save of the engine's namespace, `-A` lines of nat and filter, each prefixed with its table. */
function ruleLines (ns: string): string[] {
  const out: string[] = []
  for (const table of ['nat', 'filter']) {
    for (const l of nsExec(ns, ['iptables-save', '-t', table]).split('\n')) if (l.startsWith('-A ')) out.push(`${table} ${l}`)
  }
  return out
}

/** The rules the engine writes for one published port: read back from a real `-p PROBE_PORT:80`. */
async function templates (d: Dockerd): Promise<{ lines: string[], ip: string }> {
  const before = new Set(ruleLines(d.ns))
  await d.dockerOk(['run', '-d', '--net', 'bnet', '--name', 'probe', '-p', `${PROBE_PORT}:80`, 'bb', 'sleep', '900'])
  const ip = (await d.dockerOk(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'probe'])).trim()
  const lines = ruleLines(d.ns).filter((l) => !before.has(l))
  await d.dockerOk(['rm', '-f', 'probe'])
  const left = ruleLines(d.ns).filter((l) => !before.has(l))
  if (left.length > 0) throw new Error(`the engine left rules of a removed container: ${left.join('; ')}`)
  if (!lines.some((l) => l.includes('DNAT'))) throw new Error(`no DNAT rule for -p ${PROBE_PORT}:80: ${lines.join('; ')}`)
  return { lines, ip }
}

/** The template lines for container `ip` publishing host port `hostPort` to `port`. */
function instantiate (lines: string[], probeIp: string, ip: string, hostPort: number, port: number): string[] {
  const esc = probeIp.replace(/\./g, '\\.')
  return lines.map((l) => l.replace(new RegExp(`${esc}(?=[/:\\s]|$)`, 'g'), ip)
    .replace(`--dport ${PROBE_PORT}`, `--dport ${hostPort}`).replace(/--dport 80(?=\s|$)/, `--dport ${port}`).replace(/:80(?=\s|$)/, `:${port}`))
}

/** Add the rules of made-up containers [from, to) (ten ports each, host ports from 10000 up, every other), one iptables-restore. */
function fill (ns: string, tpl: { lines: string[], ip: string }, from: number, to: number): void {
  const byTable: Record<string, string[]> = { nat: [], filter: [] }
  for (let i = from; i < to; i++) {
    const ip = `10.88.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`
    for (let j = 0; j < 10; j++) {
      for (const l of instantiate(tpl.lines, tpl.ip, ip, 10000 + 2 * (10 * i + j), 80 + j)) {
        const sp = l.indexOf(' ')
        byTable[l.slice(0, sp)]!.push(l.slice(sp + 1))
      }
    }
  }
  const text = Object.entries(byTable).map(([table, ls]) => `*${table}\n${ls.join('\n')}${ls.length > 0 ? '\n' : ''}COMMIT\n`).join('')
  nsExec(ns, ['iptables-restore', '--noflush'], { input: text, timeoutMs: 600_000 })
}

/**
 * The anchor's cells: for each size, the made-up rules brought to `size` ports, then `samples` rounds of
 * (no -p, one port) and `rangeSamples(size)` of them also the 200-port range, interleaved.
 */
export async function benchDocker (t: Teardowns, sizes: number[], samples: number, rangeSamples: (size: number) => number): Promise<DockerCell[]> {
  const scope = t.scope()
  const host = netns(scope, 'fyfk')
  const d = await startDockerd(scope, { ns: host, userlandProxy: false })
  await ensureBusyboxImage(d)
  await d.dockerOk(['network', 'create', '-d', 'bridge', '--subnet', SUBNET, 'bnet'])
  const tpl = await templates(d)
  console.log(`  Docker ${(await d.dockerOk(['version', '-f', '{{.Server.Version}}'])).trim()}, rules per published port (read back after -p ${PROBE_PORT}:80):\n    ${tpl.lines.join('\n    ')}`)
  const one = ['-p', '9000:80']
  const range = ['-p', '40000-40199:40000-40199']
  for (const [k, v] of [[], one, range].entries()) await once(d, `warm${k}`, v, empty()) // warm-up
  const cells: DockerCell[] = []
  let have = 0
  let n = 0
  for (const size of sizes) {
    const t0 = Date.now()
    fill(host, tpl, have / 10, size / 10)
    have = size
    const dnat = nsExec(host, ['iptables-save', '-t', 'nat']).split('\n').filter((l) => l.includes('-j DNAT')).length
    if (dnat !== size) throw new Error(`${dnat} DNAT rules in the engine's namespace, expected ${size}`)
    const cell: DockerCell = { size, plain: empty(), one: empty(), range: empty(), rangeRules: 0 }
    for (let i = 0; i < samples; i++) {
      await once(d, `p${n++}`, [], cell.plain)
      await once(d, `p${n++}`, one, cell.one)
      if (i < rangeSamples(size)) await once(d, `p${n++}`, range, cell.range)
    }
    cell.rangeRules = 200 * tpl.lines.length
    cells.push(cell)
    console.log(`  docker with ${size} ports published: done in ${((Date.now() - t0) / 1000).toFixed(0)} s (${load()})`)
  }
  await scope.run()
  return cells
}

/** p50 and p99 of `with` net of the median of `without` (ms). */
export function net (xs: number[], without: number[]): { p50: number, p99: number } {
  const base = median(without)
  return { p50: quantile(xs, 0.5) - base, p99: quantile(xs, 0.99) - base }
}
