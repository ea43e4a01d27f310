export { sessionStoreContract } from './store-contract.js'
export type { SessionStoreContractCase, SessionStoreContractOptions } from './store-contract.js'
export { quotaStoreContract, type QuotaStoreContractCase, type QuotaStoreContractOptions } from './quota-contract.js'
export {
  idempotencyStoreContract,
  type IdempotencyStoreContractCase,
  type IdempotencyStoreContractOptions
} from './idempotency-contract.js'
