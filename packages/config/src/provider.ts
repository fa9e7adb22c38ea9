import { isDeepStrictEqual } from 'node:util';
import {
  backoff,
  type Clock,
  describeValue,
  expectOptions,
  type IntervalFunction,
  invalidArgument,
  isTowerlineError,
  systemClock,
  TowerlineError,
  TypedEmitter,
  untilAborted,
} from '@towerline/core';
import { type SupervisedStream, superviseStream } from '@towerline/reconnect';
import { describeParseError, parseErrorCause } from './parse-error.js';
import type {
  ConfigEvents,
  ConfigProviderOptions,
  ConfigSource,
  StartOptions,
} from './provider-options.js';
import { deepFreeze, invalid, notReady, problemsOf } from './provider-support.js';
import { scrub, secretsOf } from './scrub.js';
import { type StandardSchemaV1, schemaProblems } from './standard-schema.js';

export type {
  ConfigEvents,
  ConfigProviderOptions,
  ConfigSource,
  StartOptions,
  ValidationResult,
} from './provider-options.js';

interface Reload<Raw> {
  input: Raw | (() => Raw | Promise<Raw>) | undefined;
  promise: Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * A hot-reloadable value: `get()` is one property read of an immutable snapshot (the ArcSwap
 * of JS), every accepted value bumps `version`, an invalid one is refused with every problem
 * listed while the old value stays, and reloads are serialised so that N concurrent
 * `reload()`s cost at most two loads and never apply older input over newer.
 *
 * @example
 * ```ts
 * const config = new ConfigProvider({
 *   source: fileSource('/etc/app/config.json'),
 *   parse: (text) => JSON.parse(text) as AppConfig,
 *   validate: (c) => (c.rateLimit.burst > 0 ? [] : ['rateLimit.burst must be > 0']),
 *   staticKeys: ['listen'],
 * });
 * await config.start({ timeout: 5_000 });
 * config.get().rateLimit; // always the latest valid value
 * ```
 */
export class ConfigProvider<T, Raw = T> {
  readonly events = new TypedEmitter<ConfigEvents>({ channel: 'towerline:config' });
  readonly name: string;
  /**
   * The snapshot `get()` returns. Before the first value it is a stand-in whose every property
   * access throws `ERR_NOT_READY`, so that `get()` stays one property read with no check.
   */
  #snapshot: T;
  #value: T | undefined;
  #version = 0;
  #healthy: boolean | undefined;
  #closed = false;
  readonly #parse: ((raw: Raw) => T) | undefined;
  readonly #schema: StandardSchemaV1<unknown, T> | undefined;
  readonly #validate: ConfigProviderOptions<T, Raw>['validate'];
  readonly #staticKeys: ReadonlyArray<keyof T & string>;
  readonly #source: ConfigSource<Raw>;
  readonly #policy: IntervalFunction;
  readonly #clock: Clock;
  #stream: SupervisedStream<Raw> | undefined;
  #consuming: Promise<void> | undefined;
  #running: Promise<unknown> | undefined;
  #queued: Reload<Raw> | undefined;
  #loads = 0;

  constructor(options: ConfigProviderOptions<T, Raw> = {}) {
    expectOptions(options, true);
    const source =
      typeof options.source === 'function' ? { stream: options.source } : options.source;
    if (source !== undefined && (typeof source !== 'object' || source === null)) {
      invalidArgument('source', 'expected a stream builder or { stream?, load? }');
    }
    for (const key of ['parse', 'validate'] as const) {
      if (options[key] !== undefined && typeof options[key] !== 'function') {
        invalidArgument(key, 'expected a function');
      }
    }
    this.name = options.name ?? 'config';
    this.#snapshot = notReady(() => this.#notReady());
    this.events.source = this.name;
    this.#source = source ?? {};
    this.#parse = options.parse;
    if (
      options.schema !== undefined &&
      typeof (options.schema as { '~standard'?: { validate?: unknown } })?.['~standard']
        ?.validate !== 'function'
    ) {
      invalidArgument('schema', 'expected a Standard Schema (an object with ~standard.validate)');
    }
    this.#schema = options.schema;
    this.#validate = options.validate;
    this.#staticKeys = options.staticKeys ?? [];
    this.#policy =
      options.policy ?? backoff.exponential({ initial: 10, multiplier: 2, max: 10_000 });
    this.#clock = options.clock ?? systemClock;
    if (options.initial !== undefined) this.#accept(options.initial as unknown as Raw, true);
  }

