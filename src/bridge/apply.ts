/**
 * The thin executor of the bridge plan: runs LinkOps through the LinkDriver, in order.
 * With an undo stack, each link it creates is deleted again when a later step fails.
 */
import type { LinkDriver } from '../kernel/types.js'
import type { UndoStack } from '../util/undo.js'
import type { LinkOp } from './plan.js'

export async function applyLinkOps (links: LinkDriver, ops: readonly LinkOp[], undo?: UndoStack): Promise<void> {
  for (const op of ops) {
    switch (op.op) {
      case 'createBridge':
        await links.createBridge(op.name, { mtu: op.mtu, mac: op.mac })
        // Only once it is ours: a create that failed deletes nothing.
        undo?.push(`delete bridge ${op.name}`, () => links.deleteLink(op.name))
        break
      case 'createVeth':
        await links.createVeth(op.name, op.peer, { mtu: op.mtu, peerMac: op.peerMac })
        undo?.push(`delete veth ${op.name}`, () => links.deleteLink(op.name))
        break
      case 'setMtu': await links.setMtu(op.name, op.mtu); break
      case 'addAddress': await links.addAddress(op.name, op.cidr); break
      case 'setUp': await links.setUp(op.name, true); break
      case 'setMaster': await links.setMaster(op.name, op.master); break
      case 'setHairpin': await links.setHairpin(op.name, true); break
      case 'setIpv6Conf': await links.setIpv6Conf(op.name, op.key, op.value); break
      case 'forgetMac': await links.deleteFdb({ dev: op.dev, mac: op.mac, master: true }); break
      case 'deleteLink': await links.deleteLink(op.name); break
    }
  }
}
