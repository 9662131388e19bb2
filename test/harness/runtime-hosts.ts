/**
 * Simulated hosts for engine-less overlay tests: an underlay namespace with a
 * bridge (`ulbr`, 192.0.2.5/24) and redis-server on it, and N host namespaces
 * (eth0 = 192.0.2.2<i>, its underlay port `vr<i>`) each running a ferry agent
 * with `--cluster` and no engine. Everything is removed on teardown.
 */
import { netns, nsExec, sh, type TeardownHost } from './netns.js'
import { startAgent, type Agent } from './agent.js'
import { redisServer } from './redis.js'

export const REDIS_IP = '192.0.2.5'

export interface RuntimeHost { ns: string, hostId: string, ip: string, agent: Agent }

export async function runtimeHosts (t: TeardownHost & { passing (): boolean, comment (msg: string): void },
  opts: { prefix: string, count: number, hostId: (i: number) => string }): Promise<{ ul: string, hosts: RuntimeHost[] }> {
  const ul = netns(t, `${opts.prefix}ul`)
  nsExec(ul, ['ip', 'link', 'add', 'ulbr', 'type', 'bridge'])
  nsExec(ul, ['ip', 'addr', 'add', `${REDIS_IP}/24`, 'dev', 'ulbr'])
  nsExec(ul, ['ip', 'link', 'set', 'ulbr', 'up'])
  await redisServer(t, { ns: ul, host: REDIS_IP, port: 6379 })
  const hosts: RuntimeHost[] = []
  for (let i = 1; i <= opts.count; i++) {
    const ns = netns(t, `${opts.prefix}${i}`)
    const ip = `192.0.2.2${i}`
    sh(['ip', '-n', ul, 'link', 'add', `vr${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    sh(['ip', '-n', ul, 'link', 'set', `vr${i}`, 'master', 'ulbr', 'up'])
    sh(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    const hostId = opts.hostId(i)
    const agent = await startAgent(t, {
      ns, pluginName: `${opts.prefix}${i}x${process.pid}`, dockerHost: 'unix:///nonexistent/ferry-test-docker.sock',
      args: ['--cluster', `redis://${REDIS_IP}:6379`, '--advertise-addr', ip, '--host-id', hostId, '--reconcile-interval', '0'],
    })
    hosts.push({ ns, hostId, ip, agent })
  }
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(h.agent.logs().split('\n').filter((l) => !l.includes('engine event')).slice(-40).join('\n')) })
  return { ul, hosts }
}
