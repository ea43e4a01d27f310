export { sessionStoreContract } from './testing/store-contract.js'
export type { SessionStoreContractCase, SessionStoreContractOptions } from './testing/store-contract.js'
export { quotaStoreContract, type QuotaStoreContractCase, type QuotaStoreContractOptions } from './testing/quota-contract.js'
export {
  idempotencyStoreContract,
  type IdempotencyStoreContractCase,
  type IdempotencyStoreContractOptions
} from './testing/idempotency-contract.js'
