/**
 * Types of ferry's runtime front end (`ferry attach`, `ferry run`, the CNI
 * plugin): what a caller asks for (AttachSpec, validated by spec.ts) and what
 * the agent keeps per attached namespace (ContainerRecord, in the store).
 */
import type { ContainerMode, ContainerOwner, ContainerRecord, ExposedPort, LinkSpec, PortRequest } from '../model/types.js'

// The record the store keeps lives in src/model (the store is below the runtime); re-exported for the runtime's users.
export type { ContainerMode, ContainerOwner, ContainerRecord, LinkSpec, ProcessRef } from '../model/types.js'

/** Where the namespace to configure is. */
export type NetnsTarget =
  | { kind: 'path', path: string }          // a bind-mounted netns (ip netns, CNI_NETNS, /proc/PID/ns/net)
  | { kind: 'pid', pid: number }            // the network namespace of a process

/**
 * The network a container gets:
 *   network   - a ferry network (bridge or overlay) by name or id; 'bridge' = the default network
 *   none      - only loopback
 *   container - the network namespace of another attached container (nothing is configured)
 *   host      - the host's namespaces (ferry run only): registered by name, nothing is configured
 */
export type NetMode =
  | { kind: 'network', network: string }
  | { kind: 'none' }
  | { kind: 'container', container: string }
  | { kind: 'host' }

/** Compiles only while NetMode's kinds are exactly the stored record's modes (ContainerMode, src/model). */
type Agrees<T extends true> = T
export type NetModeKindsAreContainerModes = Agrees<[NetMode['kind']] extends [ContainerMode] ? ([ContainerMode] extends [NetMode['kind']] ? true : false) : false>

/** A validated attach request. */
export interface AttachSpec {
  name: string
  target: NetnsTarget
  mode: NetMode
  /** Name of the interface in the namespace (CNI_IFNAME), eth0 by default. */
  ifname: string
  /** Preferred address; undefined = IPAM picks. */
  ip?: string
  /** Preferred IPv6 address on a dual-stack network (--ip6); undefined = IPAM picks. */
  ip6?: string
  ports: PortRequest[]
  exposed: ExposedPort[]
  aliases: string[]
  links: LinkSpec[]
  dns: string[]
  dnsSearch: string[]
  dnsOptions: string[]
  /** '' = the container id's first 12 characters. */
  hostname: string
  /**
   * Set up the process's mount and UTS namespaces too (ferry run): bind-mount the
   * generated /etc/hosts and /etc/resolv.conf, mount a sysfs of the new network
   * namespace on /sys, and set the hostname. Needs a pid target.
   */
  setupFiles: boolean
  /** Who asked: decides nothing but is shown. */
  owner: ContainerOwner
  /** Detach when this process exits (its start time guards against pid reuse). */
  watchPid?: number
  /** The command's `-e` variables, KEY=VALUE (later ones win): kept for the *_ENV_* variables of links to it. */
  env: string[]
  /** `ferry run -d`: the command's output goes to a log file the agent names. */
  detached: boolean
}

/** The answer to an attach: the record, plus what `ferry run` hands to the command. */
export interface AttachResult {
  container: ContainerRecord
  /** Docker's link environment variables and HOSTNAME. */
  env: Record<string, string>
  /** The pid whose namespaces the command must enter (ferry run, mode container). */
  enterPid?: number
  /** Warnings for the user (ignored options). */
  warnings: string[]
}

/** How `ferry stop`/`ferry rm` end a command. */
export interface StopOptions {
  /** Time between SIGTERM and SIGKILL; 0 = SIGKILL at once. */
  graceMs: number
  /** Delete the log of a detached command too (ferry rm). */
  removeLog: boolean
}

/** Docker's `docker stop` grace period. */
export const DEFAULT_STOP_GRACE_MS = 10_000

/** A ferry network created without the engine (`ferry network create`). */
export interface NetworkCreateSpec {
  name: string
  subnet?: string
  gateway?: string
  ipRange?: string
  /** false (--ipv4=false, with --ipv6): an IPv6-only network, no IPv4 subnet. Absent: IPv4. */
  ipv4?: boolean
  /** Dual-stack (--ipv6): an IPv6 subnet too, given or a /64 of the default IPv6 pool. */
  ipv6?: boolean
  subnet6?: string
  gateway6?: string
  ipRange6?: string
  internal: boolean
  options: Record<string, string>
}
