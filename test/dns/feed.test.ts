/**
 * The agent's DNS feed (src/dns/feed.ts) over fakes of the watcher, the DNS server, the
 * peer sync's vetted view and the overlay's publish: local records and listen addresses,
 * remote records from the one subscription, names published once per change.
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import { DnsFeed, type FeedOverlay, type NameWatcher } from '../../src/dns/feed.js'
import { AgentRecordSource } from '../../src/dns/source.js'
import type { RemoteListener } from '../../src/vxlan/peers.js'
import type { ClusterEndpoint } from '../../src/cluster/types.js'
import { EndpointTable } from '../../src/cluster/endpoints.js'
import type { ContainerNames } from '../../src/docker/watch.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'
import { silentLog } from '../harness/fakes.js'
import { until } from '../harness/until.js'

const BR = { id: 'b'.repeat(64), gateway: '10.1.0.1' } as NetworkRecord
const OV = { id: 'o'.repeat(64), gateway: '10.9.0.1', overlay: { name: 'ov', vni: 4097 } } as NetworkRecord
const ep = (id: string, networkId: string, address: string) => ({ id, networkId, address, mac: '02:42:0a:00:00:02', ports: [] }) as unknown as EndpointRecord
const named = (name: string, endpointId: string, networkId: string, aliases: string[] = []): ContainerNames =>
  ({ containerId: `c-${name}`, name, endpoints: new Map([[endpointId, { networkId, aliases }]]), links: [] })
const remote = (id: string, ip: string, names: string[], hostId = 'h2'): ClusterEndpoint => ({ endpointId: id, ip, mac: '02:42:0a:09:00:09', hostId, vtep: '192.168.50.2', names })

class FakeWatcher extends EventEmitter implements NameWatcher {
  names: ContainerNames[] = []
  started = 0
  stopped = 0
  all (): ContainerNames[] { return this.names }
  start (): void { this.started++ }
  stop (): void { this.stopped++ }
}

function world (opts: { overlay?: boolean } = {}) {
  const networks: NetworkRecord[] = [BR]
  const endpoints: EndpointRecord[] = []
  const localNames: ContainerNames[] = []
  const watcher = new FakeWatcher()
  const records = new AgentRecordSource()
  const listens: string[][] = []
  const server = { setAddresses: async (a: ReadonlyArray<{ ip: string, port: number }>) => { listens.push(a.map((x) => `${x.ip}:${x.port}`)); return [...a] } }
  const listeners = new Set<RemoteListener>()
  const view = new Map<string, ClusterEndpoint[]>()
  let tables = new Map<string, EndpointTable>()
  const published: string[] = []
  let failPublish = false
  let attempts = 0
  let reads = 0
  const overlay: FeedOverlay = {
    cluster: { hostId: 'h1' },
    peers: {
      onRemoteChange: (fn: RemoteListener) => { listeners.add(fn); return () => { listeners.delete(fn) } },
      // As the peer sync: its tables themselves, which it changes before telling (with what each endpoint was).
      remoteTables: () => {
        reads++
        tables = new Map([...view].map(([k, eps]) => { const tb = new EndpointTable(); for (const e of eps) tb.set(e); return [k, tb] }))
        return tables
      },
    },
    publish: async (o, id, ip, _mac, names, _ip6, ports) => {
      attempts++
      if (failPublish) throw new Error('store down')
      published.push(`${o} ${id} ${ip} ${(names ?? []).join(',')}${ports !== undefined && ports.length > 0 ? ` ${ports.map((p) => `${p.port}->${p.hostPort}/${p.proto}`).join(',')}` : ''}`)
    },
  }
  const feed = new DnsFeed({
    records, server, watcher, port: 53, log: silentLog,
    networks: () => networks, endpoints: () => endpoints, localNames: () => localNames,
    ...(opts.overlay === true ? { overlay } : {}),
  })
  return {
    feed, records, watcher, networks, endpoints, localNames, listens, listeners, view, published,
    reads: () => reads, attempts: () => attempts, failPublishing: (f: boolean) => { failPublish = f },
    push: (changes?: Parameters<RemoteListener>[0]) => {
      const told = changes?.map((c) => {
        const tb = tables.get(c.overlay)
        const previous = tb?.get(c.endpointId)
        if (c.endpoint) tb?.set(c.endpoint)
        else tb?.delete(c.endpointId)
        return previous ? { ...c, previous } : c
      })
      for (const fn of listeners) fn(told)
    },
  }
}

const names = (records: AgentRecordSource) => records.records().map((r) => `${r.network.startsWith('overlay:') ? r.network : r.network.slice(0, 1)} ${r.name} ${r.ip}`).sort()

t.test('local records and listen addresses follow the driver and the names', async (t) => {
  const w = world()
  w.endpoints.push(ep('e1', BR.id, '10.1.0.2'))
  w.watcher.names = [named('web', 'e1', BR.id)]
  await w.feed.start()
  t.equal(w.watcher.started, 1)
  t.same(names(w.records), ['b web 10.1.0.2'])
  t.same(w.listens, [['10.1.0.1:53']])
  t.same(w.records.clientNetworks('10.1.0.2'), [BR.id])

  // A container attached without the engine, on a second network: one sync for a burst of changes.
  const other = { id: 'c'.repeat(64), gateway: '10.2.0.1' } as NetworkRecord
  w.networks.push(other)
  w.endpoints.push(ep('e2', other.id, '10.2.0.2'))
  w.localNames.push(named('db', 'e2', other.id))
  w.feed.queueSync()
  w.feed.queueSync()
  w.watcher.emit('change')
  await until('the sync ran', () => w.listens.length > 1)
  t.same(names(w.records), ['b web 10.1.0.2', 'c db 10.2.0.2'])
  await new Promise((resolve) => setImmediate(resolve))
  t.same(w.listens, [['10.1.0.1:53'], ['10.1.0.1:53', '10.2.0.1:53']], 'three requests, one sync')

  w.feed.stop()
  t.equal(w.watcher.stopped, 1)
  w.feed.queueSync()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(w.listens.length, 2, 'nothing after stop')
})

t.test('remote names come from the peer sync\'s view, through one subscription', async (t) => {
  const w = world({ overlay: true })
  w.networks.push(OV)
  w.view.set('ov', [remote('r1', '10.9.0.7', ['far']), remote('mine', '10.9.0.2', ['self'], 'h1')])
  w.view.set('not-here', [remote('x', '10.8.0.7', ['elsewhere'])])
  await w.feed.start()
  t.equal(w.listeners.size, 1, 'subscribed once')
  t.equal(w.reads(), 1, 'the overlay read once at the first sync')
  t.same(names(w.records), ['overlay:ov far 10.9.0.7'], 'other hosts\' endpoints of overlays this host runs')

  w.feed.queueSync()
  await until('a second sync', () => w.listens.length > 1)
  t.equal(w.reads(), 1, 'an overlay already read is not read again: pushes follow it')

  w.push([{ overlay: 'ov', endpointId: 'r2', endpoint: remote('r2', '10.9.0.8', ['near']) }, { overlay: 'ov', endpointId: 'r1' }])
  t.same(names(w.records), ['overlay:ov near 10.9.0.8'], 'a pushed change patches the endpoints it names')
  t.equal(w.reads(), 1)

  w.view.set('ov', [remote('r3', '10.9.0.9', ['after'])])
  w.push(undefined)
  t.equal(w.reads(), 2, '"anything may have changed": read the view again')
  t.same(names(w.records), ['overlay:ov after 10.9.0.9'])

  // This host leaves the overlay: a full read no longer holds its records.
  w.networks.splice(w.networks.indexOf(OV), 1)
  w.push(undefined)
  t.same(names(w.records), [])

  w.feed.stop()
  t.equal(w.listeners.size, 0, 'unsubscribed')
})

t.test('this host\'s overlay names are published once per change; a failure is sent again', async (t) => {
  const w = world({ overlay: true })
  w.networks.push(OV)
  w.endpoints.push(ep('e1', OV.id, '10.9.0.2'), ep('e2', BR.id, '10.1.0.2'))
  w.watcher.names = [named('web', 'e1', OV.id, ['www']), named('db', 'e2', BR.id)]
  await w.feed.start()
  t.same(w.published, ['ov e1 10.9.0.2 web,www'], 'overlay endpoints only')
  w.feed.queueSync()
  await until('a second sync', () => w.listens.length > 1)
  t.same(w.published, ['ov e1 10.9.0.2 web,www'], 'unchanged names are not sent again')

  w.watcher.names = [named('web', 'e1', OV.id, ['www', 'api']), named('db', 'e2', BR.id)]
  w.failPublishing(true)
  w.feed.queueSync()
  await until('the changed names tried', () => w.attempts() > 1)
  t.same(w.published, ['ov e1 10.9.0.2 web,www'], 'the store refused it')
  w.failPublishing(false)
  w.feed.queueSync()
  await until('the failed publication sent again', () => w.published.length > 1)
  t.same(w.published, ['ov e1 10.9.0.2 web,www', 'ov e1 10.9.0.2 web,www,api'])
  w.feed.stop()
})

t.test('this host\'s published ports go with its overlay names, once per change (SRV on the other hosts)', async (t) => {
  const w = world({ overlay: true })
  w.networks.push(OV)
  const e1 = ep('e1', OV.id, '10.9.0.2')
  w.endpoints.push(e1)
  w.watcher.names = [named('web', 'e1', OV.id)]
  await w.feed.start()
  t.same(w.published, ['ov e1 10.9.0.2 web'])
  e1.ports = [{ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '10.9.0.2', containerPort: 80, containerPortEnd: 80 }]
  w.feed.queueSync()
  await until('the ports published', () => w.published.length > 1)
  w.feed.queueSync()
  await until('a third sync', () => w.listens.length > 2)
  t.same(w.published, ['ov e1 10.9.0.2 web', 'ov e1 10.9.0.2 web 80->8080/tcp'], 'published once')
  w.feed.stop()
})

t.test('a sync that fails is logged, and the next one runs', async (t) => {
  const w = world()
  const logged: string[] = []
  const log = { ...silentLog, error: (_o: unknown, msg: string) => { logged.push(msg) }, warn: () => undefined } as unknown as typeof silentLog
  let broken = false
  const feed = new DnsFeed({
    records: w.records, server: { setAddresses: async (a) => { w.listens.push(a.map((x) => x.ip)); return [...a] } }, watcher: w.watcher, port: 53, log,
    networks: () => { if (broken) throw new Error('store being rewritten'); return w.networks }, endpoints: () => w.endpoints, localNames: () => [],
  })
  await feed.start()
  broken = true
  feed.queueSync()
  await until('the failure logged', () => logged.length > 0)
  t.same(logged, ['updating the DNS records failed'])
  broken = false
  feed.queueSync()
  await until('the next sync ran', () => w.listens.length > 1)
  t.same(w.listens, [['10.1.0.1'], ['10.1.0.1']])
  feed.stop()
})
