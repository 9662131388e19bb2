/** A host's overlay side for unit tests: a recording fake kernel with the underlay address, and a started PeerSync over `store`. */
import type { ClusterStore } from '../../src/cluster/types.js'
import { FakeLinkDriver } from './kernel-fake.js'
import { KernelOverlayDataPlane } from '../../src/vxlan/apply.js'
import { PeerSync, type PeerSyncOptions } from '../../src/vxlan/peers.js'
import type { TeardownHost } from './netns.js'

export interface PeerHost<S extends ClusterStore = ClusterStore> { store: S, links: FakeLinkDriver, sync: PeerSync }

export async function peerHost<S extends ClusterStore> (t: TeardownHost, store: S, vtep: string, opts: Partial<PeerSyncOptions> = {}): Promise<PeerHost<S>> {
  const links = new FakeLinkDriver({ links: [{ name: 'eth0', mtu: 1500, up: true }] })
  await links.addAddress('eth0', `${vtep}/24`)
  const dp = new KernelOverlayDataPlane(links, { batch: null })
  const sync = new PeerSync({ store, dataPlane: dp, fullReconcileMs: 0, retryMs: 20, ...opts })
  sync.start()
  t.teardown(() => sync.stop())
  return { store, links, sync }
}
