/** The runtime routes of the admin API (src/api/runtime.ts) over a fake runtime: validation, status codes, views. */
import t from 'tap'
import { buildApiServer, type AgentView } from '../../src/api/server.js'
import type { RuntimeApi } from '../../src/api/runtime.js'
import { FerryError } from '../../src/errors/errors.js'
import type { AttachSpec, ContainerRecord } from '../../src/runtime/types.js'
import { silentLog } from '../harness/fakes.js'

function record (name: string, over: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    id: 'ab'.repeat(32), name, owner: 'attach', mode: 'network', netns: '/run/netns/x', ifname: 'eth0', networkId: 'cd'.repeat(32),
    address: '10.0.0.2', prefixLen: 24, aliases: [], links: [], exposed: [], hostname: 'h', dns: [], dnsSearch: [], createdAt: '', ...over,
  }
}

const attached: AttachSpec[] = []
const runtime: RuntimeApi = {
  attach: async (spec) => { attached.push(spec); return { container: record(spec.name), env: { HOSTNAME: 'h' }, warnings: [] } },
  detach: async (name) => name === 'x',
  containers: () => [record('x'), record('s', { mode: 'container', sharesWith: 'x', networkId: undefined })],
  container: (name) => {
    if (name !== 'x') throw new FerryError('ENDPOINT_NOT_FOUND', `no container "${name}"`)
    return record('x')
  },
  createNetwork: async (spec) => { if (spec.name === 'dup') throw new FerryError('NAME_CONFLICT', 'exists'); return { id: 'ef'.repeat(32) } as never },
  removeNetwork: async () => undefined,
  networkName: (id) => (id === 'cd'.repeat(32) ? 'back' : undefined),
  setProcess: async (name, pid) => {
    if (name !== 'x') throw new FerryError('ENDPOINT_NOT_FOUND', `no container "${name}"`)
    return record('x', { owner: 'run', process: { pid, startTime: '1' } })
  },
  stopContainer: async (name, opts) => { stops.push([name, opts.graceMs, opts.removeLog]); return name },
}
const stops: Array<[string, number, boolean]> = []
const notUsed = async (): Promise<never> => { throw new Error('not used') }
const agent: AgentView = {
  status: notUsed, networks: notUsed, endpoints: notUsed, reconcile: notUsed, clusterStatus: notUsed, peers: notUsed,
  dnsRecords: notUsed, dnsQuery: notUsed, runtime: () => runtime,
} as unknown as AgentView

const app = buildApiServer(agent, silentLog)
t.teardown(() => app.close())

t.test('attach', async (t) => {
  const ok = await app.inject({ method: 'POST', url: '/v1/containers', payload: { name: 'web', net: 'back', pid: 42, publish: ['8080:80'] } })
  t.equal(ok.statusCode, 201, ok.body)
  t.match(ok.json(), { container: { name: 'web', networkName: 'back' }, env: { HOSTNAME: 'h' } })
  t.match(attached[0], { name: 'web', target: { kind: 'pid', pid: 42 }, ports: [{ hostPort: 8080, containerPort: 80 }] })
  const bad = [
    { name: 'web' },
    { name: 'web', net: 'back', pid: '42' },
    { name: 'web', net: 'back', pid: 42, unknown: 1 },
    { name: 'web', net: 'back', pid: 42, publish: ['nope'] },
  ]
  for (const payload of bad) {
    const r = await app.inject({ method: 'POST', url: '/v1/containers', payload })
    t.equal(r.statusCode, 400, JSON.stringify(payload))
    t.match(r.json(), { error: { code: /INVALID_(REQUEST|OPTION)/ } })
  }
})

t.test('list, get, detach', async (t) => {
  const list = await app.inject({ method: 'GET', url: '/v1/containers' })
  t.same(list.json().map((c: { name: string, networkName: string }) => [c.name, c.networkName]), [['x', 'back'], ['s', 'container:x']])
  t.equal((await app.inject({ method: 'GET', url: '/v1/containers/x' })).statusCode, 200)
  const missing = await app.inject({ method: 'GET', url: '/v1/containers/nope' })
  t.equal(missing.statusCode, 404)
  t.same((await app.inject({ method: 'DELETE', url: '/v1/containers/x' })).json(), { removed: true })
  t.same((await app.inject({ method: 'DELETE', url: '/v1/containers/y' })).json(), { removed: false })
})

t.test('networks', async (t) => {
  const r = await app.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'back', subnet: '10.0.0.0/24', options: { a: 'b' } } })
  t.equal(r.statusCode, 201)
  t.match(r.json(), { name: 'back', id: 'ef'.repeat(32) })
  t.equal((await app.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'dup' } })).statusCode, 409)
  t.equal((await app.inject({ method: 'POST', url: '/v1/networks', payload: { name: 'x', options: { a: 1 } } })).statusCode, 400)
  t.same((await app.inject({ method: 'DELETE', url: '/v1/networks/back' })).json(), { removed: true })
})

t.test('the process of ferry run, stop and rm', async (t) => {
  const p = await app.inject({ method: 'POST', url: '/v1/containers/x/process', payload: { pid: 77 } })
  t.equal(p.statusCode, 200, p.body)
  t.match(p.json(), { name: 'x', process: { pid: 77 }, networkName: 'back' })
  t.equal((await app.inject({ method: 'POST', url: '/v1/containers/x/process', payload: { pid: 0 } })).statusCode, 400)
  t.equal((await app.inject({ method: 'POST', url: '/v1/containers/nope/process', payload: { pid: 7 } })).statusCode, 404)
  t.same((await app.inject({ method: 'POST', url: '/v1/containers/x/stop', payload: {} })).json(), { name: 'x' })
  await app.inject({ method: 'POST', url: '/v1/containers/x/stop', payload: { timeout: 0, removeLog: true } })
  t.same(stops, [['x', 10_000, false], ['x', 0, true]], "Docker's 10 s by default; 0 = SIGKILL at once")
  t.equal((await app.inject({ method: 'POST', url: '/v1/containers/x/stop', payload: { timeout: -1 } })).statusCode, 400)
  const host = await app.inject({ method: 'POST', url: '/v1/containers', payload: { name: 'h', net: 'host', pid: 42, owner: 'run', env: ['A=1'], detached: true } })
  t.equal(host.statusCode, 201, host.body)
  t.match(attached.at(-1), { mode: { kind: 'host' }, env: ['A=1'], detached: true })
})
