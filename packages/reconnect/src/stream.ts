import {
  invalidArgument,
  isTowerlineError,
  TowerlineError,
  type TypedEmitter,
} from '@towerline/core';
import { Reconnector } from './reconnector.js';
import type { ReconnectorEvents, ReconnectorOptions } from './reconnector-options.js';

/** Builds a fresh stream; `signal` aborts when the stream is abandoned or the supervisor closes. */
export type StreamBuilder<T> = (
  signal: AbortSignal,
) => AsyncIterable<T> | Promise<AsyncIterable<T>>;

export type SuperviseStreamOptions = Omit<
  ReconnectorOptions<unknown>,
  'connect' | 'watch' | 'dispose' | 'minUptime' | 'isConnectionError'
>;

/**
 * A stream rebuilt with backoff whenever it throws or ends — the same {@link Reconnector}
 * state machine as a connection, with the built stream as the connection. A stream that failed
 * is never polled again; a rebuild that fails at once waits out a growing backoff (no hot
 * loop); the backoff resets once a rebuilt stream yields. Single consumer.
 *
 * @example
 * ```ts
 * const certs = superviseStream((signal) => watchCertificates(dir, signal), {
 *   policy: backoff.exponential({ initial: 10, max: 10_000 }),
 * });
 * for await (const cert of certs) tls.swap(cert);
 * ```
 */
export class SupervisedStream<T> implements AsyncIterable<T> {
  readonly reconnector: Reconnector<AsyncIterator<T>>;
  #consumed = false;
  readonly #closed: Promise<IteratorResult<T>>;
  #markClosed!: () => void;

  constructor(build: StreamBuilder<T>, options: SuperviseStreamOptions = {}) {
    if (typeof build !== 'function') invalidArgument('build', 'expected a function');
    this.#closed = new Promise((resolve) => {
      this.#markClosed = () => resolve({ done: true, value: undefined });
    });
    this.reconnector = new Reconnector<AsyncIterator<T>>({
      name: 'stream',
      ...options,
      // Only a yielded value proves a rebuilt stream healthy.
      minUptime: Number.POSITIVE_INFINITY,
      connect: async ({ signal }) => {
        const iterable = await build(signal);
        if (typeof iterable?.[Symbol.asyncIterator] !== 'function') {
          throw new TowerlineError(
            'ERR_INVALID_ARGUMENT',
            'the stream builder returned no AsyncIterable',
            {
              parameter: 'build',
            },
          );
        }
        return iterable[Symbol.asyncIterator]();
      },
      // Not awaited: an async generator suspended in a pending next() finishes its return()
      // only after that next() settles; the aborted signal is what ends it.
      dispose: (iterator) => {
        try {
          iterator.return?.()?.catch?.(() => {});
        } catch {
          // A broken return() changes nothing: the stream is abandoned either way.
        }
      },
    });
    this.reconnector.events.on('closed', () => this.#markClosed());
  }

  get events(): TypedEmitter<ReconnectorEvents> {
    return this.reconnector.events;
  }

  /** True while the current build has yielded and not failed. */
  get healthy(): boolean {
    return this.reconnector.healthy;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#consumed) {
      throw new TowerlineError('ERR_INVALID_ARGUMENT', 'a supervised stream has one consumer', {
        parameter: 'iterator',
      });
    }
    this.#consumed = true;
    return this.#iterate();
  }

  /** Ends the stream: the consumer's loop finishes, the current build is abandoned. */
  close(): Promise<void> {
    return this.reconnector.close();
  }

  async *#iterate(): AsyncGenerator<T> {
    const r = this.reconnector;
    try {
      for (;;) {
        let iterator: AsyncIterator<T>;
        try {
          iterator = await r.acquire();
        } catch (error) {
          if (isTowerlineError(error, 'ERR_CLOSED')) return;
          throw error;
        }
        const generation = r.generation;
        for (;;) {
          let step: IteratorResult<T>;
          try {
            step = await Promise.race([iterator.next(), this.#closed]);
          } catch (error) {
            r.reportLost(generation, error);
            break;
          }
          if (r.state === 'closed') return;
          if (r.generation !== generation) break;
          if (step.done) {
            r.reportLost(generation, new TowerlineError('ERR_CONNECTION_LOST', 'the stream ended'));
            break;
          }
          r.markHealthy(generation);
          yield step.value;
        }
      }
    } finally {
      await this.close();
    }
  }
}

/** `new SupervisedStream(build, options)`. */
export function superviseStream<T>(
  build: StreamBuilder<T>,
  options?: SuperviseStreamOptions,
): SupervisedStream<T> {
  return new SupervisedStream(build, options);
}
