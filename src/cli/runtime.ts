/**
 * The CLI's runtime commands, registered on the program by src/cli/main.ts:
 *
 *   ferry attach --netns PATH|--pid PID --name NAME [--net NETWORK] [-p …] [--expose …] [--ip IP]
 *                [--network-alias A] [--link NAME:ALIAS] [--dns IP] [--dns-search D] [--ifname eth0]
 *   ferry detach NAME
 *   ferry run [--name N] [--net bridge|host|none|container:NAME|NETWORK] [-p …] [-P] [--expose …]
 *             [--link …] [--network-alias …] [--ip …] [--ip6 …] [--dns …] [--dns-search …] [-h HOSTNAME]
 *             [-e KEY[=VALUE] …] [--env-file FILE …] [-d] -- CMD…
 *   ferry stop [-t SECONDS] NAME…       ferry rm [-f] [-t SECONDS] NAME…
 *   ferry ps [--json]
 *   ferry network create NAME [--ipv6 [--ipv4=false]] [--subnet CIDR …] [--gateway IP …] [--ip-range CIDR …] [--internal] [-o K=V …]
 *                        (one --subnet, --gateway, --ip-range per family, as docker network create takes them)
 *   ferry network rm NAME
 *
 * and the agent's dockerd-style flags for the default network (-b/--bridge, --bip,
 * --ipv6, --fixed-cidr-v6, --icc, --ip-masq, --mtu, --ip-forward, --dns-search, --dns-opt).
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { exitCode, FerryError, toFerryError } from '../errors/errors.js'
import { apiRequester, apiSocketFrom, type ApiRequest } from '../api/client.js'
import { parseBool } from '../runtime/flags.js'
import { loadEnv, runContainer } from '../runtime/run.js'
import type { AttachWire } from '../runtime/spec.js'
import { DEFAULT_STOP_GRACE_MS, type AttachResult } from '../runtime/types.js'
import type { ContainerView } from '../api/runtime.js'
import { table } from './table.js'
import { isCidr, isIp } from '../util/ip.js'
import { checkContainerKey, checkNetworkKey } from '../util/resolve.js'

function collect (value: string, prev: string[]): string[] { return [...prev, value] }

function bool (v: string | undefined): boolean {
  if (v === undefined) return true
  try { return parseBool(v) } catch (err) { throw new InvalidArgumentError((err as Error).message) }
}

function int (v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number')
  return Number(v)
}

function out (text: string): void { process.stdout.write(text) }

interface NetOpts {
  net?: string
  network?: string
  publish: string[]
  publishAll?: boolean
  expose: string[]
  ip?: string
  ip6?: string
  networkAlias: string[]
  link: string[]
  dns: string[]
  dnsSearch: string[]
  dnsOption: string[]
}

/** The options attach and run share, as Docker spells them. */
function netOptions (cmd: Command): Command {
  return cmd
    .option('--net <mode>', 'bridge (the default network), none, container:NAME, host (ferry run) or a ferry network (default: bridge)')
    .addOption(new Option('--network <mode>', 'the same as --net').hideHelp())
    .option('-p, --publish <spec>', 'publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO] (repeatable)', collect, [])
    .option('-P, --publish-all', 'publish every exposed port on a free host port')
    .option('--expose <port>', 'expose a port or range: PORT[-END][/PROTO] (repeatable)', collect, [])
    .option('--ip <ip>', 'the address on the network (default: the next free one)')
    .option('--ip6 <ip>', 'the IPv6 address on a dual-stack network (default: the next free one)')
    .option('--network-alias <alias>', 'another DNS name on the network (repeatable)', collect, [])
    .option('--link <name:alias>', 'link to another container (repeatable)', collect, [])
    .option('--dns <ip>', 'name server for /etc/resolv.conf (repeatable)', collect, [])
    .option('--dns-search <domain>', 'search domain for /etc/resolv.conf (repeatable)', collect, [])
    .option('--dns-option <opt>', 'option for /etc/resolv.conf (repeatable)', collect, [])
}

