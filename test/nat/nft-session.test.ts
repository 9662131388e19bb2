/**
 * NftSession (src/nat/nft-session.ts) against a fake `nft -i`: a small program that
 * answers like nft does on stderr (an error, the echoed line, a caret line), so the
 * delimiting of transactions, refusals, a dying process and a silent one are
 * checked without root. The real nft is exercised by test/kernel/nftables.test.ts.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NftSession } from '../../src/nat/nft-session.js'

const FAKE = `
const rl = require('readline').createInterface({ input: process.stdin })
const seen = []
let hung = false
rl.on('line', (line) => {
  if (hung) return
  // What this process received (its pid, the line), for the test to read.
  if (!line.startsWith('list table')) require('fs').appendFileSync(process.argv[2], process.pid + ' ' + line + '\\n')
  const fail = (msg) => process.stderr.write('Error: ' + msg + '\\n' + line + '\\n' + ' '.repeat(5) + '^^^^^\\n')
  if (line.startsWith('list table inet ferry_sync_')) return fail('No such file or directory')
  if (line.includes('die')) process.exit(3)
  if (line.includes('hang')) { hung = true; return }
  if (line.includes('exists')) return fail('Could not process rule: File exists')
  seen.push(line)
  if (line.includes('dump')) process.stderr.write(seen.join('|').slice(0, 60).replace(/Error/g, 'E'))
})
`

t.test('transactions, refusals, a dying and a silent nft', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-nft-session-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fake = join(dir, 'fake-nft.cjs')
  writeFileSync(fake, FAKE)
  const log = join(dir, 'received')
  writeFileSync(log, '')
  /** The lines the fake nft processes received, in order: [pid, line]. */
  const received = (): Array<[string, string]> => readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)])
  const last = (): [string, string] => received().at(-1)!
  const s = new NftSession([process.execPath, fake, log], 2_000)
  t.teardown(() => s.close())
  await s.run('add element inet ferry any_port { tcp . 1 : 10.0.0.2 . 80 }\ndelete element inet ferry any_port { tcp . 2 }\n')
  t.same(received().map(([, line]) => line), ['add element inet ferry any_port { tcp . 1 : 10.0.0.2 . 80 }; delete element inet ferry any_port { tcp . 2 }'], 'accepted: the two commands reached nft as one line, one transaction')
  const [first] = last()
  await t.rejects(s.run('add element inet ferry any_port { tcp . 1 : 10.0.0.3 . 80 } exists\n'), { code: 'KERNEL', message: /nft refused ferry's transaction: Error: Could not process rule: File exists/ })
  await s.run('add element inet ferry x { 1 } dump\n')
  t.same(last(), [first, 'add element inet ferry x { 1 } dump'], 'a transaction after a refusal is fine, in the same process (and output without an Error line is no error)')
  await t.rejects(s.run('die\n'), { code: 'KERNEL', message: /exited/ })
  await s.run('add element inet ferry x { 2 }\n')
  const [second, line2] = last()
  t.equal(line2, 'add element inet ferry x { 2 }')
  t.not(second, first, 'a new process after one died')
  await t.rejects(s.run('hang\n'), { code: 'KERNEL', message: /no answer within 2000 ms/ })
  await s.run('add element inet ferry x { 3 }\n')
  const [third, line3] = last()
  t.equal(line3, 'add element inet ferry x { 3 }')
  t.not(third, second, 'and after one that went silent')
  s.warm()
  await s.run('add element inet ferry x { 4 }\n')
  t.same(last(), [third, 'add element inet ferry x { 4 }'], 'warm with a process running: the same process')
  const w = new NftSession([process.execPath, fake, log], 2_000)
  t.teardown(() => w.close())
  w.warm()
  w.warm()
  const before = received().length
  await w.run('add element inet ferry x { 5 }\n')
  t.equal(received().length, before + 1)
  t.not(last()[0], third, 'warm started a process of its own, which the first transaction then used')
  t.ok(NftSession.fits('add element inet ferry x { "fy-a" . 1 }\n'))
  t.notOk(NftSession.fits('add element inet ferry x { 1 }; flush ruleset\n'), 'no ; of its own')
  t.notOk(NftSession.fits('x'.repeat(9000)), 'long transactions go through nft -f')
})
