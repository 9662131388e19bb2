/** The thin executor of the bridge plan: runs LinkOps through the LinkDriver. */
import type { LinkDriver } from '../kernel/types.js'
import type { LinkOp } from './plan.js'

export async function applyLinkOps (links: LinkDriver, ops: LinkOp[]): Promise<void> {
  for (const op of ops) {
    switch (op.op) {
      case 'createBridge': await links.createBridge(op.name, { mtu: op.mtu, mac: op.mac }); break
      case 'setMtu': await links.setMtu(op.name, op.mtu); break
      case 'addAddress': await links.addAddress(op.name, op.cidr); break
      case 'setUp': await links.setUp(op.name, true); break
      case 'setMaster': await links.setMaster(op.name, op.master); break
      case 'setHairpin': await links.setHairpin(op.name, true); break
      case 'setIpv6Conf': await links.setIpv6Conf(op.name, op.key, op.value); break
      case 'deleteLink': await links.deleteLink(op.name); break
    }
  }
}
