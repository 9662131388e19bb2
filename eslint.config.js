// ESLint for ferry: the rules about promises and unions that the TypeScript
// compiler does not check. Type-aware: it reads tsconfig.eslint.json, which
// covers src, test and bench together. `npm run lint` fails on any finding.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'tap-snapshots/**'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: {
        project: './tsconfig.eslint.json',
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits loses its rejection (and an unhandled rejection
      // ends the agent): await it, .catch() it, or `void` it with a comment
      // saying why it cannot reject. tap queues a subtest on its parent, which
      // waits for it and reports its failures, so t.test()'s promise is not lost.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }],
      }],
      // An async function where a void callback is expected (an event handler,
      // setInterval) drops its rejection the same way.
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `return promise` inside try/catch escapes the catch.
      '@typescript-eslint/return-await': ['error', 'error-handling-correctness-only'],
      // A switch over a union names every member, or says what the rest do in a `default`.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // An empty catch says nothing: handle the error, log it, or comment why it is safe to drop.
      'no-empty': ['error', { allowEmptyCatch: false }],
    },
  },
)
