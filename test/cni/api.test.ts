/**
 * What the CNI plugin reads from the admin API (src/api/runtime.ts): the `resolver` of a
 * container in the attach answer and in GET /v1/containers/:name, over a fake runtime.
 */
import t from 'tap'
import { buildApiServer, type AgentView } from '../../src/api/server.js'
import type { RuntimeApi } from '../../src/api/runtime.js'
import type { ResolvConf } from '../../src/runtime/files.js'
import type { ContainerRecord } from '../../src/runtime/types.js'
import { silentLog } from '../harness/fakes.js'

function record (name: string, over: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    id: 'ab'.repeat(32), name, owner: 'cni', mode: 'network', netns: '/run/netns/x', ifname: 'eth0', networkId: 'cd'.repeat(32),
    address: '10.0.0.2', prefixLen: 24, gateway: '10.0.0.1', aliases: [], links: [], exposed: [], hostname: 'h', dns: [], dnsSearch: [], createdAt: '', ...over,
  }
}

function server (resolverOf?: (c: ContainerRecord) => ResolvConf): ReturnType<typeof buildApiServer> {
  const runtime: RuntimeApi = {
    attach: async (spec) => ({ container: record(spec.name), env: {}, warnings: [] }),
    detach: async () => true,
    containers: () => [record('x')],
    container: () => record('x'),
    createNetwork: async () => { throw new Error('not used') },
    removeNetwork: async () => undefined,
    networkName: () => 'front',
    setProcess: async () => { throw new Error('not used') },
    stopContainer: async () => { throw new Error('not used') },
  }
  if (resolverOf !== undefined) runtime.resolverOf = resolverOf
  const app = buildApiServer({ runtime: () => runtime } as unknown as AgentView, silentLog)
  t.teardown(() => app.close())
  return app
}

t.test('the resolver is in the attach answer and in the container view', async (t) => {
  const app = server((c) => ({ nameservers: c.gateway === undefined ? [] : [c.gateway], search: ['corp.test'], options: [] }))
  const added = await app.inject({ method: 'POST', url: '/v1/containers', payload: { name: 'cni-eth0-c0ffee', net: 'front', netns: '/run/netns/x', owner: 'cni' } })
  t.equal(added.statusCode, 201, added.body)
  t.same(added.json().container.resolver, { nameservers: ['10.0.0.1'], search: ['corp.test'], options: [] })
  t.match(added.json(), { container: { name: 'cni-eth0-c0ffee', networkName: 'front', dns: [] }, env: {}, warnings: [] }, 'the rest as before')
  const got = await app.inject({ method: 'GET', url: '/v1/containers/x' })
  t.same(got.json().resolver, { nameservers: ['10.0.0.1'], search: ['corp.test'], options: [] })
})

t.test('a runtime without resolverOf: no field, nothing else changes', async (t) => {
  const app = server()
  const got = await app.inject({ method: 'GET', url: '/v1/containers/x' })
  t.equal(got.statusCode, 200)
  t.notOk('resolver' in got.json())
})
