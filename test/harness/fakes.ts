/** Recording fakes of the firewall and port publisher, for unit tests of the driver and the plugin routes. */
import { pino } from 'pino'
import type { FirewallDriver, FirewallState, NatEndpoint, NatNetwork } from '../../src/nat/types.js'
import type { EndpointRecord, PortBinding, PortRequest } from '../../src/model/types.js'
import type { PortPublisher } from '../../src/driver/network.js'
import { FakeLinkDriver } from './kernel-fake.js'
import { MemoryStore } from '../../src/store/store.js'
import { Ipam } from '../../src/ipam/ipam.js'
import { NetworkDriver } from '../../src/driver/network.js'
import { FerryError } from '../../src/errors/errors.js'
import { DisabledFirewall } from '../../src/nat/disabled.js'
import type { OverlayService } from '../../src/overlay/service.js'

export class FakeFirewall implements FirewallDriver {
  networks = new Map<string, NatNetwork>()
  endpoints = new Map<string, NatEndpoint>()
  calls: string[] = []
  /** The revision each reconcile was given. */
  revisions: Array<number | undefined> = []
  async reconcile (state: FirewallState): Promise<boolean> {
    this.calls.push('reconcile')
    this.revisions.push(state.revision)
    this.networks = new Map(state.networks.map((n) => [n.id, n]))
    this.endpoints = new Map(state.endpoints.map((e) => [e.id, e]))
    return false
  }
  async addNetwork (net: NatNetwork): Promise<void> { this.call(`addNetwork ${net.bridge}`); this.networks.set(net.id, net) }
  async removeNetwork (id: string): Promise<void> { this.call(`removeNetwork ${id.slice(0, 12)}`); this.networks.delete(id) }
  async setEndpoint (ep: NatEndpoint): Promise<void> { this.call(`setEndpoint ${ep.id.slice(0, 12)}`); this.endpoints.set(ep.id, ep) }
  async removeEndpoint (id: string): Promise<void> { this.call(`removeEndpoint ${id.slice(0, 12)}`); this.endpoints.delete(id) }
  async teardown (): Promise<void> { this.call('teardown'); this.networks.clear(); this.endpoints.clear() }

  /** Calls (as `calls` records them, `removeNetwork aaaaaaaaaaaa`) that fail once, changing nothing. */
  private readonly failures = new Map<string, Error>()
  failOn (call: string, error = new Error(`injected failure of ${call}`)): void { this.failures.set(call, error) }
  private call (what: string): void {
    this.calls.push(what)
    const err = this.failures.get(what)
    if (err === undefined) return
    this.failures.delete(what)
    throw err
  }
}

/** Publishes exactly what is asked; host port 0 becomes 40000+n; conflicts on equal host port/proto. */
export class FakePublisher implements PortPublisher {
  next = 40000
  async allocate (ep: EndpointRecord, requests: PortRequest[], others: EndpointRecord[]): Promise<PortBinding[]> {
    return requests.map((r) => {
      const hostPort = r.hostPort === 0 ? this.next++ : r.hostPort
      const clash = others.find((o) => o.ports.some((p) => p.proto === r.proto && p.hostPort === hostPort))
      if (clash) throw new FerryError('PORT_CONFLICT', `host port ${hostPort}/${r.proto} is already published by endpoint ${clash.id.slice(0, 12)}`)
      return { proto: r.proto, hostIp: r.hostIp, hostPort, hostPortEnd: hostPort + (r.containerPortEnd - r.containerPort), containerIp: ep.address ?? ep.address6 ?? '', containerPort: r.containerPort, containerPortEnd: r.containerPortEnd }
    })
  }
}

export const silentLog = pino({ level: 'silent' })

/**
 * A driver with `overlay` as its cluster, on a store (a MemoryStore unless given), and a pool of
 * 10.60.0.0/24 with its gateway allocated: what CreateNetwork of overlay ov1 needs (`createOverlay`).
 */
export async function overlayWorld (overlay: OverlayService, store: MemoryStore = new MemoryStore()) {
  const links = new FakeLinkDriver()
  await links.createBridge('fyo-ov1')
  const ipam = new Ipam({ store, hostNetworks: async () => [] })
  const driver = new NetworkDriver({ store, links, firewall: new DisabledFirewall(), ipam, ports: new FakePublisher(), overlay, log: silentLog })
  const pool = await ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.60.0.0/24', subPool: '', options: {}, v6: false })
  await ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  const createOverlay = (id: string): Promise<void> =>
    driver.createNetwork({ id, subnet: '10.60.0.0/24', gatewayCidr: '10.60.0.1/24', generic: { 'ferry.overlay': 'ov1' }, internal: false, ipv6: false, extraIpv4Data: 0 })
  return { store, links, ipam, driver, poolId: pool.poolId, createOverlay }
}

export function fakeWorld () {
  const store = new MemoryStore()
  const links = new FakeLinkDriver()
  const firewall = new FakeFirewall()
  const ipam = new Ipam({ store, hostNetworks: async () => ['192.168.0.0/24'] })
  const driver = new NetworkDriver({ store, links, firewall, ipam, ports: new FakePublisher(), log: silentLog })
  return { store, links, firewall, ipam, driver }
}
