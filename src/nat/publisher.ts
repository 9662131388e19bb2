/**
 * Host-port allocation for one endpoint against every other endpoint's
 * publications and the host's own sockets: reads /proc (src/nat/hostports.ts)
 * only when a request needs a free port picked, then runs the pure allocator
 * (src/nat/ports.ts). The caller serializes calls (one global lock).
 */
import type { EndpointRecord, PortBinding, PortRequest } from '../model/types.js'
import { readHostPorts, type HostPorts } from './hostports.js'
import { allocatePorts, type PortUse } from './ports.js'

export class HostPortPublisher {
  constructor (private readonly hostPorts: () => Promise<HostPorts> = readHostPorts) {}

  async allocate (ep: EndpointRecord, requests: PortRequest[], others: EndpointRecord[]): Promise<PortBinding[]> {
    if (requests.length === 0) return []
    const used: PortUse[] = others.flatMap((o) => o.ports.map((binding) => ({ endpointId: o.id, binding })))
    // Only a request that leaves ferry a choice (port 0, or a host range wider than the
    // container's) needs the host's sockets: a fixed port or an N:N range is taken as asked.
    const needsHost = requests.some((r) => r.hostPort === 0 || r.hostPortEnd - r.hostPort !== r.containerPortEnd - r.containerPort)
    const host: HostPorts = needsHost
      ? await this.hostPorts()
      : { range: { lo: 1, hi: 65535 }, reserved: new Set(), inUse: () => false }
    return allocatePorts(requests, used, host.range, host.reserved, host.inUse, {
      ...(ep.address !== undefined ? { containerIp: ep.address } : {}), ...(ep.address6 !== undefined ? { containerIp6: ep.address6 } : {}), previous: ep.ports,
    })
  }
}
