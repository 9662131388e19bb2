/**
 * The case, end to end: eight containers attached to a ferry network, the
 * agent stopped, one journal line in the middle damaged (the endpoint of the fifth).
 * After a restart and `ferry reconcile`, every container still has its veth and
 * answers, the intact changes after the damage are there, `ferry status` and
 * `ferry doctor` report the loss, and a new container never gets a used address.
 * Without the engine; the agent and its namespaces are the test's own. Once per
 * firewall backend: the first container publishes a port, which the reconcile of a
 * store recovered with loss leaves as it is (iptables rules or map elements).
 */
import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { netns, nsExec, sh } from '../harness/netns.js'
import { requireBuild, startCliAgent, ferry, hostVeths, ps as psOf, type CliCtx } from '../harness/ferry-cli.js'
import { BACKENDS, publishedCount } from '../harness/firewall.js'

requireBuild(t)

const N = 8
const addr = (i: number): string => `10.73.0.${i + 1}`

const PORT = 8071

for (const backend of BACKENDS) await t.test(`a damaged journal line loses no container (--firewall-backend ${backend})`, async (t) => {
  const c: CliCtx = await startCliAgent(t, `fyj${backend[0]!}`, '10.74.0.1/24', ['--firewall-backend', backend])
  const { host, agent } = c
  t.equal((await ferry(c, ['network', 'create', 'back', '--subnet', '10.73.0.0/24'])).code, 0)
  const spaces: string[] = []
  for (let i = 1; i <= N; i++) {
    const x = netns(t, 'fyjx')
    spaces.push(x)
    const at = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', `c${i}`, '--net', 'back', ...(i === 1 ? ['-p', `${PORT}:80`] : [])])
    t.equal(at.code, 0, at.stderr)
    t.match(at.stdout, new RegExp(`c${i}: ${addr(i).replace(/\./g, '\\.')}/24`))
  }
  const veths = hostVeths(c).sort()
  t.equal(veths.length, N)
  t.equal(publishedCount(backend, host, PORT), 1, 'the first container publishes its port')
  await agent.kill()

  // Damage the line that recorded the fifth container's endpoint.
  const jf = path.join(agent.stateDir, 'state.journal')
  const lines = (await fs.readFile(jf, 'utf8')).split('\n')
  const at = lines.findIndex((l) => l.includes('["set",["endpoints",') && l.includes(`"address":"${addr(5)}"`))
  t.ok(at > 0 && at < lines.length - 2, `the fifth endpoint is on line ${at + 1} of ${lines.length - 1}, in the middle`)
  lines[at] = lines[at]!.replace(`"address":"${addr(5)}"`, `"address":"${addr(5).replace(/6$/, '7')}"`)
  await fs.writeFile(jf, lines.join('\n'))

  await agent.restart()
  t.match(agent.logs(), /the store was recovered with loss: the state journal had 1 damaged line \(line \d+ of \d+\): 1 acknowledged change lost \(it touched endpoints\/[0-9a-f]+\)/)
  const kept = (await fs.readdir(agent.stateDir)).filter((n) => n.startsWith('state.journal.damaged-'))
  t.equal(kept.length, 1, 'the damaged journal is kept aside')
  t.same((await psOf<{ name: string }>(c)).map((p) => p.name).sort(), Array.from({ length: N }, (_, i) => `c${i + 1}`).sort(), 'every container record after the damage is there')

  const r = await ferry(c, ['reconcile'])
  t.equal(r.code, 0, r.stderr)
  t.same(hostVeths(c).sort(), veths, 'reconcile removed no container\'s veth')
  t.equal(publishedCount(backend, host, PORT), 1, 'nor the first container\'s published port (the firewall is left as it is)')
  for (let i = 1; i <= N; i++) {
    const ping = sh(['ip', 'netns', 'exec', host, 'busybox', 'ping', '-c', '1', '-W', '2', addr(i)], { allowFailure: true })
    t.match(ping, /1 received|1 packets received/, `c${i} answers`)
  }

  const status = await ferry(c, ['status'])
  t.match(status.stdout, new RegExp(`^store: +recovered with loss: 1 damaged journal line, kept at ${agent.stateDir}/${kept[0]}; healthy`, 'm'))
  const doctor = await ferry(c, ['doctor'])
  t.match(doctor.stdout, /^warn agent\.store: the store was recovered with loss: 1 damaged journal line, kept at .* — .*ferry reconcile/m)

  // A new container gets a free address, never the fifth's.
  const x9 = netns(t, 'fyjx')
  const ninth = await ferry(c, ['attach', '--netns', `/var/run/netns/${x9}`, '--name', 'c9', '--net', 'back'])
  t.equal(ninth.code, 0, ninth.stderr)
  t.match(ninth.stdout, new RegExp(`c9: ${addr(9).replace(/\./g, '\\.')}/24`), 'the next free address')
  t.match(nsExec(spaces[4]!, ['ip', '-4', '-o', 'addr', 'show', 'eth0']), new RegExp(`inet ${addr(5).replace(/\./g, '\\.')}/24`), 'the fifth keeps its address')
  // The operator has checked: the kept file goes, and the next reconcile is a normal one that
  // needs every container's veth (the fifth's endpoint record was rebuilt from its container record).
  await fs.rm(path.join(agent.stateDir, kept[0]!))
  t.equal((await ferry(c, ['reconcile'])).code, 0)
  t.notMatch((await ferry(c, ['status'])).stdout, /recovered with loss/)
  t.equal(hostVeths(c).length, N + 1, 'every container keeps its veth')
  for (let i = 1; i <= 9; i++) await ferry(c, ['detach', `c${i}`])
  t.same(hostVeths(c), [], 'detach removes the rebuilt endpoint too')
  t.equal(publishedCount(backend, host, PORT), 0, 'and the published port')
})
