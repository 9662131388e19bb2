/**
 * `--help` for the benchmarks. They read their flags where they use them and ignore any other, so
 * `npm run bench:overlay -- --help` used to start a whole run (namespaces, Redis, agents) as root.
 * Every benchmark calls helpAndExit first: with `--help` or `-h` it prints the benchmark's own
 * header (its usage and what it measures) and exits before anything starts.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The text of a source file's first doc comment, without its comment markers. */
export function usageOf (source: string): string | undefined {
  const m = /^(?:#![^\n]*\n)?\s*\/\*\*([\s\S]*?)\*\//.exec(source)
  if (m === null) return undefined
  return m[1]!.split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').trim()
}

/** Whether the command line asks for help (`--help` or `-h`). */
export function wantsHelp (argv: readonly string[]): boolean {
  return argv.slice(2).some((a) => a === '--help' || a === '-h')
}

/** With `--help` or `-h`: print the calling benchmark's header (pass `import.meta.url`) and exit 0. */
export function helpAndExit (moduleUrl: string): void {
  if (!wantsHelp(process.argv)) return
  const text = usageOf(readFileSync(fileURLToPath(moduleUrl), 'utf8'))
  console.log(text ?? 'This benchmark has no usage text; read its source.')
  process.exit(0)
}
