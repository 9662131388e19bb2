/**
 * An agent started on a damaged state file stops at once with one clear sentence
 * (STORE_DAMAGED, which `ferry agent` turns into exit 78, which the systemd unit
 * does not restart on): no stack trace, nothing touched, the lock released.
 * Opening the store comes before any kernel access, so no namespace is needed.
 */
import t from 'tap'
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Agent } from '../../src/agent/agent.js'
import { silentLog } from '../harness/fakes.js'

const variants: Record<string, string> = {
  'bad JSON': '{"version": 1, "networks": {',
  'networks: null': JSON.stringify({ version: 1, networks: null, endpoints: {}, pools: {} }),
  'wrong types': JSON.stringify({ version: 1, networks: {}, endpoints: { e: { id: 'e', address: 7 } }, pools: [] }),
}

for (const [name, text] of Object.entries(variants)) {
  t.test(`${name}: the agent refuses to start with a sentence that says how to recover`, async (t) => {
    const stateDir = t.testdir({ 'state.json': text })
    const sockets = await fs.mkdtemp(path.join(tmpdir(), 'fy-sd-'))
    t.teardown(() => fs.rm(sockets, { recursive: true, force: true }))
    const cfg = {
      pluginName: 'fysd', pluginDir: sockets, stateDir, apiSocket: path.join(sockets, 'api.sock'), dockerHost: `unix://${sockets}/none.sock`,
      reconcileIntervalMs: 0, dns: { enabled: false, upstreams: [] },
    }
    for (let i = 0; i < 2; i++) {
      const agent = new Agent(cfg, silentLog)
      await t.rejects(agent.start(), { code: 'STORE_DAMAGED', message: /^state file .*state\.json is damaged \(.+\): the agent will not start on it, .*--recover-store/ },
        i === 0 ? 'refused' : 'refused again (the lock was released, no ALREADY_RUNNING)')
    }
    t.equal(await fs.readFile(path.join(stateDir, 'state.json'), 'utf8'), text, 'the file is untouched')
    t.same((await fs.readdir(sockets)).filter((n) => n.endsWith('.sock')), [], 'no socket left behind')
  })
}
