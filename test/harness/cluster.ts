/**
 * A simulated cluster for end-to-end tests and the soak: an underlay namespace
 * with a bridge and one redis-server, and N hosts, each a namespace on that
 * bridge (192.0.2.1N) with its own dockerd and a ferry agent running with
 * `--cluster` under its own plugin name (plugin discovery is shared by all
 * namespaces). Everything is removed on teardown.
 */
import { netns, nsExec, sh, type TeardownHost } from './netns.js'
import { startDockerd, type Dockerd } from './dockerd.js'
import { ensureBusyboxImage } from './image.js'
import { startAgent, type Agent } from './agent.js'
import { redisServer, type RedisServer } from './redis.js'

export const REDIS_IP = '192.0.2.5'

export interface SimHost { name: string, idx: number, ns: string, ip: string, d: Dockerd, agent: Agent, plugin: string }

/** `agentArgs` go to every agent, `hostArgs(i)` to host i's only (1-based; a per-host `--firewall-backend`, say). */
export async function startCluster (t: TeardownHost, o: { prefix: string, hosts?: number, dns: string, hostTtlS: number, agentArgs?: string[], hostArgs?: (i: number) => string[] }): Promise<{ hosts: SimHost[], redis: RedisServer, underlay: string }> {
  const ul = netns(t, `${o.prefix}ul`)
  nsExec(ul, ['ip', 'link', 'add', 'ulbr', 'type', 'bridge'])
  nsExec(ul, ['ip', 'addr', 'add', `${REDIS_IP}/24`, 'dev', 'ulbr'])
  nsExec(ul, ['ip', 'link', 'set', 'ulbr', 'up'])
  const redis = await redisServer(t, { ns: ul, host: REDIS_IP, port: 6379 })
  const hosts: SimHost[] = []
  for (let i = 1; i <= (o.hosts ?? 3); i++) {
    const ns = netns(t, `${o.prefix}h${i}`)
    const ip = `192.0.2.1${i}`
    sh(['ip', '-n', ul, 'link', 'add', `vh${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    sh(['ip', '-n', ul, 'link', 'set', `vh${i}`, 'master', 'ulbr', 'up'])
    sh(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    // Docker's resolver forwards what it does not know to `dns` (ferry on an overlay's gateway).
    const d = await startDockerd(t, { ns, dns: o.dns })
    await ensureBusyboxImage(d)
    const plugin = `${o.prefix}${i}x${process.pid}`
    const agent = await startAgent(t, {
      ns, pluginName: plugin, dockerd: d,
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', ip, '--host-id', `h${i}`, '--host-ttl', String(o.hostTtlS), ...(o.agentArgs ?? []), ...(o.hostArgs?.(i) ?? [])],
    })
    hosts.push({ name: `h${i}`, idx: i, ns, ip, d, agent, plugin })
  }
  return { hosts, redis, underlay: ul }
}
