/**
 * State has owners: each kind of record the store holds is written by one module, through
 * its named operations, and read by the others. The check is static and type-aware (the
 * TypeScript checker over src/): a write is an assignment (`=`, `+=`, `??=`, …), a `delete`,
 * `++`/`--`, `Object.assign`/`Object.defineProperty` on it, or a mutating array method
 * (`push`, `splice`, …) on one of its fields, whose target is reached through
 *
 * - a record (NetworkRecord, EndpointRecord, … of src/model/types.ts), at any depth
 *   (`ep.ports = []`, `pool.allocated[ip]!.kind = 'aux'`);
 * - a map of records (`Record<string, PoolRecord>`, however it was reached: an alias counts);
 * - a section of the state (`store.state.networks[id] = net`, `state.hostId = id`).
 *
 * Only the owner below may make such a write. src/store/ is the storage itself (replaying the
 * journal writes any path) and is not checked. A write made outside its owner fails the test
 * with its file and line.
 */
import t from 'tap'
import ts from 'typescript'
import { readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SRC = join(ROOT, 'src')
const MODEL = 'src/model/types.ts'

/**
 * Record kinds (types of src/model/types.ts) and their owner. Their parts (a PortBinding of an
 * endpoint, a ProcessRef of a container) are checked through the record that holds them; such a
 * part built on its own (a request being parsed) is nobody's record yet.
 */
const RECORD_OWNERS: Record<string, string> = {
  NetworkRecord: 'src/driver/records.ts',
  EndpointRecord: 'src/driver/records.ts',
  PoolRecord: 'src/ipam/ipam.ts',
  AddressUse: 'src/ipam/ipam.ts',
  ContainerRecord: 'src/runtime/service.ts',
}

/** Sections of the state (src/store/store.ts State) and their owner. */
const SECTION_OWNERS: Record<string, string> = {
  networks: 'src/driver/records.ts',
  endpoints: 'src/driver/records.ts',
  pools: 'src/ipam/ipam.ts',
  containers: 'src/runtime/service.ts',
  networkNames: 'src/runtime/service.ts',
  hostId: 'src/store/store.ts',
  version: 'src/store/store.ts',
}

/** Not checked: the storage itself. */
const EXEMPT = /^src\/store\//

const MUTATING_METHODS = new Set(['push', 'pop', 'shift', 'unshift', 'splice', 'sort', 'reverse', 'fill', 'copyWithin'])

export interface Write { file: string, line: number, text: string, kind: string, owner: string }

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

function options (): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')) } })
  if (parsed === undefined) throw new Error('cannot read tsconfig.json')
  return { ...parsed.options, noEmit: true }
}

function rel (file: string): string {
  return relative(ROOT, file).split('\\').join('/')
}

/** Every write into the store's records in `files` (paths relative to the repository), with its owner. */
export function recordWrites (program: ts.Program, files: (f: string) => boolean): Write[] {
  const checker = program.getTypeChecker()
  const out: Write[] = []

  /** The record kind of a type (through unions and `| undefined`), if it is one of the model's records. */
  const recordKind = (type: ts.Type): string | undefined => {
    for (const part of type.isUnion() ? type.types : [type]) {
      const sym = part.aliasSymbol ?? part.getSymbol()
      const decl = sym?.declarations?.[0]
      if (sym !== undefined && decl !== undefined && rel(decl.getSourceFile().fileName) === MODEL && Object.hasOwn(RECORD_OWNERS, sym.name)) return sym.name
    }
    return undefined
  }
  /**
   * A map of records (`Record<string, PoolRecord>`), or with `lists` a list of them too: the kind
   * of its values. Pushing into a list of records changes the list, not a record (a plan's list).
   */
  const containerKind = (type: ts.Type, lists = true): string | undefined => {
    for (const part of type.isUnion() ? type.types : [type]) {
      const value = part.getStringIndexType() ?? (lists ? part.getNumberIndexType() : undefined)
      const k = value === undefined ? undefined : recordKind(value)
      if (k !== undefined) return k
    }
    return undefined
  }
  const isState = (type: ts.Type): boolean => {
    for (const part of type.isUnion() ? type.types : [type]) {
      const sym = part.aliasSymbol ?? part.getSymbol()
      const decl = sym?.declarations?.[0]
      if (sym?.name === 'State' && decl !== undefined && rel(decl.getSourceFile().fileName) === 'src/store/store.ts') return true
    }
    return false
  }
  /** The sections `state.x` or `state[k]` names: by the key's type when it is not written out ('?': any). */
  const sectionNames = (e: ts.PropertyAccessExpression | ts.ElementAccessExpression): string[] => {
    if (ts.isPropertyAccessExpression(e)) return [e.name.text]
    const written = checker.getTypeAtLocation(e.argumentExpression)
    const key = written.isTypeParameter() ? checker.getBaseConstraintOfType(written) ?? written : written
    const names = (key.isUnion() ? key.types : [key]).map((k) => (k.isStringLiteral() ? k.value : '?'))
    return [...new Set(names)].sort()
  }
  const strip = (e: ts.Expression): ts.Expression => {
    while (ts.isParenthesizedExpression(e) || ts.isNonNullExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isTypeAssertionExpression(e)) e = e.expression
    return e
  }
  /** What a write to `target` writes into: a record kind or a state section (undefined: none of the store's). */
  const kindOf = (target: ts.Expression, whole: boolean): string | undefined => {
    let e = strip(target)
    // Object.assign(x, …), x.push(…): x itself is written.
    let first = whole ? recordKind(checker.getTypeAtLocation(e)) ?? containerKind(checker.getTypeAtLocation(e), false) : undefined
    // The outermost record of the chain names the write; a section of the state anywhere in it wins.
    while (ts.isPropertyAccessExpression(e) || ts.isElementAccessExpression(e)) {
      const obj = strip(e.expression)
      const type = checker.getTypeAtLocation(obj)
      if (isState(type)) {
        return `state.${sectionNames(e).join('|')}`
      }
      first = recordKind(type) ?? containerKind(type) ?? first
      e = obj
    }
    return first
  }
  const ownerOf = (kind: string): string => {
    if (!kind.startsWith('state.')) return RECORD_OWNERS[kind]!
    // Several sections at once (`state[section]`): their common owner, or else nobody but the store.
    const owners = new Set(kind.slice(6).split('|').map((name) => SECTION_OWNERS[name] ?? 'src/store/store.ts'))
    return owners.size === 1 ? [...owners][0]! : 'src/store/store.ts'
  }

  for (const sf of program.getSourceFiles()) {
    const file = rel(sf.fileName)
    if (sf.isDeclarationFile || !files(file)) continue
    const record = (node: ts.Node, target: ts.Expression, whole = false): void => {
      const kind = kindOf(target, whole)
      if (kind === undefined) return
      const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1
      out.push({ file, line, text: node.getText(sf).split('\n')[0]!.slice(0, 120), kind, owner: ownerOf(kind) })
    }
    const visit = (node: ts.Node): void => {
      if (ts.isBinaryExpression(node) && node.operatorToken.kind >= ts.SyntaxKind.FirstAssignment && node.operatorToken.kind <= ts.SyntaxKind.LastAssignment) {
        record(node, node.left)
      } else if (ts.isDeleteExpression(node)) {
        record(node, node.expression)
      } else if ((ts.isPrefixUnaryExpression(node) || ts.isPostfixUnaryExpression(node)) &&
        (node.operator === ts.SyntaxKind.PlusPlusToken || node.operator === ts.SyntaxKind.MinusMinusToken)) {
        record(node, node.operand)
      } else if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
        const callee = node.expression
        const first = node.arguments[0]
        if (ts.isIdentifier(callee.expression) && callee.expression.text === 'Object' && ['assign', 'defineProperty', 'defineProperties'].includes(callee.name.text) && first !== undefined) {
          record(node, first, true)
        } else if (MUTATING_METHODS.has(callee.name.text) && (ts.isPropertyAccessExpression(strip(callee.expression)) || ts.isElementAccessExpression(strip(callee.expression)))) {
          record(node, callee.expression, true)
        }
      }
      ts.forEachChild(node, visit)
    }
    visit(sf)
  }
  return out
}

