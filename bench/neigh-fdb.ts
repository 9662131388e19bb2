/**
 * The kernel part of a fresh agent's full programming, alone: N peers' FDB and neighbour entries
 * (as a full plan orders them: every FDB entry, the flood entries, every neighbour) sent through
 * the LinkDriver's batch (`applyNeighFdb`, src/kernel/netlink.ts) into a VXLAN device of a fresh
 * namespace. Build first (`npm run build`), run as root:
 *
 *   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/neigh-fdb.ts [--peers 100000] [--rounds 3] [--monitor]
 *
 * `--monitor` runs `ip monitor` and `bridge monitor` in the namespace meanwhile, as bench:overlay
 * does. Prints, per round, the wall time of the batch and the process's user and system CPU in it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import type { LinkDriver, NeighFdbOp } from '../src/kernel/types.js'

const { values: opts } = parseArgs({
  options: {
    peers: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
    vteps: { type: 'string', default: '1000' },
    monitor: { type: 'boolean', default: false },
    parallel: { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
    child: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})
if (opts.help) {
  console.log('bench/neigh-fdb.ts [--peers N] [--vteps N] [--rounds N] [--monitor]: N peers programmed into a fresh namespace\'s VXLAN device')
  process.exit(0)
}
const peers = Number(opts.peers)
const vteps = Number(opts.vteps)
const rounds = Number(opts.rounds)
if (!Number.isInteger(peers) || peers < 1 || peers > 1_000_000 || !Number.isInteger(vteps) || vteps < 1 || vteps > 60_000 || !Number.isInteger(rounds) || rounds < 1) {
  console.error('--peers 1..1000000, --vteps 1..60000, --rounds ≥ 1')
  process.exit(2)
}

const DEV = 'fy-vxb'

function run (argv: string[], allowFailure = false): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' })
  if (r.status !== 0 && !allowFailure) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
}

/** The operations of a full plan of `n` peers on `v` VTEPs, in the planner's order. */
function fullPlanOps (n: number, v: number): NeighFdbOp[] {
  const mac = (i: number): string => `02:42:${((i >> 24) & 255).toString(16).padStart(2, '0')}:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`
  const vtep = (h: number): string => `192.168.${100 + Math.floor(h / 250)}.${(h % 250) + 1}`
  const ip = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
  const ops: NeighFdbOp[] = []
  for (let i = 0; i < n; i++) ops.push({ op: 'addFdb', entry: { dev: DEV, mac: mac(i + 2), dst: vtep(i % v) } })
  for (let h = 0; h < v; h++) ops.push({ op: 'addFdb', entry: { dev: DEV, mac: '00:00:00:00:00:00', dst: vtep(h) } })
  for (let i = 0; i < n; i++) ops.push({ op: 'addNeigh', entry: { dev: DEV, ip: ip(i + 2), mac: mac(i + 2) } })
  return ops
}

/** Only the FDB or only the neighbour operations (--part), for two processes at once (--parallel). */
function partOf (ops: NeighFdbOp[]): NeighFdbOp[] {
  if (opts.part === 'fdb') return ops.filter((o) => o.op === 'addFdb')
  if (opts.part === 'neigh') return ops.filter((o) => o.op === 'addNeigh')
  return ops
}

async function child (): Promise<void> {
  // The built driver (dist/), as the agent runs it.
  const built: string = '../dist/kernel/netlink.js'
  const { openLinkDriver } = await import(built) as { openLinkDriver: () => Promise<LinkDriver> }
  const links = await openLinkDriver()
  const ops = partOf(fullPlanOps(peers, vteps))
  for (let r = 0; r < rounds; r++) {
    if (opts.part === 'all') await fresh(links)
    else await waitForFresh(r)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const failures = await links.applyNeighFdb!(ops)
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    if (failures.length > 0) throw new Error(`${failures.length} refused, first: ${failures[0]!.message}`)
    if (opts.part !== 'all') (await import('node:fs')).writeFileSync(`${process.env.FERRY_BENCH_SYNC!}.${r}.${opts.part}`, String(Date.now()))
    console.log(JSON.stringify({ part: opts.part, round: r + 1, ops: ops.length, ms: Math.round(ms), userMs: Math.round(cpu.user / 1000), systemMs: Math.round(cpu.system / 1000) }))
  }
  links.close()
}

async function fresh (links: LinkDriver): Promise<void> {
  await links.deleteLink(DEV)
  await links.createVxlan(DEV, { vni: 4096, port: 4789, local: '192.168.99.1', learning: false, proxy: true, mtu: 1450 })
  await links.setUp(DEV, true)
}

/** --parallel: each part waits for the parent's fresh device of round r (a file per round). */
async function waitForFresh (r: number): Promise<void> {
  const { existsSync } = await import('node:fs')
  while (!existsSync(`${process.env.FERRY_BENCH_SYNC!}.${r}`)) await new Promise((resolve) => setTimeout(resolve, 5))
}

async function parallel (ns: string, self: string): Promise<void> {
  const { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(`${tmpdir()}/fybench-`)
  const sync = `${dir}/round`
  try {
    const kids = ['fdb', 'neigh'].map((part) => spawn('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, self, '--child', '--part', part, '--peers', String(peers), '--vteps', String(vteps), '--rounds', String(rounds)],
      { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, FERRY_BENCH_SYNC: sync } }))
    const done = kids.map((k) => new Promise<void>((resolve) => k.on('exit', () => resolve())))
    await new Promise((resolve) => setTimeout(resolve, 1500)) // both children loaded
    for (let r = 0; r < rounds; r++) {
      run(['ip', '-n', ns, 'link', 'del', DEV], true)
      run(['ip', '-n', ns, 'link', 'add', DEV, 'type', 'vxlan', 'id', '4096', 'dstport', '4789', 'local', '192.168.99.1', 'nolearning', 'proxy'])
      run(['ip', '-n', ns, 'link', 'set', DEV, 'up'])
      const start = Date.now()
      writeFileSync(`${sync}.${r}`, '')
      // Both parts of the round done: each writes the time it ended.
      const ends: number[] = []
      for (const part of ['fdb', 'neigh']) {
        while (!existsSync(`${sync}.${r}.${part}`)) await new Promise((resolve) => setTimeout(resolve, 5))
        ends.push(Number(readFileSync(`${sync}.${r}.${part}`, 'utf8')))
      }
      const wallMs = Math.max(...ends) - start
      console.log(JSON.stringify({ parallel: true, round: r + 1, wallMs }))
    }
    await Promise.all(done)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function parent (): Promise<void> {
  const ns = `fybench${process.pid % 100000}`
  run(['ip', 'netns', 'add', ns])
  const monitors: ChildProcess[] = []
  try {
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    if (opts.monitor) {
      for (const argv of [['ip', '-n', ns, 'monitor'], ['bridge', '-n', ns, 'monitor']]) monitors.push(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] }))
    }
    const self = fileURLToPath(import.meta.url)
    if (opts.parallel) {
      await parallel(ns, self)
      return
    }
    const args = ['netns', 'exec', ns, process.execPath, ...process.execArgv, self, '--child', '--peers', String(peers), '--vteps', String(vteps), '--rounds', String(rounds)]
    const r = spawnSync('ip', args, { stdio: 'inherit' })
    console.log(`load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}${opts.monitor ? ' (ip/bridge monitor listening)' : ''}`)
    if (r.status !== 0) process.exitCode = 1
  } finally {
    for (const m of monitors) m.kill()
    spawnSync('ip', ['netns', 'del', ns])
  }
}

await (opts.child ? child() : parent())
