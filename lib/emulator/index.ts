export { createOsharaEmulator } from './server.js'
export type * from './types.js'
