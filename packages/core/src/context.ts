import { describeValue, invalidArgumentError as invalid, type TowerlineError } from './errors.js';

/**
 * Something that is up or down and can say when it is back: a `Reconnector`, a gRPC channel.
 * A connector puts one on the request's context when an attempt failed because the connection
 * was lost, so that a retry waits for the connection instead of sleeping blind.
 */
export interface Readiness {
  /** True while the connection is up. */
  readonly ready: boolean;
  /**
   * Resolves once the connection is up (at once if it is); rejects when it never will be
   * (closed, given up) or with `signal.reason` on abort.
   */
  whenReady(signal?: AbortSignal): Promise<void>;
}

/** Whatever can pay for another attempt: `RetryBudget` from `@towerline/retry`. */
export interface AttemptBudget {
  /** Takes one attempt from the budget; false (and nothing taken) when it is empty. */
  withdraw(): boolean;
}

/**
 * The per-call context passed down the stack: what the caller says about the request. A plain
 * object works (`{ signal }`); layers that keep per-request state turn it into a
 * {@link RequestContext}, which every layer below then shares.
 */
export interface CallContext {
  /** Aborts the call, any wait inside it, and any retry after it. An aborted signal never reaches the wire. */
  signal?: AbortSignal | undefined;
  /**
   * The time by which the request must be done, on the monotonic clock (`performance.now()`,
   * the same as `systemClock.now()`; a layer with an injected clock reads its own). The earliest
   * deadline wins: layers only ever move it earlier.
   */
  deadline?: number | undefined;
  /**
   * Whether running the request twice is harmless. Set by the caller, or, when left undefined,
   * by the connector's classifier (Redis command flags, a read-only SQL statement, a gRPC
   * method's service config). A request that may have executed is repeated only when true.
   */
  idempotent?: boolean | undefined;
}

const BRAND = Symbol.for('towerline.RequestContext');

/**
 * A request's single truth, read and written by every layer it passes through (after Polly
 * v8's `ResilienceContext`): the caller's `signal`, `deadline` and `idempotent`, plus what the
 * layers learn on the way — how many attempts were started (`attempts`, shared by retry,
 * reconnect resends and hedging), the most allowed (`maxAttempts`, the tightest of every layer's),
 * the budget that pays for each repeat, whether the request may already have executed, and
 * which connection the last attempt failed on.
 *
 * The first towerline layer that needs it makes one (`RequestContext.from(ctx)`); layers below
 * get the same object, so `attempts` is counted once across the stack and no request is sent
 * more than `maxAttempts` times in all. Recognised by a brand (`Symbol.for`), so copies of this
 * package loaded twice (ESM and CJS) still share it.
 *
 * @example
 * ```ts
 * const ctx = new RequestContext({ signal: AbortSignal.timeout(2_000), idempotent: true });
 * await stack.call(request, ctx);
 * console.log(ctx.attempts, ctx.mayHaveExecuted);
 * ```
 */
/**
 * A signal a layer puts on a request's context without making it yet (a timeout's, which only
 * needs to exist once somebody listens): made from the signal in force when first read.
 * @internal
 */
export interface SignalLink {
  /** A signal that aborts when `parent` does, or when this link's own cause fires. */
  link(parent: AbortSignal | undefined): AbortSignal;
  /** True once this link's own cause has fired (the deadline passed). */
  readonly expired: boolean;
}

export class RequestContext implements CallContext {
  /**
   * The signal made so far, and one linked in but not made yet (a timeout's: it exists only
   * once somebody listens). Plain properties rather than `#private` ones: on this hot path (a
   * context per request) private fields and methods measurably slow construction.
   * @internal
   */
  _signal: AbortSignal | undefined;
  /** @internal */
  _link: SignalLink | undefined = undefined;
  deadline: number | undefined;
  idempotent: boolean | undefined;
  /** Attempts started so far for this request, by any layer (1 once a layer has it). */
  attempts = 0;
  /** The most attempts any layer may start for this request; each layer lowers it to its own cap. */
  maxAttempts = Number.POSITIVE_INFINITY;
  /** Pays for every attempt after the first, whichever layer makes it (retry or resend). */
  budget: AttemptBudget | undefined = undefined;
  /** True once any attempt may have reached the peer and run: from then on, only an idempotent request is repeated. */
  mayHaveExecuted = false;
  /**
   * Set by a connector when the last attempt's failure was the peer's definitive answer (a SQL
   * syntax error, a Redis WRONGTYPE, gRPC NOT_FOUND): repeating the request cannot change it,
   * so no retry does. Cleared before each attempt.
   */
  definitive = false;
  /**
   * Set by a connector when the last attempt failed because its connection was lost: a retry
   * waits for it (bounded by its backoff) instead of sleeping blind. Cleared before each attempt.
   */
  connection: Readiness | undefined = undefined;
  /**
   * Scratch for the layer that put the request on a connection (which connection generation
   * it ran on), so that a fused outer layer can hand the failure back to it.
   * @internal
   */
  wire: number | undefined = undefined;

  constructor(init?: CallContext) {
    const problem = contextProblem(init);
    if (problem !== undefined) throw problem;
    this._signal = init?.signal;
    this.deadline = init?.deadline;
    this.idempotent = init?.idempotent;
  }

