/**
 * What `ferry doctor` looks at, gathered as plain facts (verdicts are in
 * checks.ts). Read-only, with one exception: the kernel feature probe creates a
 * scratch network namespace, creates one throwaway device of each kind inside
 * it, and deletes the namespace — it never touches the namespace doctor runs in.
 */
import { promises as fs } from 'node:fs'
import { exchange } from '../util/exchange.js'
import { randomBytes } from 'node:crypto'
import { execFile } from '../kernel/exec.js'
import { listProcesses } from '../kernel/process.js'
import { readSysctl } from '../kernel/sysctl.js'
import { EngineClient, driverNamesOf, ownDrivers } from '../docker/client.js'
import { apiCall } from '../api/client.js'
import type { AgentFacts, EngineDnsFacts, EngineFacts, FerryDnsFacts, IptablesFacts, ProbedLink, SocketFacts } from './checks.js'

const TIMEOUT_MS = 5000
/** Link creation waits for the kernel's rtnl lock, which a busy host (namespaces being deleted) holds for seconds. */
const LINK_TIMEOUT_MS = 20_000

/** `ip link add` arguments of one throwaway device per kind (names are fixed: the namespace is new). */
export const LINK_PROBES: Record<ProbedLink, string[]> = {
  bridge: ['fydoc-br', 'type', 'bridge'],
  veth: ['fydoc-va', 'type', 'veth', 'peer', 'name', 'fydoc-vb'],
  vxlan: ['fydoc-vx', 'type', 'vxlan', 'id', '4242', 'dstport', '4789'],
}

/** Try to create each kind of device in a scratch namespace; the error text per kind, undefined = works. */
export async function probeLinkKinds (): Promise<Record<ProbedLink, string | undefined>> {
  const ns = `fydoc-${process.pid}-${randomBytes(2).toString('hex')}`
  const out = { bridge: undefined, veth: undefined, vxlan: undefined } as Record<ProbedLink, string | undefined>
  const made = await execFile(['ip', 'netns', 'add', ns], { allowFailure: true, timeoutMs: TIMEOUT_MS })
  if (made.code !== 0) {
    const why = `cannot create a scratch network namespace: ${made.stderr.trim()}`
    return { bridge: why, veth: why, vxlan: why }
  }
  try {
    for (const kind of Object.keys(LINK_PROBES) as ProbedLink[]) {
      const r = await execFile(['ip', '-n', ns, 'link', 'add', ...LINK_PROBES[kind]], { allowFailure: true, timeoutMs: LINK_TIMEOUT_MS })
      out[kind] = r.code === 0 ? undefined : (r.stderr.trim() || `ip exited ${r.code}`)
    }
  } finally {
    await execFile(['ip', 'netns', 'del', ns], { allowFailure: true, timeoutMs: TIMEOUT_MS })
  }
  return out
}

/**
 * Whether `tc` can do what a WireGuard key rotation needs (src/wireguard/device.ts mirror): a clsact qdisc
 * and a u32 filter whose action mirrors every packet to another device, tried on a veth pair in a scratch
 * namespace. Undefined = works; else what failed.
 */
export async function probeTcMirror (): Promise<string | undefined> {
  const ns = `fydoc-tc-${process.pid}-${randomBytes(2).toString('hex')}`
  const made = await execFile(['ip', 'netns', 'add', ns], { allowFailure: true, timeoutMs: TIMEOUT_MS }).catch((err: Error) => ({ code: 1, stderr: err.message, stdout: '' }))
  if (made.code !== 0) return `cannot create a scratch network namespace: ${made.stderr.trim()}`
  try {
    const steps: string[][] = [
      ['ip', '-n', ns, 'link', 'add', 'fydoc-ta', 'type', 'veth', 'peer', 'name', 'fydoc-tb'],
      ['tc', '-n', ns, 'qdisc', 'add', 'dev', 'fydoc-ta', 'clsact'],
      ['tc', '-n', ns, 'filter', 'add', 'dev', 'fydoc-ta', 'egress', 'pref', '1', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0',
        'action', 'mirred', 'egress', 'mirror', 'dev', 'fydoc-tb'],
    ]
    for (const argv of steps) {
      const r = await execFile(argv, { allowFailure: true, timeoutMs: LINK_TIMEOUT_MS }).catch((err: NodeJS.ErrnoException) => ({ code: -1, stderr: err.code === 'ENOENT' ? 'not installed' : err.message, stdout: '' }))
      if (r.code !== 0) return `${argv.slice(0, 5).join(' ')} …: ${(r.stderr.trim() || `exit ${r.code}`).split('\n')[0] ?? ''}`
    }
    return undefined
  } finally {
    await execFile(['ip', 'netns', 'del', ns], { allowFailure: true, timeoutMs: TIMEOUT_MS }).catch(() => undefined)
  }
}

export async function sysctlOrUndefined (key: string): Promise<string | undefined> {
  return readSysctl(key).catch(() => undefined)
}

