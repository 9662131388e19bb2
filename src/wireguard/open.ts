/**
 * The WireGuard mesh of an agent with a cluster: detection, this host's keys
 * (made once, kept in the state directory), its tunnel address and port.
 * Undefined when neither the kernel module nor wireguard-go is there
 * (encrypted overlays are then refused with a clear error).
 */
import type { Logger } from 'pino'
import type { LinkDriver } from '../kernel/types.js'
import { detectWireGuard, UserspaceWireGuard } from './device.js'
import path from 'node:path'
import { KEY_FILE, loadOrCreateKeyPair, writeKeyFile } from './keys.js'
import { WireGuardMesh } from './mesh.js'
import { DEFAULT_TUNNEL_RANGE, DEFAULT_WG_PORT, checkEndpoint, checkPort, tunnelAddress } from './plan.js'

/** `links`: the agent's LinkDriver (one rtnetlink socket per agent). */
export async function openWireGuardMesh (opts: { links: LinkDriver, hostId: string, stateDir: string, port?: number, endpoint?: string, range?: string, log?: Logger }): Promise<WireGuardMesh | undefined> {
  const d = await detectWireGuard()
  if (d.userspace === undefined) {
    opts.log?.warn({ kernelModule: d.kernelModule }, 'wireguard-go is not installed: encrypted overlays (-o ferry.encrypt=wireguard) are refused')
    return undefined
  }
  const range = opts.range ?? DEFAULT_TUNNEL_RANGE
  const keys = await loadOrCreateKeyPair(opts.stateDir)
  const mesh = new WireGuardMesh({
    hostId: opts.hostId, keys, port: checkPort(opts.port ?? DEFAULT_WG_PORT), tunnel: tunnelAddress(opts.hostId, range), range,
    ...(opts.endpoint !== undefined ? { endpoint: checkEndpoint(opts.endpoint, '--wireguard-endpoint') } : {}),
    driver: new UserspaceWireGuard({ links: opts.links }), log: opts.log,
    saveKey: (privateKey) => writeKeyFile(path.join(opts.stateDir, KEY_FILE), privateKey),
  })
  await mesh.adopt()
  opts.log?.info({ mode: 'userspace', kernelModule: d.kernelModule, device: mesh.device, tunnel: mesh.info().tunnel }, 'WireGuard ready for encrypted overlays')
  return mesh
}
