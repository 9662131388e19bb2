/**
 * A re-export kept only for src/cni/main.ts (being changed elsewhere): it should import
 * src/api/client.ts, then this file goes (it is an upward arrow, runtime -> api: test/layout/imports.test.ts).
 */
export { apiRequester, type ApiRequest, type Method } from '../api/client.js'
