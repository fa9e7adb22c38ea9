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

  constructor(name: string) {
    this.name = name;
    this.channel = tracingChannel<unknown, CallTrace>(name);
  }

  /** Whether anyone listens (TracingChannel#hasSubscribers is Node >= 20.13; this is not). */
  get active(): boolean {
    const c = this.channel;
    return (
      c.start.hasSubscribers ||
      c.end.hasSubscribers ||
      c.asyncStart.hasSubscribers ||
      c.asyncEnd.hasSubscribers ||
      c.error.hasSubscribers
    );
  }

  /** Runs `call`, publishing its trace when anyone listens. */
  traced<T>(call: () => Promise<T>, trace: () => CallTrace): Promise<T> {
    if (!this.active) return call();
    return this.channel.tracePromise(call, trace());
  }
}

/** The call tracing channel of a layer kind: `towerline:<layer>:call`. */
export function callTracer(layer: string): CallTracer {
  return new CallTracer(`towerline:${layer}:call`);
}
