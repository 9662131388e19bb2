/**
 * `ferry doctor`: gathers the facts (probes.ts, redis.ts) and turns them into
 * one verdict per check (checks.ts), in a fixed order: kernel, sysctls,
 * iptables, engine, agent (then the engine's --dns against ferry's DNS), Redis and clock.
 */
import path from 'node:path'
import {
  judgeAgent, judgeBridgeNfCall, judgeBrNetfilter, judgeClockSkew, judgeEngine, judgeEngineDns, judgeIpForward, judgeIptables, judgeIpv6AcceptRa,
  judgeLinkKind, judgePluginAnswer, judgeRedis, judgeSocket, ok, warn, type CheckResult, type ProbedLink, judgeWireGuard, judgeFullSize, judgeTc, judgeFamilies,
} from './checks.js'
import {
  probeAgent, probeEngine, probeEngineDns, probeFerryDns, probeIptables, probeLinkKinds, probePluginAnswer, probeSocket, probeTcMirror, sysctlOrUndefined,
} from './probes.js'
import { mtuOfAddress, planMtuProbes, runMtuProbes, type ClusterView, type MtuProbeResult } from './mtu.js'
import { apiCall } from '../api/client.js'
import { DEFAULT_UNDERLAY_MTU } from '../vxlan/plan.js'
import { probeRedis } from './redis.js'
import { kernelForwardingDeps, raAffected } from '../kernel/forwarding.js'
import { sysctlExists } from '../kernel/sysctl.js'
import { detectWireGuard } from '../wireguard/device.js'

/** Where the engine looks for plugin sockets; not configurable in the engine. */
export const ENGINE_PLUGIN_DIR = '/run/docker/plugins'

export interface DoctorOptions {
  pluginName: string
  pluginDir: string
  apiSocket: string
  dockerHost: string
  /** Redis URL: check reachability, version, latency and clock skew. */
  cluster?: string
}

/** Whether the agent's plugin directory is the engine's (pure). */
export function judgePluginDir (pluginDir: string): CheckResult {
  if (path.resolve(pluginDir) === ENGINE_PLUGIN_DIR) return ok('engine.plugin-dir', `the engine looks for plugin sockets in ${ENGINE_PLUGIN_DIR}, where the agent serves`)
  return warn('engine.plugin-dir', `the agent serves in ${pluginDir}, but the engine looks for sockets only in ${ENGINE_PLUGIN_DIR}`,
    `drop --plugin-dir, or write a spec file /etc/docker/plugins/<name>.spec holding unix://${pluginDir}/<name>.sock`)
}

export async function runDoctor (o: DoctorOptions): Promise<CheckResult[]> {
  const pluginSocket = path.join(o.pluginDir, `${o.pluginName}.sock`)
  const [links, brNetfilter, ipForward, nfCall, iptables, pluginSock, apiSock, agent, redis, forward6, raIfaces, wireguard] = await Promise.all([
    probeLinkKinds(),
    sysctlExists('net.bridge'),
    sysctlOrUndefined('net.ipv4.ip_forward'),
    sysctlOrUndefined('net.bridge.bridge-nf-call-iptables'),
    probeIptables(),
    probeSocket(pluginSocket),
    probeSocket(o.apiSocket),
    probeAgent(o.apiSocket),
    o.cluster === undefined ? Promise.resolve(undefined) : probeRedis(o.cluster),
    sysctlOrUndefined('net.ipv6.conf.all.forwarding'),
    raAffected(kernelForwardingDeps(() => {})).catch(() => []),
    detectWireGuard(),
  ])
  const [engine, pluginAnswer, engineDns, ferryDns, fullSize, tc] = await Promise.all([
    probeEngine(o.dockerHost, o.pluginName, iptables.filterSave),
    pluginSock.error === undefined && pluginSock.isSocket === true ? probePluginAnswer(pluginSocket) : Promise.resolve(undefined),
    probeEngineDns(o.dockerHost),
    agent.error === undefined ? probeFerryDns(o.apiSocket) : Promise.resolve(undefined),
    agent.error === undefined ? probeFullSize(o.apiSocket) : Promise.resolve<Awaited<ReturnType<typeof probeFullSize>>>({ probes: [] }),
    redis !== undefined ? probeTcMirror() : Promise.resolve(undefined),
  ])

  const results: CheckResult[] = []
  for (const kind of Object.keys(links) as ProbedLink[]) results.push(judgeLinkKind(kind, links[kind]))
  results.push(judgeBrNetfilter(brNetfilter))
  results.push(judgeIpForward(ipForward))
  results.push(judgeIpv6AcceptRa(forward6, raIfaces))
  if (brNetfilter) results.push(judgeBridgeNfCall(nfCall))
  const agentIptables = agent.status?.firewall?.iptables
  results.push(...judgeIptables(iptables, typeof agentIptables === 'boolean' ? agentIptables : undefined))
  results.push(...judgeEngine(engine, o.pluginName))
  results.push(judgePluginDir(o.pluginDir))
  results.push(judgeSocket('agent.plugin-socket', 'plugin socket', pluginSock))
  if (pluginSock.error === undefined && pluginSock.isSocket === true) results.push(judgePluginAnswer(pluginSocket, pluginAnswer))
  results.push(...judgeAgent(agent, iptables))
  if (agent.error === undefined) results.push(judgeSocket('agent.api-socket', 'API socket', apiSock))
  if (engine.error === undefined && ferryDns !== undefined) results.push(judgeEngineDns(engineDns, ferryDns))
  if (redis !== undefined) {
    results.push(...judgeRedis(redis))
    if (redis.error === undefined) results.push(judgeClockSkew(redis.offsetMs, redis.timeRttMs ?? 0))
    results.push(judgeWireGuard(wireguard))
    results.push(judgeTc(tc))
  }
  if (fullSize.unreachable !== undefined) results.push(judgeFamilies(fullSize.unreachable))
  results.push(...judgeFullSize(fullSize.probes))
  return results
}

/**
 * The agent's cluster view (GET /v1/cluster), then full-size pings to every peer host over the underlay and
 * through WireGuard (src/doctor/mtu.ts). Nothing without a cluster.
 */
async function probeFullSize (apiSocket: string): Promise<{ probes: MtuProbeResult[], unreachable?: Array<{ hostId: string, detail: string }> }> {
  let cluster: ClusterView
  try {
    cluster = await apiCall<ClusterView>(apiSocket, 'GET', '/v1/cluster', undefined, 5000)
  } catch {
    return { probes: [] } // no cluster (or no agent): nothing to probe
  }
  const mtu = typeof cluster.vtep === 'string' ? await mtuOfAddress(cluster.vtep) : undefined
  const probes = await runMtuProbes(planMtuProbes(cluster, mtu ?? DEFAULT_UNDERLAY_MTU))
  const unreachable = cluster.peers?.unreachableHosts
  return Array.isArray(unreachable) ? { probes, unreachable } : { probes }
}
