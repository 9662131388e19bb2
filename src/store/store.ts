/**
 * Crash-safe local state: a snapshot (`state.json`) plus an append-only journal
 * (`state.journal`). Callers mutate `state`, then await `commit(...paths)`, which
 * resolves once a write that includes their change is on disk.
 *
 * - `commit(['endpoints', id])` names what changed: one journal line with the
 *   current value at each path (or its deletion) is appended and fdatasync'd. Its
 *   cost depends on the size of the change, not of the state: publishing one more
 *   port on a host with a thousand endpoints costs what it costs with none.
 * - `commit()` names nothing: anything may have changed, so the whole state is
 *   written as a new snapshot (temp file, fsync, rename, fsync of the directory),
 *   and the journal starts over. Rare operations (networks, the runtime's records)
 *   use it; so does the store itself once the journal outgrows the snapshot.
 * - `touch(paths)` marks a change that rides with the next commit without waiting
 *   for a write of its own (informational fields, such as an endpoint's `joined`).
 * - Commits are serialized and coalesced: callers that arrive while a write is in
 *   flight share the next one.
 *
 * Journal lines are `<crc32 hex> <json>`; each carries a sequence number, and the
 * snapshot records the last one it includes. Opening replays the lines after the
 * snapshot's number and stops at the first torn or corrupt line (a crash during an
 * append that was never acknowledged), then compacts. With FERRY_STORE_VERIFY=1
 * (the test suites) every journaled commit is checked against the whole state, so
 * a change a caller forgot to name fails loudly instead of vanishing on restart.
 */
import { promises as fs, constants as fsc } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { crc32 } from 'node:zlib'
import { FerryError } from '../errors/errors.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../model/types.js'
import type { ContainerRecord } from '../model/types.js'
import { checkState } from './schema.js'
import { dict, toDict } from '../util/dict.js'

export const STATE_VERSION = 1

export interface State {
  version: number
  networks: Record<string, NetworkRecord>
  endpoints: Record<string, EndpointRecord>
  pools: Record<string, PoolRecord>
  /** This host's id in a cluster, made once and kept. */
  hostId?: string
  /** Namespaces attached by `ferry attach`, `ferry run` and the CNI plugin, by container name. */
  containers?: Record<string, ContainerRecord>
  /** Names of the networks ferry created itself (`ferry network create`, the default network), by id. */
  networkNames?: Record<string, string>
}

/** The maps keyed by ids and names have no prototype (src/util/dict.ts): 'constructor' or '__proto__' is an ordinary key. */
export function emptyState (): State {
  return { version: STATE_VERSION, networks: dict(), endpoints: dict(), pools: dict(), containers: dict(), networkNames: dict() }
}

/** The state with its id-keyed maps made prototype-free (as read from a snapshot). */
function withDicts (s: State): State {
  return { ...s, networks: toDict(s.networks), endpoints: toDict(s.endpoints), pools: toDict(s.pools), containers: toDict(s.containers), networkNames: toDict(s.networkNames) }
}

/** Where a change is, from the top of the state: `['endpoints', id]`, `['pools', id, 'allocated', ip]`. */
export type StorePath = readonly string[]

export interface Store {
  readonly state: State
  /** Durable once resolved. With paths: only what they name changed; without: anything may have. */
  commit (...changed: StorePath[]): Promise<void>
  /** Mark a change that reaches the disk with the next commit. */
  touch (...changed: StorePath[]): void
}

/** One journaled change: the value now at `path`, or its deletion. */
export type JournalOp = ['set', StorePath, unknown] | ['del', StorePath]

interface JournalEntry { seq: number, ops: JournalOp[] }

/** The snapshot on disk: the state plus the last journal sequence number it includes. */
type Snapshot = State & { journalSeq?: number }

const SNAPSHOT = 'state.json'
const JOURNAL = 'state.journal'
/** The journal is folded into a new snapshot once it is this large and larger than the snapshot. */
const MIN_COMPACT_BYTES = 1 << 20

