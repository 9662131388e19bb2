/** The overlay service's teardown: leaving an overlay is best effort. */
import t from 'tap'
import { ClusterOverlay } from '../../src/overlay/service.js'
import type { ClusterStore } from '../../src/cluster/types.js'
import type { PeerSync } from '../../src/vxlan/peers.js'
import { silentLog } from '../harness/fakes.js'

function overlayWith (peers: Partial<PeerSync>, cluster: Partial<ClusterStore>): ClusterOverlay {
  return new ClusterOverlay(cluster as ClusterStore, peers as PeerSync, silentLog)
}

t.test('leaving an overlay tells the cluster even when the devices could not be removed', async (t) => {
  const steps: string[] = []
  const o = overlayWith(
    { detach: async (name: string) => { steps.push(`devices ${name}`); throw new Error('EBUSY') } },
    { removeOverlayHost: async (name: string) => { steps.push(`cluster ${name}`); return { deleted: true } } })
  await t.rejects(o.detach('ov1'), { message: 'removing the devices of overlay ov1: EBUSY' })
  t.same(steps, ['devices ov1', 'cluster ov1'])
})

t.test('both failing: one sentence names both', async (t) => {
  const o = overlayWith(
    { detach: async () => { throw new Error('EBUSY') } },
    { removeOverlayHost: async () => { throw new Error('NOSCRIPT') } })
  await t.rejects(o.detach('ov1'), {
    message: 'leaving overlay ov1 was incomplete: removing the devices of overlay ov1: EBUSY; telling the cluster this host left overlay ov1: NOSCRIPT',
  })
})