function srcProgram (): ts.Program {
  return ts.createProgram(walk(SRC), options())
}

t.test('every write into the store\'s records is made by the record\'s owner', async (t) => {
  const writes = recordWrites(srcProgram(), (f) => f.startsWith('src/') && !EXEMPT.test(f))
  // The check sees the owners' own writes: each owner writes each of its sections.
  for (const [section, owner] of Object.entries(SECTION_OWNERS)) {
    if (owner === 'src/store/store.ts') continue
    t.ok(writes.some((w) => w.kind.startsWith('state.') && w.kind.slice(6).split('|').includes(section) && w.file === owner), `the check sees ${owner} write state.${section}`)
  }
  t.ok(writes.some((w) => w.kind === 'EndpointRecord' && w.file === 'src/driver/records.ts'), 'the check sees the driver\'s records module change an endpoint')
  t.ok(writes.some((w) => w.kind === 'PoolRecord' && w.file === 'src/ipam/ipam.ts'), 'the check sees the IPAM change a pool')
  const bad = writes.filter((w) => w.file !== w.owner).map((w) => `${w.file}:${w.line}: ${w.text} (writes ${w.kind}, which only ${w.owner} may write)`)
  t.same(bad, [], 'writes outside the owner: call the owner\'s named operation instead')
})

t.test('the check catches writes through aliases, nesting, deletes and array methods', async (t) => {
  const probe = join(SRC, 'owners-probe.ts')
  const text = `
import type { EndpointRecord, PoolRecord } from './model/types.js'
import type { Store } from './store/store.js'
export function probe (store: Store, ep: EndpointRecord, pool: PoolRecord | undefined): void {
  store.state.networks['x'] = undefined as never
  const eps = store.state.endpoints
  delete eps['y']
  ep.joined = true
  ep.ports.push(ep.ports[0]!)
  if (pool) pool.overlay = 'o'
  pool!.allocated['10.0.0.2']!.kind = 'aux'
  Object.assign(ep, { mac: '' })
  store.state.hostId ??= 'h'
  const n = { ...ep }; n.mac = 'fine: a copy is not the record'
  const seen: string[] = []; seen.push(ep.id)
  const plan: { eps: EndpointRecord[] } = { eps: [] }; plan.eps.push(ep)
  const eps2 = Object.values(store.state.endpoints); eps2[0]!.mac = 'a live record'
  const k = 'pools' as 'pools' | 'networks'; delete store.state[k]['z']
}
`
  const opts = options()
  const host = ts.createCompilerHost(opts)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, lang, ...rest) => (name === probe ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest))
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === probe || fileExists(name)
  const program = ts.createProgram([probe], opts, host)
  t.same(ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), [], 'the probe compiles')
  const found = recordWrites(program, (f) => f === 'src/owners-probe.ts').map((w) => `${w.line} ${w.kind}`)
  t.same(found, [
    '5 state.networks', '7 EndpointRecord', '8 EndpointRecord', '9 EndpointRecord', '10 PoolRecord', '11 PoolRecord', '12 EndpointRecord', '13 state.hostId', '17 EndpointRecord', '18 state.networks|pools',
  ])
})
