/**
 * Types of ferry's runtime front end (`ferry attach`, `ferry run`, the CNI
 * plugin): what a caller asks for (AttachSpec, validated by spec.ts) and what
 * the agent keeps per attached namespace (ContainerRecord, in the store).
 */
import type { ExposedPort, PortRequest } from '../model/types.js'

/** Where the namespace to configure is. */
export type NetnsTarget =
  | { kind: 'path', path: string }          // a bind-mounted netns (ip netns, CNI_NETNS, /proc/PID/ns/net)
  | { kind: 'pid', pid: number }            // the network namespace of a process

/**
 * The network a container gets:
 *   network   - a ferry network (bridge or overlay) by name or id; 'bridge' = the default network
 *   none      - only loopback
 *   container - the network namespace of another attached container (nothing is configured)
 */
export type NetMode =
  | { kind: 'network', network: string }
  | { kind: 'none' }
  | { kind: 'container', container: string }

export interface LinkSpec { name: string, alias: string }

/** A validated attach request. */
export interface AttachSpec {
  name: string
  target: NetnsTarget
  mode: NetMode
  /** Name of the interface in the namespace (CNI_IFNAME), eth0 by default. */
  ifname: string
  /** Preferred address; undefined = IPAM picks. */
  ip?: string
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
  owner: 'run' | 'attach' | 'cni'
  /** Detach when this process exits (its start time guards against pid reuse). */
  watchPid?: number
}

/** What the agent keeps for one attached namespace (State.containers, keyed by name). */
export interface ContainerRecord {
  id: string                  // 64 hex, made by ferry
  name: string
  owner: AttachSpec['owner']
  mode: 'network' | 'none' | 'container'
  /** Path of the network namespace as given (or /proc/PID/ns/net). */
  netns: string
  /** A process of the namespace, when known (for nsenter). */
  pid?: number
  /** The process whose exit detaches, with its start time (field 22 of /proc/PID/stat). */
  watch?: { pid: number, startTime: string }
  /** For mode network. */
  networkId?: string
  endpointId?: string
  address?: string
  prefixLen?: number
  gateway?: string
  mac?: string
  ifname: string
  /** For mode container: the container whose namespace this one shares. */
  sharesWith?: string
  aliases: string[]
  links: LinkSpec[]
  exposed: ExposedPort[]
  hostname: string
  dns: string[]
  dnsSearch: string[]
  /** Where the generated hosts and resolv.conf live, when written. */
  filesDir?: string
  createdAt: string
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

/** A ferry network created without the engine (`ferry network create`). */
export interface NetworkCreateSpec {
  name: string
  subnet?: string
  gateway?: string
  ipRange?: string
  internal: boolean
  options: Record<string, string>
}
