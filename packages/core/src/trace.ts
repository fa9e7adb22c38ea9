import { type TracingChannel, tracingChannel } from 'node:diagnostics_channel';

/**
 * What a towerline layer publishes for one call on its `TracingChannel`
 * (`towerline:<layer>:call`): the standard `start` / `end` / `asyncStart` / `asyncEnd` / `error`
 * messages of `tracePromise`, so any APM (or `@towerline/otel`) can open a span at `start` and
 * close it at `asyncEnd`. Node adds `result` or `error` when the call settles.
 */
export interface CallTrace {
  /** The emitter of the layer that made the call: tells two layers of one kind apart. */
  readonly events: object;
  /** The layer's name (its emitter's `source`). */
  readonly source: string;
  /** The request, as the layer received it. Never logged by towerline. */
  readonly request: unknown;
  /** Set by Node on a rejection. */
  error?: unknown;
  /** Set by Node on success. */
  result?: unknown;
}

/**
 * One layer kind's call tracing channel. `traced()` is a boolean check per call while nobody
 * subscribes; the call then runs exactly as without tracing.
 *
 * @example
 * ```ts
 * import { tracingChannel } from 'node:diagnostics_channel';
 * tracingChannel('towerline:retry:call').subscribe({
 *   start: (t) => console.log('call through', t.source),
 *   asyncEnd: (t) => console.log('settled', t.error === undefined ? 'ok' : 'failed'),
 *   end: () => {}, asyncStart: () => {}, error: () => {},
 * });
 * ```
 */
export class CallTracer {
  readonly name: string;
  readonly channel: TracingChannel<unknown, CallTrace>;
  /** Whether anyone listens, kept up to date by the channels' (un)subscribe calls. */
  #active = false;

  constructor(name: string) {
    this.name = name;
    this.channel = tracingChannel<unknown, CallTrace>(name);
    const c = this.channel;
    const refresh = () => {
      this.#active =
        c.start.hasSubscribers ||
        c.end.hasSubscribers ||
        c.asyncStart.hasSubscribers ||
        c.asyncEnd.hasSubscribers ||
        c.error.hasSubscribers;
    };
    // A call checks one boolean, not five channels (five getter calls, a tenth of a bare
    // call): whoever (un)subscribes — through this channel, `tracingChannel(name)` or
    // `diagnostics_channel.subscribe` — reaches these five Channel objects (node keeps one
    // per name), whose methods tell us afterwards.
    for (const ch of [c.start, c.end, c.asyncStart, c.asyncEnd, c.error]) watch(ch, refresh);
    refresh();
  }

  /** Whether anyone listens (TracingChannel#hasSubscribers is Node >= 20.13; this is not). */
  get active(): boolean {
    return this.#active;
  }

  /** Runs `call`, publishing its trace when anyone listens. */
  traced<T>(call: () => Promise<T>, trace: () => CallTrace): Promise<T> {
    if (!this.active) return call();
    return this.channel.tracePromise(call, trace());
  }
}

const WATCHED = ['subscribe', 'unsubscribe', 'bindStore', 'unbindStore'] as const;
/** A channel's watchers, shared by every copy of this module (ESM and CJS, two versions). */
const WATCHERS = Symbol.for('towerline.trace.watchers');

/**
 * Calls `changed` after every call of a channel's methods that change who listens. The
 * channel's own methods still run (node swaps the channel's prototype between its inactive
 * and active kinds; each call goes to the current one).
 */
function watch(channel: object, changed: () => void): void {
  const holder = channel as { [WATCHERS]?: Set<() => void> };
  const known = holder[WATCHERS];
  if (known !== undefined) {
    known.add(changed);
    return;
  }
  const watchers = new Set([changed]);
  Object.defineProperty(channel, WATCHERS, { value: watchers });
  for (const method of WATCHED) {
    Object.defineProperty(channel, method, {
      configurable: true,
      writable: true,
      value: function (this: object, ...args: unknown[]): unknown {
        const own = (Object.getPrototypeOf(this) as Record<string, unknown>)[method];
        try {
          return typeof own === 'function' ? own.apply(this, args) : undefined;
        } finally {
          for (const w of watchers) w();
        }
      },
    });
  }
}

/** The call tracing channel of a layer kind: `towerline:<layer>:call`. */
export function callTracer(layer: string): CallTracer {
  return new CallTracer(`towerline:${layer}:call`);
}
