/**
 * NftSession (src/nat/nft-session.ts) against a fake `nft -i`: a small program that
 * answers like nft does on stderr (an error, the echoed line, a caret line), so the
 * delimiting of transactions, refusals, a dying process and a silent one are
 * checked without root. The real nft is exercised by test/kernel/nftables.test.ts.
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NftSession } from '../../src/nat/nft-session.js'

const FAKE = `
const rl = require('readline').createInterface({ input: process.stdin })
const seen = []
let hung = false
rl.on('line', (line) => {
  if (hung) return
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
  const s = new NftSession([process.execPath, fake], 2_000)
  t.teardown(() => s.close())
  await s.run('add element inet ferry any_port { tcp . 1 : 10.0.0.2 . 80 }\ndelete element inet ferry any_port { tcp . 2 }\n')
  t.pass('accepted')
  await t.rejects(s.run('add element inet ferry any_port { tcp . 1 : 10.0.0.3 . 80 } exists\n'), { code: 'KERNEL', message: /nft refused ferry's transaction: Error: Could not process rule: File exists/ })
  await s.run('add element inet ferry x { 1 } dump\n')
  t.pass('a transaction after a refusal is fine (and output without an Error line is no error)')
  await t.rejects(s.run('die\n'), { code: 'KERNEL', message: /exited/ })
  await s.run('add element inet ferry x { 2 }\n')
  t.pass('a new process after one died')
  await t.rejects(s.run('hang\n'), { code: 'KERNEL', message: /no answer within 2000 ms/ })
  await s.run('add element inet ferry x { 3 }\n')
  t.pass('and after one that went silent')
  t.ok(NftSession.fits('add element inet ferry x { "fy-a" . 1 }\n'))
  t.notOk(NftSession.fits('add element inet ferry x { 1 }; flush ruleset\n'), 'no ; of its own')
  t.notOk(NftSession.fits('x'.repeat(9000)), 'long transactions go through nft -f')
})