function wireOf (o: NetOpts): Omit<AttachWire, 'name'> {
  const w: Omit<AttachWire, 'name'> = {
    net: o.network ?? o.net ?? 'bridge', publish: o.publish, publishAll: o.publishAll === true, expose: o.expose, aliases: o.networkAlias,
    links: o.link, dns: o.dns, dnsSearch: o.dnsSearch, dnsOptions: o.dnsOption,
  }
  if (o.ip !== undefined) w.ip = o.ip
  if (o.ip6 !== undefined) w.ip6 = o.ip6
  return w
}

function describe (c: ContainerView): string {
  if (c.mode === 'none') return 'loopback only'
  if (c.mode === 'host') return 'the host\'s network'
  if (c.mode === 'container') return `namespace of ${c.sharesWith ?? '?'}`
  // Each family it has an address in (IPv4 first; IPv6 alone on an IPv6-only network), the network after the first.
  const sides = ([[c.address, c.prefixLen, c.gateway], [c.address6, c.prefixLen6, c.gateway6]] as const)
    .flatMap(([ip, len, gw]) => ip === undefined ? [] : [{ addr: `${ip}/${len ?? '?'}`, via: gw ? ` via ${gw}` : '' }])
  const [first, ...rest] = sides
  if (first === undefined) return `? on ${c.networkName}`
  return `${first.addr} on ${c.networkName}${first.via}${rest.map((s) => ` and ${s.addr}${s.via}`).join('')}`
}

/** `--subnet`, `--gateway` and `--ip-range` as docker network create takes them: repeatable, at most one of each family. */
export function addressOptions (o: { subnet: string[], gateway: string[], ipRange: string[] }): Record<string, string> {
  const body: Record<string, string> = {}
  const sort = (flag: string, key: string, values: string[], isFamily: (v: string, f: 4 | 6) => boolean): void => {
    for (const v of values) {
      const family = isFamily(v, 6) ? 6 : 4
      const k = family === 6 ? `${key}6` : key
      if (body[k] !== undefined) throw new FerryError('INVALID_OPTION', `${flag} ${v}: only one ${flag} per address family (${body[k]} was given too)`)
      body[k] = v
    }
  }
  sort('--subnet', 'subnet', o.subnet, (v, f) => isCidr(v, f))
  sort('--gateway', 'gateway', o.gateway, (v, f) => isIp(v, f))
  sort('--ip-range', 'ipRange', o.ipRange, (v, f) => isCidr(v, f))
  return body
}

/** The PID column of ferry ps: the command when ferry run reported it, else the process watched. */
function pidText (c: ContainerView): string {
  const pid = c.process?.pid ?? c.watch?.pid
  return pid === undefined ? '-' : String(pid)
}