  /** Aborts the call, any wait inside it, and any retry after it (see {@link CallContext.signal}). */
  get signal(): AbortSignal | undefined {
    const link = this._link;
    if (link !== undefined) {
      this._link = undefined;
      this._signal = link.link(this._signal);
    }
    return this._signal;
  }

  set signal(signal: AbortSignal | undefined) {
    this._link = undefined;
    this._signal = signal;
  }

  /**
   * Makes `ctx.signal` abort also when `link` says, from the next read on; nothing is made
   * until somebody reads it. Links stack (an attempt timeout inside a total timeout). A layer
   * that starts attempts saves `signal` and `deadline` before each and puts them back after,
   * so that an attempt's link ends with it.
   * @internal
   */
  linkSignal(link: SignalLink): void {
    const outer = this._link;
    this._link =
      outer === undefined
        ? link
        : {
            link: (parent) => link.link(outer.link(parent)),
            get expired() {
              return link.expired || outer.expired;
            },
          };
  }

  /** Whether the signal has fired, without making a linked signal nobody has read yet. */
  get aborted(): boolean {
    return this._signal?.aborted === true || this._link?.expired === true;
  }

  /** `ctx` itself when it already is a request context (from any copy of this package), else a new one from it. */
  static from(ctx?: CallContext): RequestContext {
    return isRequestContext(ctx) ? ctx : new RequestContext(ctx);
  }

  /**
   * Moves the deadline to `deadline` if that is earlier (the earliest wins) and returns the
   * deadline in force.
   */
  tighten(deadline: number | undefined): number | undefined {
    if (deadline !== undefined && !(this.deadline !== undefined && this.deadline <= deadline)) {
      this.deadline = deadline;
    }
    return this.deadline;
  }

  /**
   * Whether one more attempt may start: attempts left under `maxAttempts`, and, once the
   * request may have executed, only when it is idempotent.
   */
  get canRepeat(): boolean {
    return this.attempts < this.maxAttempts && (!this.mayHaveExecuted || this.idempotent === true);
  }
}
Object.defineProperty(RequestContext.prototype, BRAND, { value: true });

/** True for a {@link RequestContext} made by any copy of this package. */
export function isRequestContext(ctx: unknown): ctx is RequestContext {
  return typeof ctx === 'object' && ctx !== null && (ctx as { [BRAND]?: unknown })[BRAND] === true;
}

/**
 * Rejects at once, with the signal's reason, a request whose signal has already fired; returns
 * undefined when it may proceed. Every layer calls it on entry, so an aborted request never
 * reaches the wire.
 */
export function abortedBeforeStart(ctx: CallContext | undefined): Promise<never> | undefined {
  if (ctx === undefined) return undefined;
  if (isRequestContext(ctx)) {
    if (!ctx.aborted) return undefined;
  } else {
    const problem = contextProblem(ctx);
    if (problem !== undefined) return Promise.reject(problem);
  }
  const signal = ctx.signal;
  return signal?.aborted ? Promise.reject(signal.reason) : undefined;
}

/** Whether `value` can be listened to as an `AbortSignal` (one of any realm, or a polyfill). */
export function isAbortSignal(value: unknown): value is AbortSignal {
  if (value instanceof AbortSignal) return true;
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Partial<AbortSignal>;
  return (
    typeof s.aborted === 'boolean' &&
    typeof s.addEventListener === 'function' &&
    typeof s.removeEventListener === 'function'
  );
}

/**
 * @internal What is wrong with a context a caller passed (`ERR_INVALID_ARGUMENT`, naming the
 * field and the kind of value, never the value), or undefined when it is usable. A layer
 * rejects the call with it, before anything runs: a wrong `signal` would otherwise fail only
 * where it is first listened to, perhaps inside a timer.
 */
export function contextProblem(ctx: unknown): TowerlineError | undefined {
  if (ctx === undefined || isRequestContext(ctx)) return undefined;
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx))
    return invalid('ctx', `expected a context object or undefined, got ${describeValue(ctx)}`);
  const { signal, deadline, idempotent } = ctx as CallContext;
  if (signal !== undefined && !isAbortSignal(signal))
    return invalid(
      'ctx.signal',
      `expected an AbortSignal (pass controller.signal, not the controller), got ${describeValue(signal)}`,
    );
  if (deadline !== undefined && (typeof deadline !== 'number' || Number.isNaN(deadline)))
    return invalid(
      'ctx.deadline',
      `expected a time on the monotonic clock (a number), got ${describeValue(deadline)}`,
    );
  if (idempotent !== undefined && typeof idempotent !== 'boolean')
    return invalid(
      'ctx.idempotent',
      `expected true, false or undefined, got ${describeValue(idempotent)}`,
    );
  return undefined;
}

/** @internal `signal`, checked: undefined, or an AbortSignal (else `ERR_INVALID_ARGUMENT`). */
export function expectSignal(signal: unknown, parameter = 'signal'): AbortSignal | undefined {
  if (signal === undefined || isAbortSignal(signal)) return signal;
  throw invalid(parameter, `expected an AbortSignal or undefined, got ${describeValue(signal)}`);
}
