/**
 * A full disk in the middle of journaled commits: the failing commit rejects,
 * nothing half-written hides later commits, and once space is back the store
 * goes on and reopens with exactly the acknowledged changes. Runs in a child in
 * its own mount namespace (unshare -m) on a 256 KiB tmpfs, so nothing outside the
 * test sees the mount. The child uses dist/ (npm test builds first).
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { NODE } from '../harness/agent.js'

const storeModule = fileURLToPath(new URL('../../dist/store/store.js', import.meta.url))

const CHILD = `
const fs = await import('node:fs/promises');
const { FileStore } = await import(process.argv[1]);
const ep = (id) => ({ id, networkId: 'n', address: '10.0.0.2', prefixLen: 24, mac: '02:42:0a:00:00:02', hostVeth: 'fyh', containerVeth: 'fyc', joined: false, portRequests: [], ports: [], exposed: [], createdAt: 'now' });
const dir = process.argv[2];
const s = await FileStore.open(dir);
const acked = new Map();
// Leave a few KiB free, then commit until the disk is full.
const free = async () => { const st = await fs.statfs(dir); return st.bavail * st.bsize; };
await fs.writeFile(dir + '/filler', Buffer.alloc(Math.max(0, (await free()) - 12 * 1024)));
let failure = '';
for (let i = 0; i < 200 && failure === ''; i++) {
  const id = 'e' + i;
  s.state.endpoints[id] = { ...ep(id), pad: 'x'.repeat(900) };
  try { await s.commit(['endpoints', id]); acked.set(id, true); }
  catch (err) { failure = err.code + ': ' + err.message; delete s.state.endpoints[id]; }
}
await fs.rm(dir + '/filler');
s.state.endpoints.after = ep('after');
await s.commit(['endpoints', 'after']);
const again = await FileStore.open(dir);
const ids = Object.keys(again.state.endpoints).sort();
const want = [...acked.keys(), 'after'].sort();
console.log(JSON.stringify({ failure, acked: acked.size, same: JSON.stringify(ids) === JSON.stringify(want), ids: ids.length }));
`

t.test('a full disk fails the commit cleanly; the store recovers when space is back', async (t) => {
  const dir = t.testdir({})
  const r = await execFile(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
    'mount -t tmpfs -o size=256k ferry-test "$1" && shift && exec "$@"', 'sh', dir, ...NODE, '--input-type=module', '-e', CHILD, storeModule, dir],
  { allowFailure: true, timeoutMs: 60_000 })
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { failure: string, acked: number, same: boolean, ids: number }
  t.match(out.failure, /^STORE: cannot (append to state journal|write state file)/, `the commit that hit the full disk failed: ${out.failure}`)
  t.ok(out.acked > 0, `${out.acked} commits acknowledged before that`)
  t.ok(out.same, `after a reopen the store holds exactly the acknowledged changes and the one made once space was back (${out.ids})`)
})
