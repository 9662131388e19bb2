/**
 * Network namespaces for tests. Every test that touches networking creates its
 * own namespaces with `netns()` and they are removed on teardown, even when the
 * test fails. Names carry the test process id so parallel test files never meet.
 */
import { execFileSync, spawnSync } from 'node:child_process'

let counter = 0

export function uniqueName (prefix: string): string {
  counter++
  return `${prefix}${process.pid % 100000}${counter}`.slice(0, 15)
}

export interface TeardownHost { teardown (fn: () => unknown): void }

/** Run a command (argv, no shell); returns stdout, throws with stderr on failure. */
export function sh (argv: string[], opts: { input?: string, allowFailure?: boolean, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): string {
  const [cmd, ...args] = argv
  const r = spawnSync(cmd!, args, { input: opts.input, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, env: opts.env ?? process.env, maxBuffer: 256 * 1024 * 1024 })
  if (r.status !== 0 && !opts.allowFailure) {
    throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`)
  }
  return r.stdout ?? ''
}

/** Run argv inside namespace `ns`. */
export function nsExec (ns: string, argv: string[], opts: Parameters<typeof sh>[1] = {}): string {
  return sh(['ip', 'netns', 'exec', ns, ...argv], opts)
}

/** Kill every process that lives in the namespace, then delete it. Never throws. */
export function removeNetns (ns: string): void {
  const pids = sh(['ip', 'netns', 'pids', ns], { allowFailure: true }).split(/\s+/).filter(Boolean)
  for (const pid of pids) {
    try { process.kill(Number(pid), 'SIGKILL') } catch { /* gone */ }
  }
  sh(['ip', 'netns', 'del', ns], { allowFailure: true })
}

/** Create a namespace with loopback up; removed when `t` tears down. */
export function netns (t: TeardownHost, prefix = 'fyt'): string {
  const ns = uniqueName(prefix)
  execFileSync('ip', ['netns', 'add', ns])
  t.teardown(() => removeNetns(ns))
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
  return ns
}

/** `ip -j …` inside ns, parsed. */
export function ipJson<T = unknown> (ns: string, args: string[]): T {
  const out = sh(['ip', '-n', ns, '-j', ...args])
  return (out.trim() === '' ? [] : JSON.parse(out)) as T
}

/** Connect two namespaces with a veth pair and addresses (each given as CIDR). */
export function link (a: { ns: string, ifname: string, cidr: string }, b: { ns: string, ifname: string, cidr: string }): void {
  sh(['ip', '-n', a.ns, 'link', 'add', a.ifname, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns])
  sh(['ip', '-n', a.ns, 'addr', 'add', a.cidr, 'dev', a.ifname])
  sh(['ip', '-n', b.ns, 'addr', 'add', b.cidr, 'dev', b.ifname])
  sh(['ip', '-n', a.ns, 'link', 'set', a.ifname, 'up'])
  sh(['ip', '-n', b.ns, 'link', 'set', b.ifname, 'up'])
}
