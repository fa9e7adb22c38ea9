/** The options, sources and events of a {@link ConfigProvider}. */
import type { Clock, IntervalFunction, TowerlineError } from '@towerline/core';
import type { StreamBuilder } from '@towerline/reconnect';
import type { StandardSchemaV1 } from './standard-schema.js';

/** Where values come from: pushed by a stream, read on demand by `load`, or both. */
export interface ConfigSource<Raw> {
  /** Values over time; supervised by `superviseStream` (rebuilt with backoff on failure). */
  stream?: StreamBuilder<Raw>;
  /** Reads the current input; used by `reload()` without an argument. */
  load?: () => Raw | Promise<Raw>;
}

/** What `validate` returns: the problems found (none means valid), or `true`/`void` for valid. */
export type ValidationResult = readonly string[] | string | boolean | undefined | void;

export interface ConfigProviderOptions<T, Raw = T> {
  /** A source, or a bare stream builder. */
  source?: ConfigSource<Raw> | StreamBuilder<Raw>;
  /**
   * Turns raw input (file contents, a message) into a value; a throw rejects the input. The
   * message names what the parser expected and where (line, column), never the source line.
   */
  parse?: (raw: Raw) => T;
  /**
   * A Standard Schema (zod 3.24+, valibot 1+, ArkType, …) that checks the parsed value and may
   * transform it (defaults, coercions): its output is the value. Runs after `parse`, before
   * `validate`; each issue becomes one problem, `path: message`, with the offending string
   * value masked. Must be synchronous.
   */
  schema?: StandardSchemaV1<unknown, T>;
  /**
   * Checks a candidate against the current value. Return every problem found; a non-empty list
   * (or a throw) rejects the candidate and keeps the current value.
   */
  validate?: (next: T, prev: T | undefined) => ValidationResult;
  /**
   * Top-level keys that cannot change at runtime (listen address, storage mode). A change to one
   * is warned, listing the changed keys, and not applied; the rest is swapped whole.
   */
  staticKeys?: ReadonlyArray<keyof T & string>;
  /** A value to serve before the source delivers one. Validated like any other. */
  initial?: T;
  /** Backoff for rebuilding a failed stream. Default: 10 ms doubling to 10 s (seed 000). */
  policy?: IntervalFunction;
  clock?: Clock;
  name?: string;
}

export type ConfigEvents = {
  /** A new value was accepted; `get()` returns it from now on. */
  updated: { version: number };
  /** A candidate was refused; the current value stays. */
  rejected: { error: TowerlineError };
  /** A change to static keys was ignored. */
  staticChange: { changed: string[]; message: string };
  /** The source delivers again. */
  healthy: Record<string, never>;
  /** The source failed; it is being rebuilt with backoff. */
  unhealthy: { error: unknown };
};

export interface StartOptions {
  signal?: AbortSignal;
  /** Rejects with `ERR_TIMEOUT` when no valid value arrived in time, ms. */
  timeout?: number;
  /**
   * Rejects with the refusal (`ERR_CONFIG_INVALID`, the parse or validation error as `cause`)
   * as soon as the source delivers a value that is refused, instead of waiting for a valid one.
   * For startup, where a bad file should stop the process at once. Default false.
   */
  failFast?: boolean;
}
