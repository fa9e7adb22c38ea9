import { type Channel, channel as diagnosticsChannel } from 'node:diagnostics_channel';
import { EventEmitter } from 'eventemitter3';
import { contextProblem } from './context.js';

/** A map from event name to its payload, a plain serialisable object. */
export type EventMap = { [event: string]: object };

/** Something that can be unsubscribed; also usable with `using`. */
export interface Disposable {
  dispose(): void;
  [Symbol.dispose](): void;
}

/** Reported when a listener throws; the emitting machine carries on. */
export interface ListenerError {
  event: string;
  error: unknown;
}

export type ListenerErrorHandler = (report: ListenerError) => void;

export interface TypedEmitterOptions {
  onListenerError?: ListenerErrorHandler;
  /**
   * Publishes every event on `node:diagnostics_channel` as `<channel>:<event>` (for example
   * `towerline:reconnect:connected`), with the payload plus `source` (the emitter's `source`
   * name). Costs one boolean check per event while nobody subscribes.
   */
  channel?: string;
  /** Names the emitting object in published messages (`redis`, `config:tls`). */
  source?: string;
}

/** What is published on a diagnostics channel for one event. */
export type ChannelMessage<P extends object = object> = P & { source: string; event: string };

/**
 * The default report for a throwing listener: a process warning (visible on stderr, catchable
 * with `process.on('warning')`), never an exception in the code that emitted.
 */
export const warnListenerError: ListenerErrorHandler = ({ event, error }) => {
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  process.emitWarning(`a listener for "${event}" threw: ${what}`, {
    code: 'TOWERLINE_LISTENER_ERROR',
  });
};

/**
 * A typed event emitter on eventemitter3 in which a listener that throws is reported to
 * `onListenerError` (default {@link warnListenerError}) and never propagates into the machine
 * that emitted; the remaining listeners still run. There is no special `error` event: nothing
 * crashes a process for want of a listener.
 *
 * @example
 * ```ts
 * const events = new TypedEmitter<{ retry: { attempt: number } }>();
 * using sub = events.subscribe('retry', (e) => console.log(e.attempt));
 * ```
 */
export class TypedEmitter<Events extends EventMap> {
  readonly #ee = new EventEmitter();
  readonly #onListenerError: ListenerErrorHandler;
  /**
   * Each listener is registered through its own guard (a try/catch around it), made once per
   * listener, so eventemitter3's `once`/`off` bookkeeping, which matches on the function, sees
   * one function per listener. (One guard shared by every listener made eventemitter3 drop
   * every `once` listener of the event whenever one of them fired, including one added during
   * that emit.)
   */
  readonly #guards = new WeakMap<(payload: never) => void, (payload: unknown) => void>();
  #emitting = '';
  /** The diagnostics channel prefix, e.g. `towerline:reconnect`. */
  readonly channel: string | undefined;
  /** The emitting object's name, carried in published messages. */
  source: string;
  readonly #channels = new Map<string, Channel>();

  constructor(options: TypedEmitterOptions = {}) {
    this.#onListenerError = options.onListenerError ?? warnListenerError;
    this.channel = options.channel;
    this.source = options.source ?? options.channel ?? 'towerline';
  }

  #guardFor(listener: (payload: never) => void): (payload: unknown) => void {
    let guard = this.#guards.get(listener);
    if (!guard) {
      guard = (payload) => {
        try {
          listener(payload as never);
        } catch (error) {
          this.#report(this.#emitting, error);
        }
      };
      this.#guards.set(listener, guard);
    }
    return guard;
  }

  on<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): this {
    this.#ee.on(event, this.#guardFor(listener));
    return this;
  }

  once<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): this {
    this.#ee.once(event, this.#guardFor(listener));
    return this;
  }

  off<K extends keyof Events & string>(event: K, listener?: (payload: Events[K]) => void): this {
    if (!listener) this.#ee.off(event);
    else {
      // Never `off(event, undefined)`: that removes every listener of the event.
      const guard = this.#guards.get(listener);
      if (guard) this.#ee.off(event, guard);
    }
    return this;
  }

  /** Subscribes and returns a handle that unsubscribes (cockatiel style). */
  subscribe<K extends keyof Events & string>(
    event: K,
    listener: (payload: Events[K]) => void,
  ): Disposable {
    // A wrapper of its own, so that disposing removes this subscription only, not every
    // registration of the same function.
    const own = (payload: Events[K]) => listener(payload);
    this.on(event, own);
    const dispose = () => {
      this.off(event, own);
    };
    return { dispose, [Symbol.dispose]: dispose };
  }

  /** Resolves with the next payload of `event`; rejects with `signal.reason` on abort. */
  next<K extends keyof Events & string>(event: K, signal?: AbortSignal): Promise<Events[K]> {
    const problem = signal === undefined ? undefined : contextProblem({ signal });
    if (problem !== undefined) return Promise.reject(problem);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.off(event, onEvent);
        reject(signal!.reason);
      };
      const onEvent = (payload: Events[K]) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(payload);
      };
      this.once(event, onEvent);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Whether emitting `event` reaches anyone: a listener, or a subscriber of its diagnostics
   * channel. For emitters that would otherwise pay for measuring what nobody reads.
   */
  observed(event: keyof Events & string): boolean {
    return this.#ee.listenerCount(event) > 0 || this.channelFor(event)?.hasSubscribers === true;
  }

  listenerCount(event: keyof Events & string): number {
    return this.#ee.listenerCount(event);
  }

  eventNames(): Array<keyof Events & string> {
    return this.#ee.eventNames() as Array<keyof Events & string>;
  }

  removeAllListeners(event?: keyof Events & string): this {
    this.#ee.removeAllListeners(event);
    return this;
  }

  /**
   * Calls every listener of `event` with `payload`. A listener that throws is reported and the
   * rest still run. Returns whether there was any listener.
   */
  emit<K extends keyof Events & string>(event: K, payload: Events[K]): boolean {
    if (this.channel !== undefined) this.#publish(event, payload);
    const outer = this.#emitting;
    this.#emitting = event;
    try {
      return this.#ee.emit(event, payload);
    } finally {
      this.#emitting = outer;
    }
  }

  /** The diagnostics channel an event is published on, or undefined without a prefix. */
  channelFor(event: keyof Events & string): Channel | undefined {
    if (this.channel === undefined) return undefined;
    let ch = this.#channels.get(event);
    if (!ch) {
      ch = diagnosticsChannel(`${this.channel}:${event}`);
      this.#channels.set(event, ch);
    }
    return ch;
  }

  #publish(event: string, payload: object): void {
    const ch = this.channelFor(event);
    if (!ch?.hasSubscribers) return;
    try {
      ch.publish({ ...payload, source: this.source, event });
    } catch (error) {
      this.#report(event, error);
    }
  }

  #report(event: string, error: unknown): void {
    try {
      this.#onListenerError({ event, error });
    } catch {
      // The reporter itself failed; there is nowhere left to report to.
    }
  }
}
