/**
 * A re-export kept only for src/cni/main.ts (being changed elsewhere): it should import
 * src/api/client.ts, then this file goes (test/layout/imports.test.ts lists cni -> cli).
 */
export { apiSocketFrom } from '../api/client.js'
