import { describeValue, invalidArgument } from '@towerline/core';

/**
 * Throws `ERR_INVALID_ARGUMENT` naming `name` unless `value` is a number (never a numeric
 * string: no coercion) for which `ok` holds. The message describes the value, never quotes it.
 */
export function expectNumber(
  name: string,
  value: unknown,
  ok: (n: number) => boolean,
  expected: string,
): asserts value is number {
  if (typeof value !== 'number' || !ok(value))
    invalidArgument(name, `expected ${expected}, got ${describeValue(value)}`);
}

/** Throws `ERR_INVALID_ARGUMENT` naming `name` unless `value` is undefined or a function. */
export function expectFunction(name: string, value: unknown, expected = 'a function'): void {
  if (value !== undefined && typeof value !== 'function')
    invalidArgument(name, `expected ${expected}, got ${describeValue(value)}`);
}

/** Throws `ERR_INVALID_ARGUMENT` unless a layer's `name` is undefined or a non-empty string. */
export function expectName(value: unknown): void {
  if (value !== undefined && (typeof value !== 'string' || value === ''))
    invalidArgument('name', `expected a non-empty string, got ${describeValue(value)}`);
}
