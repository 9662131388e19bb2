/**
 * The engine watcher against a fake engine on a unix socket: reconnects back off
 * (doubling with jitter to a cap, reset after a healthy stream), and container
 * inspections never overlap (triggers that arrive meanwhile coalesce into one
 * follow-up). Fake timers; assertions on the order and number of requests.
 */
import t, { type Test } from 'tap'
import http from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { EngineClient } from '../../src/docker/client.js'
import { Backoff, EngineWatcher, type WatchTimers } from '../../src/docker/watch.js'
import { until as untilChecked } from '../harness/until.js'

const log = pino({ level: 'silent' })

/** Let pending I/O and promise callbacks run until `cond` holds (no wall-clock pause between checks). */
const until = (cond: () => boolean): Promise<void> => untilChecked(cond.toString(), cond, { everyMs: 0 })

class FakeTimers implements WatchTimers {
  clock = 0
  readonly waiting: Array<{ fn: () => void, ms: number }> = []
  readonly delays: number[] = []
  set (fn: () => void, ms: number): unknown { this.waiting.push({ fn, ms }); this.delays.push(ms); return fn }
  clear (h: unknown): void { const i = this.waiting.findIndex((w) => w.fn === h); if (i >= 0) this.waiting.splice(i, 1) }
  now (): number { return this.clock }
  /** Run the one pending retry. */
  fire (): void { const w = this.waiting.shift(); if (!w) throw new Error('no timer pending'); w.fn() }
}

interface FakeEngine {
  socket: string
  /** Requests in order: 'events', 'list', or a container id (an inspection). */
  log: string[]
  events: 'fail' | 'hold'
  streams: http.ServerResponse[]
  containers: string[]
  /** Inspections answered only when released. */
  held: Array<() => void>
  inflight: number
  maxInflight: number
  close (): Promise<void>
}

/** A fake engine on a unix socket (in a short temp path: socket paths are limited to 107 bytes). */
async function fakeEngine (t: Test, containers: string[]): Promise<FakeEngine> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-watch-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const socket = path.join(dir, 'engine.sock')
  const e: FakeEngine = {
    socket, log: [], events: 'fail', streams: [], containers, held: [], inflight: 0, maxInflight: 0, close: async () => undefined,
  }
  const server = http.createServer((req, res) => {
    const url = req.url ?? ''
    if (url.startsWith('/v1.41/events')) {
      e.log.push('events')
      if (e.events === 'fail') { res.writeHead(500).end('down'); return }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.flushHeaders()
      e.streams.push(res)
      return
    }
    if (url === '/v1.41/containers/json') {
      e.log.push('list')
      res.end(JSON.stringify(e.containers.map((Id) => ({ Id }))))
      return
    }
    const m = /^\/v1\.41\/containers\/([^/]+)\/json$/.exec(url)
    if (m) {
      const id = decodeURIComponent(m[1]!)
      e.log.push(id)
      e.inflight++
      e.maxInflight = Math.max(e.maxInflight, e.inflight)
      e.held.push(() => {
        e.inflight--
        res.end(JSON.stringify({ Id: id, Name: `/${id}`, NetworkSettings: { Networks: {} } }))
      })
      return
    }
    res.writeHead(404).end('{}')
  })
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  e.close = () => new Promise((resolve) => { for (const s of e.streams) s.destroy(); server.closeAllConnections(); server.close(() => resolve()) })
  return e
}

/** Answer held inspections, one at a time, until the watcher is idle (`done`). */
async function releaseUntil (e: FakeEngine, done: () => boolean): Promise<void> {
  while (!done()) {
    await until(() => e.held.length > 0 || done())
    e.held.shift()?.()
  }
}

