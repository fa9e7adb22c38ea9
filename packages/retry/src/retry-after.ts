import { describeValue, invalidArgument } from '@towerline/core';

/**
 * Reads an HTTP `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
 * Returns milliseconds from `now`, never negative, or `undefined` when the value is absent or
 * malformed — so it drops straight into `delayFromError`.
 *
 * @example
 * ```ts
 * new RetryLayer({ delayFromError: (e) => parseRetryAfter((e as HttpError).retryAfter) });
 * ```
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string')
    invalidArgument(
      'value',
      `expected a Retry-After header value (a string), got ${describeValue(value)}`,
    );
  if (typeof now !== 'number' || Number.isNaN(now))
    invalidArgument('now', `expected wall-clock ms, got ${describeValue(now)}`);
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP-date form starts with a day name. Without this check V8's lenient Date.parse
  // reads '1.5' or '-1' as dates in 2001, turning a malformed header into "retry now".
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