  /**
   * The current value: one property read of an immutable snapshot. Before the first value it
   * returns a stand-in on which any property access throws `ERR_NOT_READY`.
   */
  get(): T {
    return this.#snapshot;
  }

  /** Whether a value has been accepted (`get()` is usable). */
  get ready(): boolean {
    return this.#value !== undefined;
  }

  /** Increments with every accepted value; 0 before the first. */
  get version(): number {
    return this.#version;
  }

  /** Whether the source is delivering: false after a failure until it yields again. */
  get healthy(): boolean {
    return this.#healthy === true || (this.#healthy === undefined && this.#value !== undefined);
  }

  /** How many times input was loaded through `reload()` (for tests and dashboards). */
  get loads(): number {
    return this.#loads;
  }

  /**
   * Starts the source and resolves with the first valid value. Rejects on `timeout`
   * (`ERR_TIMEOUT`), on abort, or when the source fails before any value arrived.
   */
  start(options: StartOptions = {}): Promise<T> {
    if (this.#closed)
      return Promise.reject(new TowerlineError('ERR_CLOSED', `${this.name} is closed`));
    const { signal, timeout, failFast = false } = options;
    if (timeout !== undefined && !(timeout > 0))
      invalidArgument('timeout', `expected ms > 0, got ${describeValue(timeout)}`);
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.#startSource();
    if (this.#value !== undefined) return Promise.resolve(this.#value);
    return new Promise<T>((resolve, reject) => {
      const subs = [
        this.events.subscribe('updated', () => finish(undefined)),
        this.events.subscribe('rejected', ({ error }) => {
          if (failFast && this.#value === undefined) finish(error);
        }),
        this.events.subscribe('unhealthy', ({ error }) => {
          if (this.#value === undefined) {
            finish(
              new TowerlineError(
                'ERR_CONFIG_INVALID',
                `${this.name}: the source failed before delivering a value`,
                {
                  cause: error,
                },
              ),
            );
          }
        }),
      ];
      const onAbort = () => finish(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer =
        timeout === undefined
          ? undefined
          : this.#clock.setTimeout(
              () =>
                finish(
                  new TowerlineError(
                    'ERR_TIMEOUT',
                    `${this.name}: no valid value within ${timeout} ms`,
                  ),
                ),
              timeout,
            );
      const finish = (error: unknown) => {
        for (const s of subs) s.dispose();
        signal?.removeEventListener('abort', onAbort);
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        if (error === undefined) resolve(this.#value as T);
        else reject(error);
      };
      if (!this.#source.stream && this.#source.load) {
        this.reload().catch((error: unknown) => finish(error));
      }
    });
  }

  /**
   * Loads and applies new input: a value, a loader, or (no argument) the source's `load`.
   * Serialised: while one reload runs, later calls wait and then run once, with the latest
   * input they were given. Resolves with the value in force afterwards; rejects with
   * `ERR_CONFIG_INVALID` (old value kept) when the input is invalid.
   *
   * `signal` ends the wait: an aborted signal loads nothing, and one that fires later rejects
   * the returned promise with its reason at once (a load already running still completes and
   * applies, as it would for the other callers it serves).
   */
  reload(
    input?: Raw | (() => Raw | Promise<Raw>),
    options: { signal?: AbortSignal } = {},
  ): Promise<T> {
    const { signal } = options;
    if (signal === undefined) return this.#reload(input);
    if (signal.aborted) return Promise.reject(signal.reason);
    return untilAborted(this.#reload(input), signal);
  }

  #reload(input?: Raw | (() => Raw | Promise<Raw>)): Promise<T> {
    if (this.#closed)
      return Promise.reject(new TowerlineError('ERR_CLOSED', `${this.name} is closed`));
    if (input === undefined && !this.#source.load) {
      return Promise.reject(
        new TowerlineError(
          'ERR_INVALID_ARGUMENT',
          `${this.name}: reload() needs input: the source has no load()`,
          {
            parameter: 'input',
          },
        ),
      );
    }
    if (!this.#running) return this.#run(input) as Promise<T>;
    if (this.#queued) {
      // The newest input wins; everyone queued gets the result of that one load.
      if (input !== undefined) this.#queued.input = input;
      return this.#queued.promise as Promise<T>;
    }
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#queued = { input, promise, resolve, reject };
    return promise as Promise<T>;
  }

  /** Stops the source; nothing of it is left running. `get()` keeps the last value. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const queued = this.#queued;
    this.#queued = undefined;
    queued?.reject(new TowerlineError('ERR_CLOSED', `${this.name} is closed`));
    await this.#stream?.close();
    await this.#consuming;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #run(input: Reload<Raw>['input']): Promise<unknown> {
    const running = (async () => {
      this.#loads++;
      const raw =
        input === undefined
          ? await this.#source.load!()
          : typeof input === 'function'
            ? await (input as () => Raw | Promise<Raw>)()
            : input;
      return this.#accept(raw, false);
    })();
    this.#running = running;
    const next = () => {
      this.#running = undefined;
      const queued = this.#queued;
      this.#queued = undefined;
      if (queued && !this.#closed) this.#run(queued.input).then(queued.resolve, queued.reject);
    };
    running.then(next, next);
    return running;
  }

  #startSource(): void {
    const build = this.#source.stream;
    if (!build || this.#stream || this.#closed) return;
    const stream = superviseStream(build, {
      policy: this.#policy,
      clock: this.#clock,
      name: this.name,
    });
    this.#stream = stream;
    stream.events.on('healthy', () => this.#setHealthy(true, undefined));
    stream.events.on('reconnectScheduled', ({ error }) => this.#setHealthy(false, error));
    stream.events.on('gaveUp', ({ error }) => this.#setHealthy(false, error));
    this.#consuming = (async () => {
      try {
        for await (const raw of stream) {
          try {
            this.#accept(raw, false);
          } catch {
            // Already reported as `rejected`; the stream goes on.
          }
        }
      } catch (error) {
        this.#setHealthy(false, error);
      }
    })();
  }

  #setHealthy(healthy: boolean, error: unknown): void {
    if (this.#healthy === healthy) return;
    this.#healthy = healthy;
    if (healthy) this.events.emit('healthy', {});
    else this.events.emit('unhealthy', { error });
  }

  /** Parses, validates, applies the static-key rule and swaps the snapshot. Synchronous. */
  #accept(raw: Raw, initial: boolean): T {
    const prev = this.#value;
    let next: T;
    try {
      next = this.#parse ? this.#parse(raw) : (raw as unknown as T);
    } catch (error) {
      throw this.#reject(
        invalid(
          this.name,
          [`could not parse: ${describeParseError(error, raw)}`],
          parseErrorCause(error, raw),
        ),
        initial,
      );
    }
    if (this.#schema) {
      const result = this.#schema['~standard'].validate(next);
      if (result instanceof Promise) {
        result.catch(() => {});
        throw this.#reject(
          invalid(this.name, [
            'the schema is asynchronous; ConfigProvider needs a synchronous one',
          ]),
          initial,
        );
      }
      if (result.issues) {
        const secrets = secretsOf(raw, next);
        throw this.#reject(
          invalid(this.name, schemaProblems(result.issues, next, secrets)),
          initial,
        );
      }
      next = result.value;
    }
    let problems: string[];
    try {
      problems = problemsOf(this.#validate?.(next, prev));
    } catch (error) {
      problems = [(error as Error)?.message ?? String(error)];
    }
    if (problems.length > 0) {
      // validate() is the user's: it may quote the value it refused (trimmed, parsed, …).
      const secrets = secretsOf(raw, next);
      problems = problems.map((p) => scrub(String(p), secrets));
    }
    if (next === undefined || next === null) problems.unshift('the value is empty');
    if (problems.length > 0) throw this.#reject(invalid(this.name, problems), initial);
    if (prev !== undefined && prev !== null && this.#staticKeys.length > 0) {
      const changed = this.#staticKeys.filter((k) => !isDeepStrictEqual(prev[k], next[k]));
      if (changed.length > 0) {
        next = { ...next } as T;
        for (const k of changed) next[k] = prev[k];
        this.events.emit('staticChange', {
          changed,
          message: `${this.name}: static settings cannot change at runtime; kept the current ${changed.join(', ')} (restart to apply)`,
        });
      }
    }
    if (prev !== undefined && isDeepStrictEqual(prev, next)) return prev;
    this.#value = deepFreeze(next);
    this.#snapshot = this.#value;
    this.#version++;
    this.events.emit('updated', { version: this.#version });
    return next;
  }

  #reject(error: TowerlineError, initial: boolean): TowerlineError {
    if (initial) throw error;
    this.events.emit('rejected', { error });
    return error;
  }

  #notReady(): TowerlineError {
    return new TowerlineError(
      'ERR_NOT_READY',
      this.#closed
        ? `${this.name} is closed and never had a value`
        : `${this.name} has no value yet: await start() first`,
    );
  }
}

/** True when `error` is a validation failure from a {@link ConfigProvider}. */
export function isConfigInvalid(error: unknown): error is TowerlineError {
  return isTowerlineError(error, 'ERR_CONFIG_INVALID');
}