t.test('backoff doubles from 1 s to 30 s with jitter, and starts over after a reset', async (t) => {
  const high = new Backoff({ random: () => 0.999999 })
  t.same(Array.from({ length: 8 }, () => high.next()), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
  const low = new Backoff({ random: () => 0 })
  t.same(Array.from({ length: 7 }, () => low.next()), [500, 1000, 2000, 4000, 8000, 15000, 15000], 'at least half of each step')
  low.reset()
  t.equal(low.next(), 500)
})

t.test('a failing engine is retried with growing delays; a healthy stream resets them', async (t) => {
  const e = await fakeEngine(t, [])
  const timers = new FakeTimers()
  const w = new EngineWatcher(`unix://${e.socket}`, new EngineClient(`unix://${e.socket}`), log, { timers, backoff: { random: () => 0.999999, healthyMs: 60_000 } })
  t.teardown(async () => { w.stop(); await e.close() })
  w.start()
  for (let i = 1; i <= 7; i++) {
    await until(() => timers.waiting.length === 1)
    if (i < 7) timers.fire()
  }
  t.same(timers.delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000], 'one retry per failure, doubling to the cap')
  t.same(e.log, Array(7).fill('events'), 'no container was read while the engine failed')

  // The engine comes back: the stream stays up for a healthy period, then ends.
  e.events = 'hold'
  timers.fire()
  await until(() => e.streams.length === 1 && w.counts.fullReads === 1)
  timers.clock += 60_000
  e.streams[0]!.end()
  await until(() => timers.waiting.length === 1)
  t.equal(timers.delays.at(-1), 1000, 'after a healthy stream the delay starts over')
  // A stream that dies at once does not count as healthy.
  timers.fire()
  await until(() => e.streams.length === 2)
  e.streams[1]!.end()
  await until(() => timers.waiting.length === 1)
  t.equal(timers.delays.at(-1), 2000)
  t.equal(w.counts.connects, 9)
})

t.test('one inspection at a time: reconnects and events during a full read coalesce into one follow-up', async (t) => {
  const e = await fakeEngine(t, ['c1', 'c2', 'c3', 'c4'])
  e.events = 'hold'
  const timers = new FakeTimers()
  const w = new EngineWatcher(`unix://${e.socket}`, new EngineClient(`unix://${e.socket}`), log, { timers })
  t.teardown(async () => { w.stop(); await e.close() })
  w.start()
  // The first full read is at its first inspection, held.
  await until(() => e.held.length === 1)
  const stream = e.streams[0]!
  for (const [id, action] of [['c2', 'start'], ['c3', 'die'], ['c2', 'restart']] as const) {
    stream.write(JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id } }) + '\n')
  }
  // The stream drops and comes back twice while the read is still held: two more full reads asked.
  for (let i = 0; i < 2; i++) {
    e.streams.at(-1)!.end()
    await until(() => timers.waiting.length === 1)
    timers.fire()
    await until(() => e.streams.length === i + 2)
  }
  await releaseUntil(e, () => e.log.filter((x) => x === 'list').length === 2 && e.held.length === 0 && e.inflight === 0 && e.log.length >= 13)
  await until(() => !(w as unknown as { draining: boolean }).draining)
  t.same(e.log.filter((x) => x !== 'events'), ['list', 'c1', 'c2', 'c3', 'c4', 'list', 'c1', 'c2', 'c3', 'c4'],
    'the events and the second reconnect are covered by one follow-up full read')
  t.equal(e.maxInflight, 1, 'never two inspections at once')
  t.same(w.all().map((c) => c.name).sort(), ['c1', 'c2', 'c3', 'c4'])

  // Events alone: while one inspection is held, repeated events for a container ask for it once.
  const before = e.log.length
  const s = e.streams.at(-1)!
  s.write(JSON.stringify({ Type: 'container', Action: 'start', Actor: { ID: 'c1' } }) + '\n')
  await until(() => e.held.length === 1)
  for (const id of ['c2', 'c2', 'c3', 'c2']) s.write(JSON.stringify({ Type: 'network', Action: 'connect', Actor: { ID: 'n', Attributes: { container: id } } }) + '\n')
  await until(() => (w as unknown as { pendingIds: Set<string> }).pendingIds.size === 2)
  await releaseUntil(e, () => e.log.length === before + 3 && e.held.length === 0 && e.inflight === 0)
  t.same(e.log.slice(before), ['c1', 'c2', 'c3'], 'each container once, one after the other')
  t.equal(e.maxInflight, 1)
})