export function registerRuntimeCommands (program: Command): void {
  const socket = (): string => apiSocketFrom(program.opts<{ apiSocket?: string }>().apiSocket)
  const api: ApiRequest = (method, path, body) => apiRequester(socket())(method, path, body)

  const agent = program.commands.find((c) => c.name() === 'agent')
  agent
    ?.option('-b, --bridge <name>', 'the default network\'s bridge, as dockerd\'s (e.g. docker0); absent or "none": no default network')
    .option('--bip <cidr>', 'the default bridge\'s address and prefix, e.g. 172.17.0.1/16 (default: a free default pool)')
    .addOption(new Option('--icc [bool]', 'traffic between containers of the default network').argParser(bool))
    .addOption(new Option('--ip-masq [bool]', 'outbound NAT for the default network').argParser(bool))
    .option('--mtu <n>', 'MTU of the default network', int)
    .addOption(new Option('--ipv6 [bool]', 'a dual-stack default network').argParser(bool))
    .option('--fixed-cidr-v6 <cidr>', 'the default network\'s IPv6 subnet (with --ipv6; default: a /64 of the default IPv6 pool)')
    .addOption(new Option('--ip-forward [bool]', 'turn on net.ipv4.ip_forward at start (default true)').argParser(bool))
    .option('--dns-search <domain>', 'search domain for containers attached without the engine, and the one ferry\'s DNS answers NAME.<domain> for (repeatable; default: the host\'s resolv.conf)', collect, [])
    .option('--dns-opt <opt>', 'resolv.conf option for containers attached without the engine (repeatable)', collect, [])
    .option('--watch-interval <seconds>', 'how often dead attached processes are looked for', int)

  netOptions(program.command('attach')
    .description('give a network namespace made by another runtime a ferry network')
    .requiredOption('--name <name>', 'a name for it (ferry detach NAME undoes it)')
    .option('--netns <path>', 'the namespace, as a path (/var/run/netns/x, /proc/PID/ns/net)')
    .option('--pid <pid>', 'the namespace of this process (detached when it exits)', int)
    .option('--ifname <name>', 'interface name inside', 'eth0')
    .option('--json', 'print JSON'))
    .action(async (o: NetOpts & { name: string, netns?: string, pid?: number, ifname: string, json?: boolean }) => {
      const body: AttachWire = { ...wireOf(o), name: o.name, ifname: o.ifname, owner: 'attach' }
      if (o.netns !== undefined) body.netns = o.netns
      if (o.pid !== undefined) { body.pid = o.pid; body.watchPid = o.pid }
      const r = await api<AttachResult & { container: ContainerView }>('POST', '/v1/containers', body)
      for (const w of r.warnings) process.stderr.write(`${w}\n`)
      if (o.json) { out(JSON.stringify(r, null, 2) + '\n'); return }
      out(`${r.container.name}: ${describe(r.container)}\n`)
    })

  program.command('detach')
    .description('undo ferry attach (or clean up after a ferry run): the veth, address, ports and links go')
    .argument('<name>', 'the container name, id or an id prefix of 12+ characters')
    .action(async (name: string) => {
      const r = await api<{ removed: boolean }>('DELETE', `/v1/containers/${encodeURIComponent(checkContainerKey(name))}`)
      if (!r.removed) process.stderr.write(`${name} was not attached (nothing to do)\n`)
    })

  netOptions(program.command('run')
    .description('run a command in its own network, mount and UTS namespaces, networked by ferry')
    .helpOption('--help', 'display help for command')
    .option('--name <name>', 'container name (default: run-<random>)')
    .option('-h, --hostname <name>', 'host name inside (default: the container id\'s first 12 characters)')
    .option('--rm', 'accepted for Docker compatibility: ferry always removes the container')
    .option('-e, --env <KEY[=VALUE]>', 'set a variable for the command; KEY alone passes ferry run\'s own value (repeatable)', collect, [])
    .option('--env-file <file>', 'read KEY=VALUE lines from a file, as docker run does (repeatable)', collect, [])
    .option('-d, --detach', 'run the command in the background and print its name; output goes to <agent state dir>/logs/NAME.log')
    .argument('<command...>', 'the command and its arguments, after --'))
    .action(async (cmd: string[], o: NetOpts & { name?: string, hostname?: string, env: string[], envFile: string[], detach?: boolean }) => {
      const env = await loadEnv(o.env, o.envFile, (key) => process.env[key])
      const code = await runContainer({
        ...wireOf(o), publishAll: o.publishAll === true, name: o.name, hostname: o.hostname, cmd,
        publish: o.publish, expose: o.expose, links: o.link, aliases: o.networkAlias, dns: o.dns, dnsSearch: o.dnsSearch, dnsOptions: o.dnsOption,
        env, detach: o.detach === true,
      }, api, { warn: (m) => process.stderr.write(`${m}\n`), print: (line) => out(`${line}\n`) })
      process.exitCode = code
    })

  /** stop and rm: each name in turn; a failure is reported and the others still go. */
  const stopAll = async (names: string[], graceMs: number, opts: { removeLog: boolean, ignoreMissing: boolean }): Promise<void> => {
    const call = apiRequester(socket(), graceMs + 30_000)
    for (const name of names) {
      try {
        const r = await call<{ name: string }>('POST', `/v1/containers/${encodeURIComponent(checkContainerKey(name))}/stop`, { timeout: graceMs / 1000, removeLog: opts.removeLog })
        out(`${r.name}\n`)
      } catch (err) {
        const e = toFerryError(err)
        if (opts.ignoreMissing && e.code === 'ENDPOINT_NOT_FOUND') continue
        process.stderr.write(`ferry: ${e.message}\n`)
        process.exitCode = exitCode(e.category)
      }
    }
  }
  const seconds = (v: string): number => {
    const n = int(v)
    if (n > 3600) throw new InvalidArgumentError('at most 3600 seconds')
    return n
  }

  program.command('stop')
    .description('stop containers of ferry run (-d or not): SIGTERM, SIGKILL after the grace period; their network goes, a detached one\'s log stays')
    .option('-t, --time <seconds>', 'seconds to wait for the command to exit before SIGKILL', seconds, DEFAULT_STOP_GRACE_MS / 1000)
    .argument('<names...>', 'container names, ids or id prefixes of 12+ characters')
    .action(async (names: string[], o: { time: number }) => {
      await stopAll(names, o.time * 1000, { removeLog: false, ignoreMissing: false })
    })

  program.command('rm')
    .description('stop containers of ferry run as ferry stop does and delete the log of detached ones (also after they exited)')
    .option('-f, --force', 'SIGKILL at once; names that do not exist are not an error')
    .option('-t, --time <seconds>', 'seconds to wait for the command to exit before SIGKILL', seconds, DEFAULT_STOP_GRACE_MS / 1000)
    .argument('<names...>', 'container names, ids or id prefixes of 12+ characters')
    .action(async (names: string[], o: { force?: boolean, time: number }) => {
      await stopAll(names, o.force === true ? 0 : o.time * 1000, { removeLog: true, ignoreMissing: o.force === true })
    })

  program.command('ps')
    .description('containers attached through ferry (attach, run, CNI)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const list = await api<ContainerView[]>('GET', '/v1/containers')
      if (o.json) { out(JSON.stringify(list, null, 2) + '\n'); return }
      out(table(['NAME', 'ID', 'OWNER', 'NETWORK', 'ADDRESS', 'PID', 'LINKS'],
        list.map((c) => [c.name, c.id.slice(0, 12), c.detached === true ? 'run -d' : c.owner, c.networkName, [c.address, c.address6].filter((a) => a !== undefined).join(', ') || '-', pidText(c),
          c.links.map((l) => `${l.name}:${l.alias}`).join(',') || '-'])))
    })

  const network = program.commands.find((c) => c.name() === 'network')
  if (network === undefined) throw new FerryError('INTERNAL', 'the network command must be defined before the runtime commands')
  network.command('create')
    .description('create a ferry network without the Docker engine (for attach, run and CNI)')
    .argument('<name>', 'network name')
    .option('--ipv6', 'dual-stack: an IPv6 subnet too (given with --subnet, or a /64 of the default IPv6 pool)')
    .addOption(new Option('--ipv4 [bool]', 'false (with --ipv6): an IPv6-only network, as Docker 28\'s --ipv4=false').argParser(bool))
    .option('--subnet <cidr>', 'subnet, one per family (default: a free default pool)', collect, [])
    .option('--gateway <ip>', 'gateway address, one per family (default: the first free one)', collect, [])
    .option('--ip-range <cidr>', 'allocate container addresses from this part of the subnet, one per family', collect, [])
    .option('--internal', 'no way out: no default route, no NAT')
    .option('-o, --opt <key=value>', 'driver option, as with docker network create -o (repeatable)', collect, [])
    .action(async (name: string, o: { subnet: string[], gateway: string[], ipRange: string[], ipv6?: boolean, ipv4?: boolean, internal?: boolean, opt: string[] }) => {
      const options: Record<string, string> = {}
      for (const kv of o.opt) {
        const i = kv.indexOf('=')
        if (i <= 0) throw new FerryError('INVALID_OPTION', `-o ${kv}: expected KEY=VALUE`)
        options[kv.slice(0, i)] = kv.slice(i + 1)
      }
      const body: Record<string, unknown> = { name, internal: o.internal === true, options, ...addressOptions(o) }
      if (o.ipv6 === true) body.ipv6 = true
      if (o.ipv4 === false) body.ipv4 = false
      const net = await api<{ id: string }>('POST', '/v1/networks', body)
      out(`${net.id}\n`)
    })
  network.command('rm')
    .description('remove a network made with ferry network create')
    .argument('<name>', 'network name, id or an id prefix of 12+ characters')
    .action(async (name: string) => {
      await api('DELETE', `/v1/networks/${encodeURIComponent(checkNetworkKey(name))}`)
      out(`${name}\n`)
    })
}
