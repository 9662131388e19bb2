/**
 * Which firewall backend the agent uses (`--firewall-backend nftables|iptables`,
 * dockerd's flag), and the clean switch between them.
 *
 * Default: nftables when the `nft` program runs and the kernel accepts an `inet`
 * table with a nat hook (checked with `nft -c`, which sends the transaction to the
 * kernel and aborts it: nothing is made), iptables otherwise. An explicit choice
 * that cannot work is refused with one sentence at start.
 *
 * Switching is clean: an agent started with one backend removes every trace of
 * the other (ferry's FERRY-* chains and jumps, or `table inet ferry`), keeping only
 * the administrator's chain when it holds rules (FERRY-USER / the `user` chain).
 */
import type { Logger } from 'pino'
import { FerryError, toFerryError } from '../errors/errors.js'
import { execFile } from '../kernel/exec.js'
import type { EndpointRecord, NetworkRecord } from '../model/types.js'
import { DisabledFirewall, warnWithoutIptables, type FirewallLimits } from './disabled.js'
import { IptablesDriver } from './iptables.js'
import { NftablesDriver } from './nftables.js'
import type { NatLogger } from './host-effects.js'
import type { Runner } from '../kernel/exec.js'
import type { FirewallDriver, LinkFirewall } from './types.js'

export const FIREWALL_BACKENDS = ['nftables', 'iptables'] as const
export type FirewallBackend = typeof FIREWALL_BACKENDS[number]

export interface BackendChoice {
  backend: FirewallBackend
  /** Why, in a few words, for `ferry status` and `ferry doctor`. */
  reason: string
}

/** A transaction that only a kernel with nf_tables inet NAT accepts; `nft -c` checks it and makes nothing. */
const PROBE = 'add table inet ferry_probe\nadd chain inet ferry_probe p { type nat hook prerouting priority -100; }\n'

/** undefined when nftables works here, else why not. */
export async function probeNftables (run: Runner = execFile): Promise<string | undefined> {
  try {
    const res = await run(['nft', '-c', '-f', '-'], { input: PROBE, allowFailure: true, timeoutMs: 10_000 })
    if (res.code === 0) return undefined
    return `the kernel refused an inet table with a nat hook (${res.stderr.trim().split('\n')[0] ?? `exit ${res.code}`})`
  } catch (err) {
    return `the nft program cannot run (${toFerryError(err).message})`
  }
}

export function parseBackend (s: string | undefined): FirewallBackend | undefined {
  if (s === undefined) return undefined
  if ((FIREWALL_BACKENDS as readonly string[]).includes(s)) return s as FirewallBackend
  throw new FerryError('INVALID_OPTION', `--firewall-backend "${s}" must be nftables or iptables`)
}

export async function chooseBackend (flag: FirewallBackend | undefined, probe: () => Promise<string | undefined> = probeNftables): Promise<BackendChoice> {
  if (flag === 'iptables') return { backend: 'iptables', reason: '--firewall-backend iptables' }
  const why = await probe()
  if (flag === 'nftables') {
    if (why !== undefined) throw new FerryError('INVALID_OPTION', `--firewall-backend nftables cannot work on this host: ${why}; install nftables or use --firewall-backend iptables`)
    return { backend: 'nftables', reason: '--firewall-backend nftables' }
  }
  if (why === undefined) return { backend: 'nftables', reason: 'default: nft is installed and the kernel supports inet tables' }
  return { backend: 'iptables', reason: `default: nftables unavailable (${why})` }
}

export interface OpenedFirewall {
  driver: FirewallDriver & LinkFirewall
  /** Remove what the other backend left (best effort; logs what it could not remove). */
  removeOther (): Promise<void>
  /** Restore the table at once when someone removes it (nftables: its events, read in the agent); returns how to stop (and end the nft session). */
  watch (): () => void
}

