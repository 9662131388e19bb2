/**
 * The node flags the agent runs with (issue 16): V8's young generation held to semi-spaces of
 * 2 MiB (16 by default), so that the agent gives back the memory a full read and a full plan
 * of 100,000 remote endpoints made it grow to, and its old space let grow by half its live size
 * between full collections (up to 4 times by default), so that the garbage of a full read, plan or
 * kernel read is collected before it piles up (docs/cluster.md, "The agent's memory": the costs,
 * measured, are within the noise).
 *
 * One list, used wherever ferry starts the agent's node:
 * - bin/ferry's `#!` line (test/install/node-flags.test.ts holds it to this list);
 * - the systemd unit `ferry install` writes: `Environment=FERRY_NODE_FLAGS=…` and
 *   `ExecStart=node $FERRY_NODE_FLAGS …/bin/ferry agent …` (`ferry install --node-flags`, or a drop-in
 *   setting `FERRY_NODE_FLAGS=`, changes them);
 * - the managed plugin's setting FERRY_NODE_FLAGS (scripts/package-plugin.mjs, its entrypoint).
 * The agent's DNS UDP helpers are forked with the agent's own node flags (src/kernel/process.ts
 * forkModule), so they run with the same ones.
 */
import { FerryError } from '../errors/errors.js'

export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=50']

/** The environment variable the unit and the plugin take the flags from. */
export const NODE_FLAGS_ENV = 'FERRY_NODE_FLAGS'

const FLAG_RE = /^--[a-z0-9][a-z0-9_-]{0,63}(=[A-Za-z0-9._-]{1,64})?$/

/**
 * Node flags given as one string (space-separated; '' for none), checked: each one a `--flag`
 * or `--flag=value` of plain characters, as no shell or systemd expansion can change.
 */
export function parseNodeFlags (text: string): string[] {
  const flags = text.split(' ').filter((f) => f !== '')
  const bad = flags.find((f) => !FLAG_RE.test(f))
  if (bad !== undefined || flags.length > 16) {
    throw new FerryError('INVALID_OPTION', `node flags "${text.slice(0, 200)}": up to 16 words of the form --flag or --flag=value (letters, digits, '.', '_', '-') expected`)
  }
  return flags
}
