/**
 * kill -9 of a process in the middle of journaled commits: every commit that
 * resolved before the kill is there after a reopen, and the store opens cleanly.
 * The writer is dist/ (npm test builds first), run as its own process.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { FileStore } from '../../src/store/store.js'
import { NODE } from '../harness/agent.js'

const storeModule = fileURLToPath(new URL('../../dist/store/store.js', import.meta.url))

const WRITER = `
const { FileStore } = await import(process.argv[1]);
const ep = (id) => ({ id, networkId: 'n', address: '10.0.0.2', prefixLen: 24, mac: '02:42:0a:00:00:02', hostVeth: 'fyh', containerVeth: 'fyc', joined: false, portRequests: [], ports: [], exposed: [], createdAt: 'now' });
const s = await FileStore.open(process.argv[2]);
const k = (i) => process.argv[3] + i;
for (let i = 0; ; i++) {
  s.state.endpoints[k(i)] = { ...ep(k(i)), pad: 'x'.repeat(i % 7 * 300) };
  if (i % 3 === 0 && i > 0) delete s.state.endpoints[k(i - 1)];
  const named = [['endpoints', k(i)], ['endpoints', k(i - 1)]];
  // Every 50th commit names nothing: a snapshot, which resets the journal.
  await (i % 50 === 49 ? s.commit() : s.commit(...named));
  process.stdout.write(i + '\\n');
}`

async function killAfter (dir: string, prefix: string, acks: number): Promise<number> {
  const child = spawn(NODE[0]!, [...NODE.slice(1), '--input-type=module', '-e', WRITER, storeModule, dir, prefix], { stdio: ['ignore', 'pipe', 'inherit'] })
  let last = -1
  let buf = ''
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString()
      const lines = buf.split('\n')
      buf = lines.pop()!
      for (const l of lines) last = Number(l)
      if (last >= acks && child.exitCode === null) child.kill('SIGKILL')
    })
    child.on('exit', () => resolve())
  })
  return last
}

t.test('commits acknowledged before a kill -9 survive it', async (t) => {
  const dir = t.testdir({})
  for (const acks of [40, 130, 260]) {
    const prefix = `run${acks}-`
    const last = await killAfter(dir, prefix, acks)
    t.ok(last >= acks, `the writer acknowledged ${last} commits before it died`)
    const s = await FileStore.open(dir)
    const lost: number[] = []
    for (let i = 0; i <= last; i++) {
      // Commit i+1 deletes i's endpoint when (i+1) % 3 === 0; the commit after the last
      // acknowledged one may have landed without its acknowledgement reaching us.
      const deleted = (i + 1) % 3 === 0 && (i + 1 <= last || s.state.endpoints[`${prefix}${i + 1}`] !== undefined)
      if (!deleted && s.state.endpoints[`${prefix}${i}`] === undefined) lost.push(i)
    }
    t.same(lost, [], `all ${last + 1} acknowledged commits are there (none lost)`)
  }
})
