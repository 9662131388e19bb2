/**
 * DNS server benchmark (not a test): queries per second and p50/p99 latency of
 * ferry's DNS server on loopback, with N queries in flight, for a name on the
 * client's network.
 *
 *   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/dns.ts [--seconds 5] [--inflight 1,100] [--name web7] [--helpers 1] [--udp auto|batch|dgram] [--listen IP (--serve)] [--dnsperf] [--compare IP:PORT,…] [--from IP]
 *
 * The server runs in a child process (its own event loop, as in the agent); this
 * process is the load generator: one UDP socket, a window of N outstanding
 * queries, each answer timed and replaced by the next query. With `--dnsperf`
 * (Debian's dnsperf, if installed) the same server is also measured by dnsperf,
 * the tool the issue's Docker and aardvark-dns figures come from; dnsperf prints
 * average latency, not percentiles. `--compare` measures other servers the same
 * way in the same run (e.g. aardvark-dns configured with the same 1000 names on
 * a loopback gateway address). `--from` sets the clients' source address (aardvark
 * answers quickly only to sources that are its containers: run the whole bench in
 * a scratch namespace where that address is on lo). Traffic stays on loopback.
 *
 * `--external`: names that are not ferry's, forwarded to an upstream on loopback
 * (test/fixtures/dns-responder.mjs in a process of its own). Three runs per
 * window: one external name asked again and again (answered from the cache),
 * the same with the cache off (`cache: false`: every query goes upstream, as
 * before the cache and as with Docker's resolver), and a fresh name per query
 * (always a miss: the forwarding path itself). The same cached name against Docker's
 * resolver and aardvark-dns, in one run: `npm run bench:dns` (bench/dns-compare.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import dnsPacket from 'dns-packet'
import { UDP_MODES, type UdpMode } from '../src/dns/server.js'

const SERVER_IP = '127.53.0.1'
const CONTAINERS = 1000

function arg (name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt
}

function udpMode (): UdpMode {
  const m = UDP_MODES.find((x) => x === arg('udp', 'auto'))
  if (m === undefined) throw new Error(`--udp ${arg('udp', '')}: one of ${UDP_MODES.join(', ')}`)
  return m
}

/** Child mode: a server with CONTAINERS names on one network, every client on it, no rate limit. */
async function serve (): Promise<void> {
  const { DnsServer } = await import('../src/dns/server.js')
  const { StaticRecordSource } = await import('../src/dns/records.js')
  const entries = Array.from({ length: CONTAINERS }, (_, i) => ({
    network: 'bench', name: `web${i}`, aliases: [`alias${i}`], ip: `10.99.${Math.floor(i / 250)}.${(i % 250) + 2}`,
  }))
  const nets = ['bench']
  const upstream = arg('upstream', '')
  const server = new DnsServer({
    records: new StaticRecordSource(entries), clientNetworks: () => nets, rateLimit: false,
    upstreams: { servers: upstream === '' ? [] : [upstream] }, udpHelpers: Number(arg('helpers', '0')), udp: udpMode(),
    cache: process.argv.includes('--no-cache') ? false : undefined,
  })
  const [addr] = await server.listen([{ ip: arg('listen', SERVER_IP), port: Number(arg('port', '0')) }])
  const until = Date.now() + 30_000
  while (server.helpersReady() < Number(arg('helpers', '0')) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
  process.stdout.write(JSON.stringify({ port: addr!.port }) + '\n')
  process.on('SIGTERM', () => {
    process.stderr.write(JSON.stringify({ metrics: server.metrics }) + '\n')
    void server.close().finally(() => process.exit(0)) // exits either way
  })
}

interface Result {
  inflight: number
  queries: number
  qps: number
  p50: number
  p99: number
  lost: number
}

/** Keep `inflight` queries outstanding for `seconds`; time every answer. */
function load (ip: string, port: number, name: string | ((n: number) => string), inflight: number, seconds: number): Promise<Result> {
  return new Promise((resolve) => {
    const s = createSocket('udp4')
    const sentAt = new Float64Array(65536)
    const encode = (n: string): Buffer => dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: n }] })
    const template = typeof name === 'string' ? encode(name) : undefined
    let serial = 0
    const lat: number[] = []
    let nextId = 0
    let done = 0
    let stopping = false
    let outstanding = 0
    let lost = 0
    let lastDone = -1
    const sendOne = (): void => {
      const id = nextId
      nextId = (nextId + 1) & 0xffff
      const msg = template !== undefined ? Buffer.from(template) : encode((name as (n: number) => string)(serial++))
      msg.writeUInt16BE(id, 0)
      sentAt[id] = performance.now()
      outstanding++
      s.send(msg, port, ip)
    }
    const start = performance.now()
    s.on('message', (m) => {
      const now = performance.now()
      outstanding--
      lat.push(now - sentAt[m.readUInt16BE(0)]!)
      done++
      if (!stopping) sendOne()
    })
    // A lost datagram would shrink the window: when nothing came back for 100 ms, count the window lost and refill it.
    const topUp = setInterval(() => {
      if (done === lastDone && outstanding > 0 && !stopping) {
        lost += outstanding
        outstanding = 0
        for (let i = 0; i < inflight; i++) sendOne()
      }
      lastDone = done
    }, 100)
    s.bind(0, arg('from', '127.0.0.1'), () => {
      for (let i = 0; i < inflight; i++) sendOne()
    })
    setTimeout(() => {
      stopping = true
      const elapsed = (performance.now() - start) / 1000
      clearInterval(topUp)
      setTimeout(() => {
        s.close()
        lat.sort((a, b) => a - b)
        const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN
        resolve({ inflight, queries: done, qps: Math.round(done / elapsed), p50: pct(0.5), p99: pct(0.99), lost })
      }, 200)
    }, seconds * 1000)
  })
}

