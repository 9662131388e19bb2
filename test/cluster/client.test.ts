import t, { type Test } from 'tap'
import { ClusterClient } from '../../src/cluster/client.js'
import { FerryError } from '../../src/errors/errors.js'
import { MemoryBackend, MemoryCluster } from '../harness/cluster-memory.js'

/**
 * A connection that dies under a command: the command fails as unavailable while the store still
 * looks up (ioredis' "Stream isn't writeable" right after a Sentinel failover's kill), and only
 * then does the connection say it is down; the store comes back a little later.
 */
class DyingBackend extends MemoryBackend {
  failures = 0
  constructor (private readonly lab: MemoryCluster, private readonly downAfterMs: number) { super(lab) }
  override allocate (...args: Parameters<MemoryBackend['allocate']>): ReturnType<MemoryBackend['allocate']> {
    if (this.failures === 0) {
      this.failures++
      if (this.downAfterMs >= 0) {
        setTimeout(() => {
          this.lab.stop()
          setTimeout(() => this.lab.start(), 40)
        }, this.downAfterMs)
      }
      return Promise.reject(new FerryError('CLUSTER_UNAVAILABLE', 'the cluster store (allocate) failed: Stream isn\'t writeable and enableOfflineQueue options is false'))
    }
    return super.allocate(...args)
  }
}

async function client (t: Test, backend: MemoryBackend, waitMs: number): Promise<ClusterClient> {
  const c = new ClusterClient(backend, { hostId: 'h1', advertiseAddr: '192.168.50.1', heartbeatMs: 0, unavailableWaitMs: waitMs })
  t.teardown(() => c.close())
  await c.start()
  await c.defineOverlay({ name: 'ov1', subnet: '10.30.0.0/16', gateway: '10.30.0.1' })
  return c
}

t.test('a command that fails as unavailable before the store notices the drop waits for it to come back (--cluster-wait)', async (t) => {
  const lab = new MemoryCluster()
  const backend = new DyingBackend(lab, 30)
  const c = await client(t, backend, 5000)
  const ip = await c.allocateAddress('ov1')
  t.match(ip, /^10\.30\./, 'the allocation is made once the store is back')
  t.equal(backend.failures, 1, 'after one failure')
})

t.test('without --cluster-wait it fails at once, as before', async (t) => {
  const lab = new MemoryCluster()
  const c = await client(t, new DyingBackend(lab, 30), 0)
  await t.rejects(c.allocateAddress('ov1'), { code: 'CLUSTER_UNAVAILABLE', message: /Stream isn't writeable/ })
})

t.test('an unavailable error while the store stays up is given back after the notice window, not waited on forever', async (t) => {
  const lab = new MemoryCluster()
  const backend = new DyingBackend(lab, -1)
  const c = await client(t, backend, 5000)
  await t.rejects(c.allocateAddress('ov1'), { code: 'CLUSTER_UNAVAILABLE', message: /Stream isn't writeable/ })
  t.equal(backend.failures, 1)
})
