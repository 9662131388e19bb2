import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERROR_CODES, FerryError, exitCode, httpStatus } from '../../src/errors/errors.js'

t.test('every error code is documented in docs/errors.md', async (t) => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  for (const code of Object.keys(ERROR_CODES)) t.match(doc, new RegExp(`\\b${code}\\b`), `${code} documented`)
})

t.test('categories map to HTTP statuses and exit codes', async (t) => {
  const e = new FerryError('PORT_CONFLICT', 'x')
  t.equal(e.category, 'conflict')
  t.equal(httpStatus(e.category), 409)
  t.equal(exitCode('unavailable'), 5)
})