function startChild (extra: string[] = []): Promise<{ child: ChildProcess, port: number }> {
  const self = fileURLToPath(import.meta.url)
  const child = spawn(process.execPath, [...process.execArgv, self, '--serve', '--helpers', arg('helpers', '0'), '--udp', arg('udp', 'auto'), ...extra], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += String(d)
      const line = out.split('\n')[0]
      if (out.includes('\n') && line !== undefined) resolve({ child, port: (JSON.parse(line) as { port: number }).port })
    })
    child.on('exit', (code) => reject(new Error(`server exited (${code})`)))
  })
}

function dnsperf (ip: string, port: number, name: string, inflight: number, seconds: number): string | undefined {
  if (spawnSync('which', ['dnsperf']).status !== 0) return undefined
  const dir = mkdtempSync(join(tmpdir(), 'ferry-dnsperf-'))
  try {
    const data = join(dir, 'queries')
    writeFileSync(data, `${name} A\n`)
    const r = spawnSync('dnsperf', ['-s', ip, '-p', String(port), '-d', data, '-c', '1', '-T', '1',
      '-q', String(inflight), '-l', String(seconds), '-t', '2', '-a', arg('from', '127.0.0.1')], { encoding: 'utf8' })
    const pick = (re: RegExp): string => re.exec(r.stdout)?.[1] ?? '?'
    return `dnsperf   in flight ${String(inflight).padStart(3)}: ${pick(/Queries per second:\s+([\d.]+)/)} q/s, ` +
      `avg ${pick(/Average Latency \(s\):\s+([\d.]+)/)} s, lost ${pick(/Queries lost:\s+(\d+)/)}`
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A free UDP port on `ip` (bound and released). */
async function freePort (ip: string): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, ip, resolve))
  const port = s.address().port
  await new Promise<void>((resolve) => s.close(resolve))
  return port
}

