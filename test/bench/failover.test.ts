import t from 'tap'
import { firstEvents, lostEndpoints, parseSwitchMaster, sentinelEventReader, writesAgainAfter, type SentinelEvent, type WriteOp } from '../../bench/failover.js'

t.test('parseSwitchMaster reads the payload of the named master only', async (t) => {
  t.same(parseSwitchMaster('fy 192.0.2.5 6381 192.0.2.5 6382', 'fy'), { name: 'fy', from: '192.0.2.5:6381', to: '192.0.2.5:6382' })
  t.same(parseSwitchMaster('  fy 10.0.0.1 1 10.0.0.2 2\r', 'fy'), { name: 'fy', from: '10.0.0.1:1', to: '10.0.0.2:2' })
  for (const line of ['message', '+switch-master', '1', 'other 10.0.0.1 1 10.0.0.2 2', 'fy 10.0.0.1 x 10.0.0.2 2', 'fy 10.0.0.1 1 10.0.0.2']) {
    t.equal(parseSwitchMaster(line, 'fy'), undefined, line)
  }
})

const op = (writer: string, n: number, startAt: number, ackAt?: number): WriteOp =>
  ({ writer, endpointId: `${writer}e${n}`, ip: `10.0.0.${n}`, startAt, ...(ackAt === undefined ? {} : { ackAt }) })

t.test('writesAgainAfter: the first change begun after the kill, per writer', async (t) => {
  const ops = [op('w0', 1, 900, 950), op('w0', 2, 990, 2500), op('w0', 3, 1010, 2600), op('w0', 4, 2700, 2710),
    op('w1', 1, 1200, 1800), op('w1', 2, 1100), op('w2', 1, 500, 600)]
  // w0: the change begun before the kill (acknowledged after it) does not count; w1: its first one after the kill failed.
  t.same(writesAgainAfter(ops, 1000, ['w0', 'w1', 'w2']), [1600, NaN, NaN])
})

t.test('lostEndpoints: acknowledged changes missing from Redis, failed ones ignored', async (t) => {
  const ops = [op('w0', 1, 0, 1), op('w0', 2, 0, 1), op('w1', 1, 0)]
  t.same(lostEndpoints(ops, new Set(['w0e1'])).map((o) => o.endpointId), ['w0e2'])
  t.same(lostEndpoints(ops, new Set(['w0e1', 'w0e2'])), [])
})

t.test('sentinelEventReader: psubscribe output as events; firstEvents: the first of each after the kill, in order', async (t) => {
  const got: SentinelEvent[] = []
  const read = sentinelEventReader((e) => got.push(e))
  const lines = ['Reading messages... (press Ctrl-C to quit)', 'psubscribe', '*', '1',
    'pmessage', '*', '+sdown', 'master fy 192.0.2.5 6381', 'pmessage', '*', '__sentinel__:hello', 'x',
    'pmessage', '*', '+odown', 'master fy 192.0.2.5 6381 #quorum 2/2', 'pmessage', '*', '+sdown', 'again\r']
  lines.forEach((l, i) => read(l, i))
  t.same(got.map((e) => [e.name, e.payload, e.at]), [['+sdown', 'master fy 192.0.2.5 6381', 7], ['__sentinel__:hello', 'x', 11],
    ['+odown', 'master fy 192.0.2.5 6381 #quorum 2/2', 15], ['+sdown', 'again', 19]])
  t.same(firstEvents(got, 5), [{ name: '+sdown', ms: 2 }, { name: '+odown', ms: 10 }])
  t.same(firstEvents(got, 16), [{ name: '+sdown', ms: 3 }])
})
