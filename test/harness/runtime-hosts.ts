/**
 * Simulated hosts for engine-less overlay tests: an underlay namespace with a
 * bridge (`ulbr`, 192.0.2.5/24) and redis-server on it, and N host namespaces
 * (eth0 = 192.0.2.2<i>, its underlay port `vr<i>`) each running a ferry agent
 * with `--cluster` and no engine. Everything is removed on teardown.
 */
import type { TeardownHost } from './netns.js'
import { startAgent, type Agent } from './agent.js'
import { redisServer } from './redis.js'
import { underlay, underlayHost } from './underlay.js'

export const REDIS_IP = '192.0.2.5'

export interface RuntimeHost { ns: string, hostId: string, ip: string, agent: Agent }

export async function runtimeHosts (t: TeardownHost & { passing (): boolean, comment (msg: string): void },
  opts: { prefix: string, count: number, hostId: (i: number) => string, args?: (i: number) => string[] }): Promise<{ ul: string, hosts: RuntimeHost[] }> {
  const ul = underlay(t, `${opts.prefix}ul`, REDIS_IP)
  await redisServer(t, { ns: ul.ns, host: REDIS_IP, port: 6379 })
  const hosts: RuntimeHost[] = []
  for (let i = 1; i <= opts.count; i++) {
    const ip = `192.0.2.2${i}`
    const ns = underlayHost(t, ul, `${opts.prefix}${i}`, `vr${i}`, ip)
    const hostId = opts.hostId(i)
    const agent = await startAgent(t, {
      ns, pluginName: `${opts.prefix}${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', ip, '--host-id', hostId, '--reconcile-interval', '0', ...(opts.args?.(i) ?? [])],
    })
    hosts.push({ ns, hostId, ip, agent })
  }
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })
  return { ul: ul.ns, hosts }
}
