import { TowerlineError } from '@towerline/core';
import type { ValidationResult } from './provider-options.js';

/** Freezes plain data in place; class instances (a SecureContext, a Buffer) are left alone. */
export function deepFreeze<V>(value: V): V {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  const proto = Object.getPrototypeOf(value);
  // Plain data only: class instances (a SecureContext, a Buffer) keep their own semantics.
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}

/** The problems a `validate` result lists. */
export function problemsOf(result: ValidationResult): string[] {
  if (result === undefined || result === true) return [];
  if (result === false) return ['rejected by validate()'];
  if (typeof result === 'string') return result ? [result] : [];
  return [...result];
}

/** `ERR_CONFIG_INVALID` listing every problem. */
export function invalid(name: string, problems: string[], cause?: unknown): TowerlineError {
  const list = problems.map((p) => `  - ${p}`).join('\n');
  return new TowerlineError(
    'ERR_CONFIG_INVALID',
    `${name}: invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${list}`,
    { problems, ...(cause === undefined ? {} : { cause }) },
  );
}

export /** A stand-in value whose every use throws (`ERR_NOT_READY`). */
function notReady<T>(error: () => TowerlineError): T {
  const fail = (): never => {
    throw error();
  };
  return new Proxy(Object.create(null), {
    get: fail,
    has: fail,
    ownKeys: fail,
    getOwnPropertyDescriptor: fail,
    set: fail,
    defineProperty: fail,
    deleteProperty: fail,
    getPrototypeOf: fail,
  }) as T;
}