/** `--external`: cached, cache off, and always-missed external names (see the module comment). */
async function external (): Promise<void> {
  const seconds = Number(arg('seconds', '5'))
  const windows = arg('inflight', '1,100').split(',').map(Number)
  const upIp = '127.53.0.2'
  const upPort = await freePort(upIp)
  const responder = spawn(process.execPath, [fileURLToPath(new URL('../test/fixtures/dns-responder.mjs', import.meta.url)), upIp, String(upPort)], { stdio: 'ignore' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  const runs: Array<{ label: string, extra: string[], name: string | ((n: number) => string) }> = [
    { label: 'external name, cached', extra: [], name: 'cached.example.test' },
    { label: 'external name, cache off (every query upstream)', extra: ['--no-cache'], name: 'cached.example.test' },
    { label: 'a new external name per query (cache misses)', extra: [], name: (n) => `q${n}.example.test` },
  ]
  const rounds = Number(arg('rounds', '3'))
  const servers: Array<{ child: ChildProcess, port: number }> = []
  try {
    for (const r of runs) servers.push(await startChild(['--upstream', `${upIp}:${upPort}`, ...r.extra]))
    console.log(`upstream: dns-responder.mjs on ${upIp}:${upPort} (its own process); ${rounds} rounds of ${seconds} s per run, the runs interleaved; medians`)
    for (const n of windows) {
      const results: Result[][] = runs.map(() => [])
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < runs.length; i++) {
          const port = servers[i]!.port
          if (round === 0) await load(SERVER_IP, port, runs[i]!.name, n, 1)
          results[i]!.push(await load(SERVER_IP, port, runs[i]!.name, n, seconds))
        }
      }
      for (let i = 0; i < runs.length; i++) {
        const med = (f: (r: Result) => number): number => results[i]!.map(f).sort((a, b) => a - b)[Math.floor(rounds / 2)]!
        const all = results[i]!.map((r) => r.qps).join(', ')
        console.log(`in flight ${String(n).padStart(3)}, ${runs[i]!.label}: ${med((r) => r.qps)} q/s (runs: ${all}), p50 ${med((r) => r.p50).toFixed(3)} ms, p99 ${med((r) => r.p99).toFixed(3)} ms, lost ${results[i]!.reduce((a, r) => a + r.lost, 0)}`)
      }
    }
  } finally {
    for (const sv of servers) sv.child.kill('SIGTERM')
    responder.kill('SIGTERM')
  }
}

async function main (): Promise<void> {
  if (process.argv.includes('--external')) {
    await external()
    return
  }
  const seconds = Number(arg('seconds', '5'))
  const name = arg('name', 'web7')
  const windows = arg('inflight', '1,100').split(',').map(Number)
  const { child, port } = await startChild()
  try {
    const targets = [{ label: `ferry (${arg('helpers', '0')} UDP helpers)`, ip: SERVER_IP, port }]
    for (const spec of arg('compare', '').split(',').filter(Boolean)) {
      const [ip, p] = spec.split(':')
      targets.push({ label: spec, ip: ip!, port: Number(p) })
    }
    console.log(`${CONTAINERS} containers, query ${name} A, ${seconds} s per run`)
    for (const tg of targets) {
      console.log(`# ${tg.label} on ${tg.ip}:${tg.port}`)
      for (const n of windows) {
        await load(tg.ip, tg.port, name, n, 1) // warm-up (JIT, caches)
        const r = await load(tg.ip, tg.port, name, n, seconds)
        console.log(`node load in flight ${String(n).padStart(3)}: ${r.qps} q/s, p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms (${r.queries} answers, ${r.lost} lost)`)
      }
      if (process.argv.includes('--dnsperf')) {
        for (const n of windows) console.log(dnsperf(tg.ip, tg.port, name, n, seconds) ?? 'dnsperf is not installed (apt-get install dnsperf)')
      }
    }
  } finally {
    child.kill('SIGTERM')
  }
}

if (process.argv.includes('--serve')) await serve()
else await main()
