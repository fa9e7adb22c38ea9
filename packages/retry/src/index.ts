/**
 * @towerline/retry — `RetryLayer`: retries with a pluggable backoff, server-hinted delays
 * (`Retry-After`) and a shared retry budget, on a happy path that costs one promise hop.
 *
 * @packageDocumentation
 */
export { RetryBudget, type RetryBudgetOptions } from './budget.js';
export {
  type BudgetExhaustedEvent,
  type ExhaustedEvent,
  type RetryEvent,
  type RetryEvents,
  RetryLayer,
  type RetryOptions,
  RetryService,
  retry,
} from './retry.js';
export { parseRetryAfter } from './retry-after.js';
