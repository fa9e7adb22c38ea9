/**
 * @towerline/retry — `RetryLayer`: retries with a pluggable backoff, server-hinted delays
 * (`Retry-After`) and a shared retry budget, deciding per request on its context (signal,
 * deadline, idempotency, attempts across the stack), waiting for a lost connection rather than
 * sleeping blind, on a happy path that costs one promise reaction.
 *
 * @packageDocumentation
 */
export { RetryBudget, type RetryBudgetLike, type RetryBudgetOptions } from './budget.js';
export {
  type BudgetExhaustedEvent,
  type ExhaustedEvent,
  isFinalError,
  type RetryEvent,
  type RetryEvents,
  type RetryOptions,
} from './policy.js';
export { RetryLayer, RetryService, retry } from './retry.js';
export { parseRetryAfter } from './retry-after.js';
