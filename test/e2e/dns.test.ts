/**
 * DNS through the engine's default path, end to end: two simulated hosts whose
 * engines forward what Docker's resolver does not know to ferry (`dockerd --dns`
 * = the overlay's gateway), one upstream resolver on the underlay.
 *
 * - Stale serving (RFC 8767): a container resolved an external name once; the
 *   upstream dies; after the answer's TTL the container still gets it, from the
 *   cache, while a name never asked fails.
 * - Engine clients: a container on a plain Docker bridge network resolves a
 *   container of another host's overlay by name through ferry when its subnet is
 *   in the agent's --dns-engine-clients, and is refused otherwise.
 * Host 1's agent runs nftables, host 2's iptables, each beside its engine (which
 * keeps its own iptables rules); the engine clients are checked on both hosts.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { startCluster, REDIS_IP, type SimHost } from '../harness/cluster.js'
import { until, type UntilOptions } from '../harness/until.js'
import { backendInUse } from '../harness/firewall.js'

const SUBNET = '10.42.0.0/16'
const GATEWAY = '10.42.0.1'
const ENGINE_CLIENTS = '172.30.0.0/16'
/** TTL of the upstream's answers: short, so the cached one expires during the test. */
const TTL_S = 1
const E2E: UntilOptions = { timeoutMs: 15_000, everyMs: 250 }

await t.test('DNS through the engine\'s --dns: stale answers and engine clients', async (t) => {
  const { hosts, underlay } = await startCluster(t, {
    prefix: 'fyn', hosts: 2, dns: GATEWAY, hostTtlS: 4,
    agentArgs: ['--dns', REDIS_IP, '--dns-engine-clients', ENGINE_CLIENTS, '--reconcile-interval', '1'],
    hostArgs: (i) => ['--firewall-backend', i === 1 ? 'nftables' : 'iptables'],
  })
  const [h1, h2] = hosts as [SimHost, SimHost]
  t.teardown(() => { if (!t.passing()) for (const h of hosts) t.comment(`${h.name} agent log:\n${h.agent.logs().slice(-3000)}`) })
  const responder = spawn('ip', ['netns', 'exec', underlay, 'env', '-u', 'NODE_OPTIONS', process.execPath,
    new URL('../fixtures/dns-responder.mjs', import.meta.url).pathname, REDIS_IP, '53', String(TTL_S)], { stdio: 'ignore' })
  const exited = once(responder, 'exit')
  t.teardown(() => { responder.kill('SIGKILL') })
  for (const h of hosts) {
    const r = await h.d.docker(['network', 'create', '-d', h.plugin, '--ipam-driver', h.plugin, '--subnet', SUBNET, '-o', 'ferry.overlay=ovd', 'ovd'])
    t.equal(r.code, 0, `${h.name}: ${r.stderr}`)
  }
  const lookup = async (h: SimHost, args: string[], name: string): Promise<string> => {
    const r = await h.d.docker(['run', '--rm', '--stop-timeout', '1', ...args, 'bb', 'nslookup', name])
    return r.stdout + r.stderr
  }

  await t.test('a container keeps resolving an external name while the upstream is down (stale serving)', async (t) => {
    t.equal((await h1.d.docker(['run', '-d', '--stop-timeout', '1', '--net', 'ovd', '--name', 'cli', 'bb', 'sleep', '600'])).code, 0)
    const ask = async (name: string): Promise<string> => {
      const r = await h1.d.docker(['exec', 'cli', 'nslookup', name])
      return r.stdout + r.stderr
    }
    let out = ''
    await until('the upstream answers through Docker\'s resolver and ferry', async () => /192\.0\.2\.99/.test(out = await ask('www.example.test')), E2E).catch(() => undefined)
    t.match(out, /192\.0\.2\.99/, `resolved once, through ferry: ${out}`)
    const before = JSON.parse((await h1.agent.cli(['dns', 'cache', '--json'])).stdout) as { entries: number, stale: number }
    t.ok(before.entries >= 1, 'the answer is cached')
    responder.kill('SIGKILL')
    await exited
    const never = await ask('never-asked.example.test')
    t.notMatch(never, /192\.0\.2\.99/, `a name nothing cached fails while the upstream is down: ${never}`)
    await sleep(TTL_S * 1000 + 1000) // the cached answer's TTL runs out
    const stale = await ask('www.example.test')
    t.match(stale, /192\.0\.2\.99/, `the expired answer is served stale: ${stale}`)
    const after = JSON.parse((await h1.agent.cli(['dns', 'cache', '--json'])).stdout) as { stale: number, upstreams: Array<{ state?: string }> }
    t.ok(after.stale > before.stale, `served from the stale cache (stale ${before.stale} → ${after.stale})`)
  })

  await t.test('a container on a plain Docker network resolves an overlay container through ferry (both hosts, both backends)', async (t) => {
    t.same([backendInUse(h1.ns), backendInUse(h2.ns)], ['nftables', 'iptables'], 'host 1 filters with table inet ferry, host 2 with iptables')
    t.equal((await h1.d.docker(['run', '-d', '--stop-timeout', '1', '--net', 'ovd', '--name', 'db', 'bb', 'sleep', '600'])).code, 0)
    const dbIp = (await h1.d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.ovd.IPAddress}}', 'db'])).trim()
    t.match(dbIp, /^10\.42\./)
    const dbRe = new RegExp(dbIp.replace(/\./g, '\\.'))
    // Host 2 resolves it from Redis; host 1, where it runs, from its own records.
    for (const h of [h1, h2]) {
      t.equal((await h.d.docker(['network', 'create', '--subnet', ENGINE_CLIENTS, 'plain'])).code, 0)
      t.equal((await h.d.docker(['network', 'create', '--subnet', '172.31.0.0/16', 'elsewhere'])).code, 0)
      let out = ''
      await until(`db resolvable from a plain network of ${h.name}`, async () => (out = await lookup(h, ['--net', 'plain'], 'db')).includes(dbIp), E2E).catch(() => undefined)
      t.match(out, dbRe, `${h.name}: through Docker's resolver and ferry (--dns-engine-clients): ${out}`)
      const refused = await lookup(h, ['--net', 'elsewhere'], 'db')
      t.notMatch(refused, dbRe, `${h.name}: a network outside --dns-engine-clients is refused: ${refused}`)
      const doctor = await h.agent.cli(['doctor', '--docker-host', h.d.host, '--plugin-name', h.plugin, '--json'])
      const check = (JSON.parse(doctor.stdout) as { checks: Array<{ check: string, status: string, what: string }> }).checks.find((c) => c.check === 'engine.dns')
      t.match(check, { status: 'ok', what: /forwards its containers' other names to ferry \(10\.42\.0\.1\)/ }, `${h.name}: ferry doctor sees the engine's --dns`)
    }
  })
})
