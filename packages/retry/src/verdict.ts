import { describeError, type RequestContext, TowerlineError } from '@towerline/core';
import { delayFor, isFinalError, type RetryPolicy, saysMayHaveExecuted } from './policy.js';

function markBudgetExhausted(error: unknown): void {
  if (typeof error === 'object' && error !== null && Object.isExtensible(error)) {
    (error as { budgetExhausted?: boolean }).budgetExhausted = true;
  }
}

/**
 * Attempt `c.attempts` of a request failed with `error`: the delay before the next attempt, or
 * throws what the caller gets instead (the error itself, `ERR_RETRY_EXHAUSTED`, `ERR_TIMEOUT`
 * when the deadline falls first, the signal's reason), emitting `exhausted` and
 * `budgetExhausted` on the way.
 */
export function verdict(policy: RetryPolicy, error: unknown, c: RequestContext): number {
  const signal = c.signal;
  if (signal?.aborted) throw signal.reason;
  if (saysMayHaveExecuted(error)) c.mayHaveExecuted = true;
  const attempt = c.attempts;
  if (isFinalError(error) || c.definitive || (c.mayHaveExecuted && c.idempotent !== true)) {
    throw error;
  }
  if (policy.retryOn !== undefined && !policy.retryOn(error, attempt)) throw error;
  if (!(attempt < c.maxAttempts)) {
    policy.events.emit('exhausted', { attempts: attempt, error });
    throw new TowerlineError(
      'ERR_RETRY_EXHAUSTED',
      `retry exhausted after ${attempt} attempts (last error: ${describeError(error)})`,
      { cause: error, attempts: attempt, mayHaveExecuted: c.mayHaveExecuted },
    );
  }
  const delayMs = delayFor(policy, error, attempt);
  if (c.deadline !== undefined && policy.clock.now() + delayMs >= c.deadline) {
    throw new TowerlineError(
      'ERR_TIMEOUT',
      `the deadline falls before attempt ${attempt + 1} could start (last error: ${describeError(error)})`,
      { cause: error, attempts: attempt, mayHaveExecuted: c.mayHaveExecuted },
    );
  }
  if (c.budget !== undefined && !c.budget.withdraw()) {
    markBudgetExhausted(error);
    policy.events.emit('budgetExhausted', { attempt, error });
    throw error;
  }
  return delayMs;
}
