export { createOsharaEmulator } from './emulator/server.js'
export type * from './emulator/emulator-types.js'
