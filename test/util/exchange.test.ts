import t, { type Test } from 'tap'
import http from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exchange } from '../../src/util/exchange.js'

async function server (t: Test, handler: http.RequestListener): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'fyx-'))
  const sock = join(dir, 's.sock')
  const s = http.createServer(handler)
  await new Promise<void>((resolve) => s.listen(sock, resolve))
  t.teardown(async () => {
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
    rmSync(dir, { recursive: true, force: true })
  })
  return sock
}

t.test('an answer is read whole, with its status; the request carries method, path, headers and body', async (t) => {
  const seen: string[] = []
  const sock = await server(t, (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => { seen.push(`${req.method} ${req.url} ${req.headers['x-a'] ?? ''} ${body}`); res.statusCode = 201; res.end('x'.repeat(100_000)) })
  })
  const r = await exchange({ socketPath: sock, method: 'POST', path: '/p?q=1', headers: { 'x-a': 'b' }, body: '{"k":1}', timeoutMs: 5000 })
  t.same([r.status, r.text.length], [201, 100_000])
  t.same(seen, ['POST /p?q=1 b {"k":1}'])
})

t.test('an answer over maxBytes is an error, not a buffer', async (t) => {
  const sock = await server(t, (_req, res) => { res.end('y'.repeat(10_000)) })
  await t.rejects(exchange({ socketPath: sock, method: 'GET', path: '/', timeoutMs: 5000, maxBytes: 1000 }), { message: 'the answer to GET / is larger than 1000 bytes' })
})

t.test('no answer: the timeout; nothing listening: the socket\'s own error code', async (t) => {
  const sock = await server(t, () => { /* never answers */ })
  await t.rejects(exchange({ socketPath: sock, method: 'GET', path: '/', timeoutMs: 100 }), { message: 'no answer within 100 ms' })
  await t.rejects(exchange({ socketPath: join(tmpdir(), 'fyx-none', 'nope.sock'), method: 'GET', path: '/', timeoutMs: 1000 }), { code: 'ENOENT' })
})