function valueAt (root: unknown, p: StorePath): unknown {
  let cur = root
  for (const key of p) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** Apply one journal operation to a plain JSON tree (missing parents are made for a set, ignored for a delete). */
export function applyOp (root: Record<string, unknown>, op: JournalOp): void {
  const p = op[1]
  if (p.length === 0) return
  let cur: Record<string, unknown> = root
  for (const key of p.slice(0, -1)) {
    let next = Object.hasOwn(cur, key) ? cur[key] : undefined
    if (next === null || typeof next !== 'object') {
      if (op[0] === 'del') return
      next = {}
      setOwn(cur, key, next)
    }
    cur = next as Record<string, unknown>
  }
  const last = p[p.length - 1]!
  if (op[0] === 'del') delete cur[last]
  else setOwn(cur, last, op[2])
}

/** `o[k] = v` that makes an own property even for `__proto__` (a key may come from a wire string). */
function setOwn (o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
}

export function encodeEntry (e: JournalEntry): string {
  const json = JSON.stringify(e)
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`
}

/** One journal line that is not intact: where it is, and what it would have touched (best effort). */
export interface DamagedLine {
  /** 1-based line number in the journal. */
  line: number
  /** Its sequence number, when still readable. */
  seq?: number
  /** `endpoints/<id>`-style paths found in what is left of it. */
  keys: string[]
}

export interface JournalScan {
  /** Every intact line, in file order (a line that is out of order counts as damaged). */
  entries: JournalEntry[]
  /** The line number of each entry. */
  entryLines: number[]
  /** Bad lines before the last line: written and acknowledged, then damaged. */
  damaged: DamagedLine[]
  /** The last line is unfinished or bad: an append that never completed, so was never acknowledged. */
  torn: boolean
  /** Lines in the file (an unfinished last one included). */
  lines: number
}

const MAX_KEYS_PER_LINE = 20

function isPath (p: unknown): p is string[] {
  return Array.isArray(p) && p.length > 0 && p.every((k) => typeof k === 'string')
}

function isOp (op: unknown): op is JournalOp {
  if (!Array.isArray(op)) return false
  if (op[0] === 'set') return op.length === 3 && isPath(op[1])
  return op[0] === 'del' && op.length === 2 && isPath(op[1])
}

/** The entry a journal line holds, or undefined when the line is not intact. */
function decodeLine (line: string): JournalEntry | undefined {
  const json = line.slice(9)
  if (line[8] !== ' ' || crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return undefined
  let e: unknown
  try { e = JSON.parse(json) } catch { return undefined }
  if (e === null || typeof e !== 'object') return undefined
  const { seq, ops } = e as { seq?: unknown, ops?: unknown }
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || !Array.isArray(ops) || !ops.every(isOp)) return undefined
  return { seq: seq as number, ops }
}

/** What a damaged line still says: its sequence number and the paths of its operations, if readable. */
function salvageLine (line: string, n: number): DamagedLine {
  const seq = /"seq":(\d{1,15})[,}]/.exec(line)
  const keys: string[] = []
  for (const m of line.matchAll(/\["(?:set|del)",\[((?:"(?:[^"\\]|\\.){0,200}",?){1,8})\]/g)) {
    try {
      const p = JSON.parse(`[${m[1]!.replace(/,$/, '')}]`) as unknown
      if (isPath(p)) keys.push(p.join('/'))
    } catch { /* unreadable: nothing to say about it */ }
    if (keys.length >= MAX_KEYS_PER_LINE) break
  }
  return seq ? { line: n, seq: Number(seq[1]), keys } : { line: n, keys }
}

/**
 * Read a journal line by line. Lines are self-checking (crc32 of their JSON), so a
 * damaged line is skipped and every intact line after it still counts; only the
 * last line may be bad without loss (an append cut short by a crash was never
 * acknowledged: commits are serialized, each acknowledged after its fdatasync).
 */
export function scanJournal (text: string): JournalScan {
  const parts = text.split('\n')
  const unfinished = parts.pop()!  // '' when the text ends with a newline
  const lines = unfinished === '' ? parts : [...parts, unfinished]
  const entries: JournalEntry[] = []
  const entryLines: number[] = []
  const bad: DamagedLine[] = []
  let lastSeq = 0
  lines.forEach((line, i) => {
    const e = i === parts.length ? undefined : decodeLine(line) // the unfinished tail is never intact
    if (e === undefined || e.seq <= lastSeq) { bad.push(salvageLine(line, i + 1)); return }
    lastSeq = e.seq
    entries.push(e)
    entryLines.push(i + 1)
  })
  const torn = bad.length > 0 && bad[bad.length - 1]!.line === lines.length
  return { entries, entryLines, damaged: torn ? bad.slice(0, -1) : bad, torn, lines: lines.length }
}

/** The intact entries of a journal (see scanJournal). */
export function decodeJournal (text: string): { entries: JournalEntry[] } {
  return { entries: scanJournal(text).entries }
}

/** What replaying a journal did: its last sequence number, how many entries it applied, and what it lost. */
export interface Replay { seq: number, replayed: number, loss?: { sentence: string, keys: string[] } }

/**
 * Apply a journal's intact entries after the snapshot's number `from.seq` to
 * `state`. Damaged lines are skipped (only the torn last line is silently so);
 * one that sits before an entry the snapshot holds lost nothing. A gap in the
 * sequence numbers is a loss too, when the snapshot's number is known.
 */
export function replayJournal (state: State, text: string, from: { seq: number, known: boolean }): Replay {
  const scan = scanJournal(text)
  const nextSeq = (line: number): number => scan.entries[scan.entryLines.findIndex((l) => l > line)]?.seq ?? Infinity
  const lost = scan.damaged.filter((d) => !from.known || !((d.seq !== undefined && d.seq <= from.seq) || nextSeq(d.line) <= from.seq))
  let seq = from.seq
  let replayed = 0
  let gaps = 0
  for (const e of scan.entries) {
    if (e.seq <= from.seq) continue // already in the snapshot (a crash between its rename and the journal's reset)
    if (from.known && e.seq > seq + 1) gaps += e.seq - seq - 1
    for (const op of e.ops) applyOp(state as unknown as Record<string, unknown>, op)
    seq = e.seq
    replayed++
  }
  if (lost.length === 0 && gaps === 0) return { seq, replayed }
  const touched = [...new Set(lost.flatMap((d) => d.keys))]
  const lines = lost.length === 0 ? 'no damaged line, but a gap in its sequence numbers' : `${plural(lost.length, 'damaged line')} (${lost.length === 1 ? 'line' : 'lines'} ${lost.map((d) => d.line).join(', ')} of ${scan.lines})`
  const after = lost.length === 0 ? 0 : scan.entries.filter((_, i) => scan.entryLines[i]! > lost[0]!.line).length
  const sentence = `the state journal had ${lines}: ${plural(Math.max(gaps, lost.length), 'acknowledged change')} lost` +
    (touched.length > 0 ? ` (${lost.length === 1 ? 'it' : 'they'} touched ${touched.slice(0, 8).join(', ')}${touched.length > 8 ? ', …' : ''})` : ' (what they touched is unreadable)') +
    `, the ${plural(after, 'intact change')} after the damage replayed`
  return { seq, replayed, loss: { sentence, keys: touched } }
}

/** The state as JSON gives it back (what a snapshot or a journal line holds). */
function plainCopy (state: State): State {
  return withDicts(JSON.parse(JSON.stringify(state)) as State)
}

/** Where two states differ, to two levels (`endpoints/<id>`), for the verify message. */
function differences (a: State, b: State): string[] {
  const out: string[] = []
  const x = a as unknown as Record<string, unknown>
  const y = b as unknown as Record<string, unknown>
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    const u = x[k]
    const v = y[k]
    if (isDeepStrictEqual(u, v)) continue
    if (u === null || v === null || typeof u !== 'object' || typeof v !== 'object') { out.push(k); continue }
    const uo = u as Record<string, unknown>
    const vo = v as Record<string, unknown>
    for (const j of new Set([...Object.keys(uo), ...Object.keys(vo)])) if (!isDeepStrictEqual(uo[j], vo[j])) out.push(`${k}/${j}`)
  }
  return out
}

function storeError (what: string, file: string, err: unknown): FerryError {
  return new FerryError('STORE', `cannot ${what} ${file}: ${(err as Error).message}`, { cause: err })
}

async function syncDir (dir: string): Promise<void> {
  const dh = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY)
  try { await dh.sync() } finally { await dh.close() }
}

/** Read a file of the state directory, never through a symbolic link. */
async function readIfAny (file: string): Promise<string | undefined> {
  let fh: FileHandle
  try {
    fh = await fs.open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new FerryError('STORE', `cannot read state file ${file}: it is a symbolic link, and ferry follows none in its state directory (move the real file there)`, { cause: err })
    throw storeError('read state file', file, err)
  }
  try {
    return await fh.readFile('utf8')
  } catch (err) {
    throw storeError('read state file', file, err)
  } finally {
    await fh.close()
  }
}

/**
 * Make the state directory, or correct its mode when it exists: it holds every
 * network's and container's record, and only root may read or replace them.
 * Returns a sentence for the log when the mode was corrected.
 */
export async function prepareStateDir (dir: string): Promise<string | undefined> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    const st = await fs.stat(dir)
    if (!st.isDirectory()) throw new Error('it is not a directory')
    const mode = st.mode & 0o7777
    if (mode === 0o700) return undefined
    await fs.chmod(dir, 0o700)
    return `the state directory ${dir} had mode ${mode.toString(8).padStart(4, '0')}; ferry set it to 0700 (only root may read or change its state)`
  } catch (err) {
    throw storeError('prepare state directory', dir, err)
  }
}

/** A damaged file kept in the state directory for the operator (never removed by ferry). */
export interface KeptFile {
  path: string
  kind: 'journal' | 'snapshot'
  /** journal: damaged lines before its last line (acknowledged changes lost). */
  damagedLines?: number
}

/** What the store lost, while any damaged file is kept in the state directory. */
export interface StoreLoss {
  kept: KeptFile[]
  /** What this open lost and did, in one sentence; undefined when the kept files are from an earlier start. */
  report?: string
  /** `section/id` paths the lost changes touched (when still readable) and records dropped as half-valid. */
  keys: string[]
}

export interface OpenOptions {
  /** Check every journaled commit against the whole state (FERRY_STORE_VERIFY=1). */
  verify?: boolean
  /**
   * A damaged snapshot (not JSON, a section that is not an object, a record of the
   * wrong shape): without this, opening refuses with a sentence that says how to
   * recover; with it (`ferry agent --recover-store`), the file is kept aside and
   * the state is what it still holds that fits the schema, plus the journal.
   */
  recover?: boolean
  now?: () => Date
}

const KEPT_RE = /^state\.(journal|json)\.damaged-[A-Za-z0-9._-]+$/

/** Damaged files in the state directory, oldest first (their names carry the time). */
async function keptFiles (dir: string): Promise<KeptFile[]> {
  const names = (await fs.readdir(dir)).filter((n) => KEPT_RE.test(n)).sort()
  const out: KeptFile[] = []
  for (const n of names) {
    const p = path.join(dir, n)
    if (n.startsWith('state.json.')) { out.push({ path: p, kind: 'snapshot' }); continue }
    const text = await readIfAny(p).catch(() => undefined)
    out.push({ path: p, kind: 'journal', damagedLines: text === undefined ? 0 : scanJournal(text).damaged.length })
  }
  return out
}

function plural (n: number, one: string, many = `${one}s`): string { return `${n} ${n === 1 ? one : many}` }

/** The first few problems, for one sentence. */
function firstProblems (problems: string[]): string {
  const shown = problems.slice(0, 3).join('; ')
  return problems.length > 3 ? `${shown}; and ${problems.length - 3} more` : shown
}

interface ReadSnapshot { state?: State, seq?: number, problems: string[], dropped: string[] }

/** Parse and check a snapshot; a newer version throws (that is not damage: this ferry is too old). */
function readSnapshot (file: string, text: string): ReadSnapshot {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    return { problems: [`it is not JSON: ${(err as Error).message}`], dropped: [] }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { problems: ['it is not a JSON object'], dropped: [] }
  const { version, journalSeq } = parsed as { version?: unknown, journalSeq?: unknown }
  if (typeof version === 'number' && version > STATE_VERSION) {
    throw new FerryError('STORE', `state file ${file} has version ${version}, this ferry reads version ${STATE_VERSION}: run the ferry that wrote it`)
  }
  const problems: string[] = []
  if (version !== STATE_VERSION) problems.push(`its version is ${JSON.stringify(version) ?? 'missing'}, not ${STATE_VERSION}`)
  const seqOk = journalSeq === undefined || (Number.isSafeInteger(journalSeq) && (journalSeq as number) >= 0)
  if (!seqOk) problems.push(`its journalSeq is ${JSON.stringify(journalSeq)}, not a whole number`)
  const checked = checkState(parsed, STATE_VERSION)
  return { state: checked.state, seq: seqOk ? (journalSeq as number | undefined) ?? 0 : undefined, problems: [...problems, ...checked.problems], dropped: checked.dropped }
}

export class FileStore implements Store {
  readonly state: State
  private readonly dir: string
  private readonly file: string
  private readonly journalFile: string
  private journal: FileHandle | undefined
  private journalBytes = 0
  private snapshotBytes = 0
  private seq: number
  private chain: Promise<void> = Promise.resolve()
  private queued: Promise<void> | undefined
  /** Paths changed since the last write, keyed by their joined form. */
  private pending = new Map<string, StorePath>()
  /** A commit without paths (or a failed append) is pending: the next write is a snapshot. */
  private pendingFull = false
  /** FERRY_STORE_VERIFY: the state as the disk has it, to check every journaled commit against. */
  private shadow: State | undefined
  lastWriteMs = 0
  writes = 0
  journalWrites = 0
  snapshots = 0

  private constructor (dir: string, state: State, seq: number, verify: boolean) {
    this.dir = dir
    this.file = path.join(dir, SNAPSHOT)
    this.journalFile = path.join(dir, JOURNAL)
    this.state = state
    this.seq = seq
    if (verify) this.shadow = plainCopy(state)
  }

  /** Sentences for the log about what opening corrected (the directory's mode). */
  notes: string[] = []
  /** Set while a damaged file is kept in the state directory: the store was recovered with loss. */
  loss: StoreLoss | undefined

  static async open (dir: string, opts: OpenOptions = {}): Promise<FileStore> {
    const modeNote = await prepareStateDir(dir)
    const file = path.join(dir, SNAPSHOT)
    const journalFile = path.join(dir, JOURNAL)
    const stamp = (opts.now?.() ?? new Date()).toISOString().replace(/[:.]/g, '-')
    const said: string[] = []
    const keys: string[] = []
    let state = emptyState()
    let seq = 0
    /** The snapshot's journal number is known (else every intact journal line is replayed). */
    let seqKnown = true
    const text = await readIfAny(file)
    if (text !== undefined) {
      const snap = readSnapshot(file, text)
      if (snap.problems.length > 0) {
        const why = firstProblems(snap.problems)
        if (opts.recover !== true) {
          throw new FerryError('STORE_DAMAGED', `state file ${file} is damaged (${why}): the agent will not start on it, and containers keep their network meanwhile; ` +
            'to start from what is readable plus the journal, run the agent once with --recover-store (it keeps the file aside), see docs/errors.md')
        }
        const kept = `${file}.damaged-${stamp}`
        await fs.rename(file, kept).catch((err: unknown) => { throw storeError('keep aside the damaged state file', file, err) })
        said.push(`the state file was damaged (${why}); it is kept at ${kept}, and the agent starts from ${snap.state ? 'the records of it that fit the schema' : 'an empty state'} plus the journal`)
        keys.push(...snap.dropped)
      }
      state = withDicts(snap.state ?? emptyState())
      seqKnown = snap.seq !== undefined
      seq = snap.seq ?? 0
    }
    const journal = await readIfAny(journalFile)
    let replayed = 0
    let keepJournal = false
    if (journal !== undefined) {
      const r = replayJournal(state, journal, { seq, known: seqKnown })
      seq = r.seq
      replayed = r.replayed
      if (r.loss) {
        keepJournal = true
        said.push(r.loss.sentence)
        keys.push(...r.loss.keys)
      }
    }
    // The shape again, after the journal: a change may set a field of a record that a lost line made.
    const checked = checkState(state, STATE_VERSION)
    if (checked.problems.length > 0) {
      keepJournal = keepJournal || journal !== undefined
      keys.push(...checked.dropped)
      said.push(`${plural(checked.dropped.length || checked.problems.length, 'record')} did not fit the schema after the journal and ${checked.dropped.length === 1 ? 'is' : 'are'} dropped (${firstProblems(checked.problems)})`)
      state = checked.state
    }
    if (keepJournal && journal !== undefined) {
      const kept = `${journalFile}.damaged-${stamp}`
      await fs.rename(journalFile, kept).catch((err: unknown) => { throw storeError('keep aside the damaged state journal', journalFile, err) })
      said.push(`the journal is kept at ${kept}`)
    }
    // A temp file left by a crash mid-write is garbage: the rename never happened.
    await fs.rm(`${file}.tmp`, { force: true })
    const verify = opts.verify ?? process.env.FERRY_STORE_VERIFY === '1'
    const store = new FileStore(dir, state, seq, verify)
    if (modeNote !== undefined) store.notes.push(modeNote)
    const kept = await keptFiles(dir)
    if (kept.length > 0) {
      store.loss = {
        kept,
        keys: [...new Set(keys)],
        ...(said.length > 0 ? { report: `the store was recovered with loss: ${said.join('; ')}; reconcile keeps ferry-named links the store cannot explain while a damaged file is kept in ${dir}` } : {}),
      }
    }
    // Start from a clean pair: everything in one snapshot, an empty journal.
    if (replayed > 0 || said.length > 0 || journal === undefined || journal.length > 0 || text === undefined) await store.commit()
    else {
      store.snapshotBytes = Buffer.byteLength(text)
      await store.openJournal(false)
    }
    return store
  }

  /**
   * Look again for the damaged files (the operator moves them out once the loss is
   * handled): true when the last one is gone and the store is no longer in loss.
   */
  async recheckLoss (): Promise<boolean> {
    if (this.loss === undefined) return false
    const kept = await keptFiles(this.dir)
    if (kept.length > 0) { this.loss = { ...this.loss, kept }; return false }
    this.loss = undefined
    return true
  }

  touch (...changed: StorePath[]): void {
    for (const p of changed) this.pending.set(p.join('\u0000'), p)
  }

  /** Resolves when the current state (including every change made before the call) is durable. */
  commit (...changed: StorePath[]): Promise<void> {
    if (changed.length === 0) this.pendingFull = true
    else this.touch(...changed)
    // Callers that arrive before the queued write starts share it.
    if (this.queued) return this.queued
    const p = this.chain.then(() => {
      this.queued = undefined
      return this.write()
    })
    this.queued = p
    this.chain = p.catch(() => undefined)
    return p
  }

  /** Close the journal (the agent's shutdown); later commits reopen it. */
  async close (): Promise<void> {
    await this.chain
    const j = this.journal
    this.journal = undefined
    await j?.close()
  }

  private async write (): Promise<void> {
    const t0 = performance.now()
    const full = this.pendingFull || this.journal === undefined ||
      (this.journalBytes > MIN_COMPACT_BYTES && this.journalBytes > this.snapshotBytes)
    const paths = [...this.pending.values()]
    this.pending = new Map()
    this.pendingFull = false
    if (full) await this.writeSnapshot()
    else if (paths.length > 0) await this.append(paths)
    this.writes++
    this.lastWriteMs = performance.now() - t0
  }

  private async append (paths: StorePath[]): Promise<void> {
    const ops: JournalOp[] = paths.map((p) => {
      const v = valueAt(this.state, p)
      return v === undefined ? ['del', p] : ['set', p, v]
    })
    const line = encodeEntry({ seq: this.seq + 1, ops })
    // Checked now, against the state the line was made from: callers may change more during the write.
    if (this.shadow !== undefined) this.verify(decodeJournal(line).entries[0]!.ops, paths)
    const bytes = Buffer.byteLength(line)
    try {
      await this.journal!.write(line)
      await this.journal!.datasync()
    } catch (err) {
      // Whatever part of the line reached the file would hide every later one: cut
      // it off, and make the next write a snapshot in any case.
      this.pendingFull = true
      await this.journal!.truncate(this.journalBytes).catch(() => undefined)
      throw storeError('append to state journal', this.journalFile, err)
    }
    this.seq++
    this.journalBytes += bytes
    this.journalWrites++
  }

  /**
   * FERRY_STORE_VERIFY: the last snapshot plus the journal, replayed as `open` would
   * (`ops` are decoded from the line about to be written), must give exactly the state.
   */
  private verify (ops: JournalOp[], paths: StorePath[]): void {
    for (const op of ops) applyOp(this.shadow as unknown as Record<string, unknown>, op)
    const want = plainCopy(this.state)
    if (isDeepStrictEqual(this.shadow, want)) return
    const shadow = this.shadow!
    this.shadow = want
    this.pendingFull = true
    const named = paths.map((p) => p.join('/')).join(', ')
    throw new FerryError('STORE', `store journal is missing a change: a commit named only ${named} but ${differences(shadow, want).join(', ')} changed too (a caller must name what it changes)`)
  }

  private async writeSnapshot (): Promise<void> {
    const tmp = `${this.file}.tmp`
    const seq = this.seq
    const data = JSON.stringify({ ...this.state, journalSeq: seq })
    try {
      // Never through a link someone left at the temp path: remove whatever is
      // there (a link itself, not its target), then make a new file or fail.
      await fs.rm(tmp, { force: true })
      const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
      try {
        await fh.writeFile(data)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await fs.rename(tmp, this.file)
      await syncDir(this.dir)
    } catch (err) {
      throw storeError('write state file', this.file, err)
    }
    this.snapshotBytes = Buffer.byteLength(data)
    this.snapshots++
    if (this.shadow !== undefined) {
      // What this snapshot holds (the state may have changed during the write).
      const { journalSeq: _, ...written } = JSON.parse(data) as Snapshot
      this.shadow = withDicts(written)
    }
    // The snapshot holds everything up to seq: the journal starts over. Should this
    // fail, its old lines are skipped on the next open (their numbers are <= seq).
    await this.openJournal(true)
  }

  private async openJournal (reset: boolean): Promise<void> {
    try {
      if (this.journal === undefined) {
        this.journal = await fs.open(this.journalFile, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND | fsc.O_NOFOLLOW, 0o600)
        await syncDir(this.dir)
      }
      if (reset) {
        await this.journal.truncate(0)
        await this.journal.datasync()
      }
      this.journalBytes = reset ? 0 : (await this.journal.stat()).size
    } catch (err) {
      const j = this.journal
      this.journal = undefined
      await j?.close().catch(() => undefined)
      throw storeError('open state journal', this.journalFile, err)
    }
  }
}

/**
 * This host's id in a cluster: the one the state keeps, or else a new one from `make`, kept
 * from now on (durable once resolved). The store owns `hostId`; nothing else writes it.
 */
export async function keepHostId (store: Store, make: () => string): Promise<string> {
  const kept = store.state.hostId
  if (kept !== undefined && kept !== '') return kept
  const id = make()
  store.state.hostId = id
  await store.commit()
  return id
}

/** In-memory store for unit tests. */
export class MemoryStore implements Store {
  readonly state: State = emptyState()
  commits = 0
  touched: StorePath[] = []
  async commit (...changed: StorePath[]): Promise<void> {
    this.touched.push(...changed)
    this.commits++
  }

  touch (...changed: StorePath[]): void { this.touched.push(...changed) }
}

/** A line for the agent's log at start. */
export interface OpeningMessage { level: 'warn' | 'error', msg: string, fields?: Record<string, unknown> }

/**
 * What the agent logs once the store is open: what opening corrected, and a loss
 * (found now: the report, with the keys lost; or at an earlier start: still in loss
 * while a damaged file is kept).
 */
export function openingMessages (store: Pick<FileStore, 'notes' | 'loss'>): OpeningMessage[] {
  const out: OpeningMessage[] = store.notes.map((msg) => ({ level: 'warn', msg }))
  const loss = store.loss
  if (loss?.report !== undefined) out.push({ level: 'error', msg: loss.report, fields: { kept: loss.kept.map((k) => k.path), keys: loss.keys } })
  else if (loss) {
    out.push({
      level: 'warn', fields: { kept: loss.kept.map((k) => k.path) },
      msg: 'the store was recovered with loss at an earlier start: ferry keeps links it cannot explain until the damaged files are moved out of the state directory (ferry doctor)',
    })
  }
  return out
}

/** What `ferry status` and `ferry doctor` show of a loss (the API's `store.loss`). */
export interface LossView {
  /** `recovered with loss: 1 damaged journal line, kept at /var/lib/ferry/state.journal.damaged-…` */
  summary: string
  damagedJournalLines: number
  kept: string[]
  /** Paths the lost changes touched, when readable. */
  keys: string[]
}

export function lossView (loss: StoreLoss | undefined): LossView | undefined {
  if (loss === undefined) return undefined
  const journals = loss.kept.filter((k) => k.kind === 'journal')
  const snapshots = loss.kept.filter((k) => k.kind === 'snapshot')
  const lines = journals.reduce((n, k) => n + (k.damagedLines ?? 0), 0)
  const parts: string[] = []
  if (journals.length > 0) parts.push(`${plural(lines, 'damaged journal line')}, kept at ${journals.map((k) => k.path).join(', ')}`)
  if (snapshots.length > 0) parts.push(`a damaged state file, kept at ${snapshots.map((k) => k.path).join(', ')}`)
  return { summary: `recovered with loss: ${parts.join('; ')}`, damagedJournalLines: lines, kept: loss.kept.map((k) => k.path), keys: loss.keys }
}
