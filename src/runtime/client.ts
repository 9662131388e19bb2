/** The runtime commands and the CNI plugin use the CLI's API client (src/cli/client.ts). */
export { apiRequester, type ApiRequest, type Method } from '../cli/client.js'