/** Rule lines (`-A …`) of an iptables-save text. */
export function countRules (save: string): number {
  return save.split('\n').filter((l) => l.startsWith('-A ')).length
}

/** Lines of ferry in an iptables-save text: its chains, the jumps into them and its commented rules. */
export function ferryLines (save: string): number {
  return save.split('\n').filter((l) => !l.startsWith('#') && /ferry/i.test(l)).length
}

/** Whether the engine's chains are in a filter table dump (it runs with --iptables=true). */
export function engineChains (save: string): boolean {
  return /^:DOCKER(-USER)? /m.test(save)
}

async function run (argv: string[]): Promise<string | undefined> {
  try {
    const r = await execFile(argv, { allowFailure: true, timeoutMs: TIMEOUT_MS })
    return r.code === 0 ? r.stdout : undefined
  } catch {
    return undefined // not installed
  }
}

export async function probeIptables (): Promise<IptablesFacts & { filterSave?: string }> {
  const [version, nft, legacy, filterSave] = await Promise.all([
    run(['iptables', '--version']),
    run(['iptables-nft-save']),
    run(['iptables-legacy-save']),
    run(['iptables-save', '-t', 'filter']),
  ])
  const facts: IptablesFacts & { filterSave?: string } = { rules: {} }
  if (version !== undefined) facts.version = version
  if (nft !== undefined) facts.rules.nft = countRules(nft)
  if (legacy !== undefined) facts.rules.legacy = countRules(legacy)
  if (nft !== undefined || legacy !== undefined) facts.ferryLines = ferryLines(nft ?? '') + ferryLines(legacy ?? '')
  if (filterSave !== undefined) facts.filterSave = filterSave
  const policy = filterSave === undefined ? undefined : /^:FORWARD (\w+)/m.exec(filterSave)?.[1]
  if (policy !== undefined) facts.forwardPolicy = policy
  return facts
}

interface EngineNetwork { Name: string, Driver: string, IPAM?: { Driver?: string } }

export async function probeEngine (dockerHost: string, pluginName: string, filterSave: string | undefined): Promise<EngineFacts> {
  const facts: EngineFacts = { dockerHost }
  let engine: EngineClient
  try {
    engine = new EngineClient(dockerHost, TIMEOUT_MS)
  } catch (err) {
    facts.error = (err as Error).message
    return facts
  }
  try {
    const v = await engine.get<{ Version?: string, ApiVersion?: string }>('/version')
    facts.version = v.Version ?? 'unknown'
    if (v.ApiVersion !== undefined) facts.apiVersion = v.ApiVersion
    const [info, nets, plugins] = await Promise.all([
      engine.get<{ LiveRestoreEnabled?: boolean }>('/info'),
      engine.get<EngineNetwork[]>('/networks'),
      engine.get<unknown>('/plugins').catch(() => []),
    ])
    const drivers = driverNamesOf(ownDrivers(pluginName), plugins)
    if (typeof info.LiveRestoreEnabled === 'boolean') facts.liveRestore = info.LiveRestoreEnabled
    facts.networks = nets.filter((n) => drivers.has(n.Driver))
      .map((n) => ({ name: n.Name, driver: n.Driver, ipamDriver: n.IPAM?.Driver ?? 'default' }))
    if (filterSave !== undefined) facts.managesIptables = engineChains(filterSave)
  } catch (err) {
    facts.error = (err as Error).message
  }
  return facts
}

export async function probeSocket (path: string): Promise<SocketFacts> {
  try {
    const st = await fs.stat(path)
    return { path, isSocket: st.isSocket(), mode: st.mode, uid: st.uid }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return { path, error: code === 'ENOENT' ? 'does not exist' : (err as Error).message }
  }
}

/** POST /NetworkDriver.GetCapabilities exactly as the engine sends it; undefined = a valid answer. */
export async function probePluginAnswer (socketPath: string): Promise<string | undefined> {
  let answer: { status: number, text: string }
  try {
    answer = await exchange({
      socketPath, method: 'POST', path: '/NetworkDriver.GetCapabilities', timeoutMs: TIMEOUT_MS, maxBytes: 64 * 1024,
      headers: { Host: '', 'User-Agent': 'Go-http-client/1.1', 'Content-Length': '0', Accept: 'application/vnd.docker.plugins.v1.2+json' },
    })
  } catch (err) {
    return (err as Error).message
  }
  let scope: unknown
  try { scope = (JSON.parse(answer.text) as { Scope?: unknown }).Scope } catch { /* not JSON: said below */ }
  return answer.status === 200 && typeof scope === 'string' ? undefined : `answered ${answer.status}: ${answer.text.slice(0, 200)}`
}

export async function probeAgent (apiSocket: string): Promise<AgentFacts> {
  try {
    return { apiSocket, status: await apiCall<NonNullable<AgentFacts['status']>>(apiSocket, 'GET', '/v1/status', undefined, TIMEOUT_MS) }
  } catch (err) {
    return { apiSocket, error: (err as Error).message }
  }
}