/**
 * Remove every trace of `backend` (ferry's FERRY-* chains and jumps, or table inet
 * ferry and its FORWARD accept), the administrator's chain kept when it holds rules.
 * Nothing to do when its tool is not installed. Best effort: a failure is logged.
 */
export async function removeBackend (backend: FirewallBackend, opts: { logger?: NatLogger, run?: Runner } = {}): Promise<void> {
  const run = opts.run ?? execFile
  const tool = backend === 'iptables' ? 'iptables-save' : 'nft'
  const present = await run([tool, '--version'], { allowFailure: true, timeoutMs: 10_000 }).then((r) => r.code === 0, () => false)
  if (!present) return
  const driver = backend === 'iptables' ? new IptablesDriver({ run }) : new NftablesDriver({ run, session: false })
  try {
    await driver.teardown()
  } catch (err) {
    opts.logger?.warn({ err: toFerryError(err).message }, `removing the rules of the ${backend} backend failed`)
  }
}

export function openFirewall (backend: FirewallBackend, opts: { logger?: NatLogger, run?: Runner } = {}): OpenedFirewall {
  const run = opts.run ?? execFile
  // A given runner (tests) means no long-running nft session and no generation read from the kernel either.
  const real = opts.run === undefined
  const driver = backend === 'nftables' ? new NftablesDriver({ logger: opts.logger, run, session: real, generation: real }) : new IptablesDriver({ logger: opts.logger, run })
  return {
    driver,
    watch: () => {
      if (!(driver instanceof NftablesDriver)) return () => undefined
      driver.startWatch()
      return () => driver.close()
    },
    // Without the other tool there is nothing of it to remove (a host with no iptables at all).
    removeOther: () => removeBackend(backend === 'nftables' ? 'iptables' : 'nftables', { logger: opts.logger, run }),
  }
}

/** The default backend, opened, with the other one removed (what the agent does at start); for tests and tools. */
export async function openDefaultFirewall (): Promise<FirewallDriver & LinkFirewall> {
  const opened = openFirewall((await chooseBackend(undefined)).backend)
  await opened.removeOther()
  return opened.driver
}

/** The agent's firewall: the chosen backend, or none (--iptables=false). */
export interface AgentFirewall {
  driver: FirewallDriver & LinkFirewall
  /** What it cannot do, checked before a request is applied: set with --iptables=false. */
  limits?: FirewallLimits
  /** The backend and why (`ferry status`); undefined with --iptables=false. */
  choice?: BackendChoice
  /** Stops the watch of the table (and the nft session). */
  close (): void
}

export interface AgentFirewallOptions {
  /** dockerd's --iptables (default true). */
  iptables?: boolean
  /** --firewall-backend (default: chooseBackend's). */
  backend?: FirewallBackend
  log: Logger
  /** The store's records, for the warnings of --iptables=false. */
  networks: readonly NetworkRecord[]
  endpoints: readonly EndpointRecord[]
  /** Tests: how programs run, and the nftables probe. */
  run?: Runner
  probe?: () => Promise<string | undefined>
}

/**
 * At agent start: with --iptables=false the disabled firewall (and warnings about what
 * the store holds that it no longer provides); else the backend of --firewall-backend or
 * the default, logged, every trace of the other one removed, its table watched.
 */
export async function openAgentFirewall (o: AgentFirewallOptions): Promise<AgentFirewall> {
  if (o.iptables === false) {
    const disabled = new DisabledFirewall()
    warnWithoutIptables(o.networks, o.endpoints, o.log)
    return { driver: disabled, limits: disabled, close: () => undefined }
  }
  const choice = await chooseBackend(o.backend, o.probe ?? (() => probeNftables(o.run ?? execFile)))
  o.log.info(choice, 'firewall backend')
  const opened = openFirewall(choice.backend, { logger: o.log.child({ component: 'nat' }), ...(o.run ? { run: o.run } : {}) })
  await opened.removeOther()
  return { driver: opened.driver, choice, close: opened.watch() }
}
