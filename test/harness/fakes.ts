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

export class FakeFirewall implements FirewallDriver {
  networks = new Map<string, NatNetwork>()
  endpoints = new Map<string, NatEndpoint>()
  calls: string[] = []
  async reconcile (state: FirewallState): Promise<boolean> {
    this.calls.push('reconcile')
    this.networks = new Map(state.networks.map((n) => [n.id, n]))
    this.endpoints = new Map(state.endpoints.map((e) => [e.id, e]))
    return false
  }
  async addNetwork (net: NatNetwork): Promise<void> { this.calls.push(`addNetwork ${net.bridge}`); this.networks.set(net.id, net) }
  async removeNetwork (id: string): Promise<void> { this.calls.push(`removeNetwork ${id.slice(0, 12)}`); this.networks.delete(id) }
  async setEndpoint (ep: NatEndpoint): Promise<void> { this.calls.push(`setEndpoint ${ep.id.slice(0, 12)}`); this.endpoints.set(ep.id, ep) }
  async removeEndpoint (id: string): Promise<void> { this.calls.push(`removeEndpoint ${id.slice(0, 12)}`); this.endpoints.delete(id) }
  async teardown (): Promise<void> { this.calls.push('teardown'); this.networks.clear(); this.endpoints.clear() }
}

/** Publishes exactly what is asked; host port 0 becomes 40000+n; conflicts on equal host port/proto. */
export class FakePublisher implements PortPublisher {
  next = 40000
  async allocate (ep: EndpointRecord, requests: PortRequest[], others: EndpointRecord[]): Promise<PortBinding[]> {
    return requests.map((r) => {
      const hostPort = r.hostPort === 0 ? this.next++ : r.hostPort
      const clash = others.find((o) => o.ports.some((p) => p.proto === r.proto && p.hostPort === hostPort))
      if (clash) throw new FerryError('PORT_CONFLICT', `host port ${hostPort}/${r.proto} is already published by endpoint ${clash.id.slice(0, 12)}`)
      return { proto: r.proto, hostIp: r.hostIp, hostPort, hostPortEnd: hostPort + (r.containerPortEnd - r.containerPort), containerIp: ep.address, containerPort: r.containerPort, containerPortEnd: r.containerPortEnd }
    })
  }
}

export const silentLog = pino({ level: 'silent' })

export function fakeWorld () {
  const store = new MemoryStore()
  const links = new FakeLinkDriver()
  const firewall = new FakeFirewall()
  const ipam = new Ipam({ store, hostNetworks: async () => ['192.168.0.0/24'] })
  const driver = new NetworkDriver({ store, links, firewall, ipam, ports: new FakePublisher(), log: silentLog })
  return { store, links, firewall, ipam, driver }
}
