/**
 * The WireGuard mesh of an agent with a cluster: detection (the kernel module
 * where it exists, else wireguard-go), this host's keys (made once, kept in
 * the state directory), its tunnel address and port. Undefined when neither
 * the kernel module nor wireguard-go is there (encrypted overlays are then
 * refused with a clear error).
 */
import type { Logger } from 'pino'
import type { LinkDriver } from '../kernel/types.js'
import { detectWireGuard, KernelWireGuard, UserspaceWireGuard, type DetectOptions, type WireGuardDriver } from './device.js'
import { WireGuardGenl } from '../kernel/wireguard-genl.js'
import path from 'node:path'
import { KEY_FILE, loadOrCreateKeyPair, writeKeyFile } from './keys.js'
import { WireGuardMesh } from './mesh.js'
import { DEFAULT_TUNNEL_RANGE, DEFAULT_WG_PORT, checkEndpoint, checkPort, tunnelAddress } from './plan.js'

/** `links`: the agent's LinkDriver (one rtnetlink socket per agent). */
export async function openWireGuardMesh (opts: { links: LinkDriver, hostId: string, stateDir: string, port?: number, endpoint?: string, range?: string, log?: Logger, detect?: DetectOptions }): Promise<WireGuardMesh | undefined> {
  const d = await detectWireGuard(opts.detect)
  if (d.mode === undefined) {
    opts.log?.warn('neither the WireGuard kernel module nor wireguard-go is there: encrypted overlays (-o ferry.encrypt=wireguard) are refused')
    return undefined
  }
  const driver: WireGuardDriver = d.mode === 'kernel' ? new KernelWireGuard(opts.links, await WireGuardGenl.open()) : new UserspaceWireGuard({ links: opts.links })
  const range = opts.range ?? DEFAULT_TUNNEL_RANGE
  const keys = await loadOrCreateKeyPair(opts.stateDir)
  const mesh = new WireGuardMesh({
    hostId: opts.hostId, keys, port: checkPort(opts.port ?? DEFAULT_WG_PORT), tunnel: tunnelAddress(opts.hostId, range), range,
    ...(opts.endpoint !== undefined ? { endpoint: checkEndpoint(opts.endpoint, '--wireguard-endpoint') } : {}),
    driver, log: opts.log,
    saveKey: (privateKey) => writeKeyFile(path.join(opts.stateDir, KEY_FILE), privateKey),
  })
  await mesh.adopt()
  opts.log?.info({ mode: d.mode, userspace: d.userspace, device: mesh.device, tunnel: mesh.info().tunnel }, 'WireGuard ready for encrypted overlays')
  return mesh
}