/** `--dns X`, `--dns=X` and `--config-file`/`--config-file=` of a dockerd command line (pure). */
export function parseDockerdArgs (argv: readonly string[]): { dns: string[], configFile?: string, hosts: string[] } {
  const out: { dns: string[], configFile?: string, hosts: string[] } = { dns: [], hosts: [] }
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!
    const eq = a.indexOf('=')
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined]
    if (flag !== '--dns' && flag !== '--config-file' && flag !== '-H' && flag !== '--host') continue
    const value = inline ?? argv[++i]
    if (value === undefined) break
    if (flag === '--dns') out.dns.push(value)
    else if (flag === '--config-file') out.configFile = value
    else out.hosts.push(value)
  }
  return out
}

/** `"dns"` of a daemon.json text (pure); throws a sentence when the text is not what dockerd reads. */
export function daemonJsonDns (text: string, file: string): string[] {
  let cfg: unknown
  try { cfg = JSON.parse(text) } catch (err) { throw new Error(`${file} is not JSON: ${(err as Error).message}`) }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new Error(`${file} is not a JSON object`)
  const dns = (cfg as { dns?: unknown }).dns
  if (dns === undefined) return []
  if (!Array.isArray(dns) || !dns.every((d) => typeof d === 'string')) throw new Error(`${file}: "dns" is not a list of addresses`)
  return dns
}

const DEFAULT_ENGINE_HOST = 'unix:///var/run/docker.sock'
const DEFAULT_DAEMON_JSON = '/etc/docker/daemon.json'

/** The same engine address whichever way it is spelt (unix:///run/… and unix:///var/run/… are one file on most hosts). */
function sameHost (a: string, b: string): boolean {
  const norm = (h: string): string => h.replace(/^unix:\/\//, '').replace(/^\/var\/run\//, '/run/')
  return norm(a) === norm(b)
}

/**
 * The engine's `--dns`: dockerd's process serving `dockerHost` (found among the host's
 * processes, src/kernel/process.ts listProcesses, by its -H, or the one with none for the
 * default socket), its command line, and its daemon.json.
 * The engine's API does not say (`docker info` has no DNS field).
 */
export async function probeEngineDns (dockerHost: string, procDir?: string): Promise<EngineDnsFacts> {
  const facts: EngineDnsFacts = { servers: [], errors: [] }
  let processes: Array<{ pid: number, argv: string[] }>
  try { processes = await listProcesses(procDir) } catch (err) {
    facts.errors.push(`cannot list ${procDir ?? '/proc'}: ${(err as Error).message}`)
    return facts
  }
  let found: { pid: number, args: ReturnType<typeof parseDockerdArgs> } | undefined
  for (const { pid, argv } of processes) {
    if (argv[0] === undefined || !/(^|\/)dockerd$/.test(argv[0])) continue
    const args = parseDockerdArgs(argv)
    const serves = args.hosts.length === 0 ? sameHost(dockerHost, DEFAULT_ENGINE_HOST) : args.hosts.some((h) => sameHost(h, dockerHost))
    if (serves) {
      found = { pid, args }
      break
    }
  }
  if (found === undefined) {
    facts.errors.push(`no dockerd process serving ${dockerHost} was found`)
    return facts
  }
  facts.pid = found.pid
  facts.servers.push(...found.args.dns)
  const file = found.args.configFile ?? DEFAULT_DAEMON_JSON
  facts.configFile = file
  try {
    facts.servers.push(...daemonJsonDns(await fs.readFile(file, 'utf8'), file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') facts.errors.push((err as Error).message)
  }
  return facts
}

export async function probeFerryDns (apiSocket: string): Promise<FerryDnsFacts> {
  const facts: FerryDnsFacts = { addresses: [], overlays: 0 }
  try {
    const nets = await apiCall<Array<{ id: string, gateway?: string, gateway6?: string, overlay?: unknown }>>(apiSocket, 'GET', '/v1/networks', undefined, TIMEOUT_MS)
    const local = nets.filter((n) => n.overlay === undefined)
    const sorted = [...nets.filter((n) => n.overlay !== undefined), ...local]
    facts.overlays = nets.length - local.length
    facts.addresses = [...new Set(sorted.flatMap((n) => [n.gateway, n.gateway6]).filter((a): a is string => typeof a === 'string' && a !== ''))]
    // Whether the server runs: the records of one network (a local one: fewer), refused with UNSUPPORTED when it is off.
    const one = local[0] ?? sorted[0]
    if (one === undefined) return facts
    await apiCall(apiSocket, 'GET', `/v1/dns/records?network=${encodeURIComponent(one.id)}`, undefined, TIMEOUT_MS)
    facts.enabled = true
  } catch (err) {
    if ((err as { code?: string }).code === 'UNSUPPORTED') facts.enabled = false
  }
  return facts
}
