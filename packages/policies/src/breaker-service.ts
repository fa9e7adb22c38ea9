import {
  abortedBeforeStart,
  attemptThrough,
  type CallContext,
  contextual,
  type FusableService,
  type FusedPath,
  fused,
  fusedPathOf,
  isRequestContext,
  type OwnedPath,
  owned,
  ownedPathOf,
  passThrough,
  RequestContext,
  type Service,
  type Tail,
  TowerlineError,
  usesRequestContext,
  withTail,
} from '@towerline/core';
import type { CircuitBreakerLayer } from './breaker.js';

/** Outcome classes: a failure, a success, or neither (the caller aborted). */
export const OK = 0;
export const FAILED = 1;
export const IGNORED = 2;

/** A service behind a {@link CircuitBreakerLayer}. */
export class CircuitBreakerService<Req, Res> implements FusableService<Req, Res> {
  /** @internal */
  readonly [fused]: FusedPath<Req, Res>;
  /**
   * @internal Over a service with no fused path: the call with the layers above fused in, and
   * this breaker's counting with them (see `OwnedPath`).
   */
  readonly [owned]: OwnedPath<Req, Res> | undefined;
  /** The breaker needs no request context: a retry above makes one only if a layer below does. */
  readonly [contextual]: boolean;
  readonly #inner: Service<Req, Res>;
  readonly #path: FusedPath<Req, Res> | undefined;
  readonly #b: CircuitBreakerLayer;
  /** Over an owning service (an exact timeout): the call with this breaker's counting fused in. */
  readonly #owned: ((req: Req, ctx: CallContext | undefined) => Promise<Res>) | undefined;
  /** Over a plain service (neither fused nor owning): the call and one reaction of the breaker's. */
  readonly #direct: boolean;
  /** Contexts whose call took the slow path inside `start`: its outcome is counted there. */
  readonly #contained = new WeakSet<RequestContext>();
  #containedCount = 0;
  /** Counts a failure of a call made without a context (an observer: it does not rethrow). */
  readonly #failed = (error: unknown): void => {
    this.#b.record(this.#b.classify(error, undefined), false, 0);
  };

  constructor(inner: Service<Req, Res>, breaker: CircuitBreakerLayer) {
    this.#inner = inner;
    this.#b = breaker;
    const path = fusedPathOf(inner);
    this.#path = path;
    this[contextual] = usesRequestContext(inner as Service<unknown, unknown>);
    const b = breaker;
    const innerSucceeded = path?.succeeded;
    this[fused] = {
      start: (req, c) => {
        if (b.fast) return path !== undefined ? path.start(req, c) : inner.call(req, c);
        this.#containedCount++;
        this.#contained.add(c);
        return this.#slow(req, c);
      },
      recover: (error, req, c) => {
        if (this.#containedCount > 0 && this.#contained.delete(c)) {
          this.#containedCount--;
          return Promise.reject(error);
        }
        if (path === undefined) {
          b.record(b.classify(error, c), false, 0);
          return Promise.reject(error);
        }
        return path.recover(error, req, c).then(b.succeed, (e: unknown) => {
          b.record(b.classify(e, c), false, 0);
          throw e;
        });
      },
      succeeded: (value, req, c) => {
        if (this.#containedCount > 0 && this.#contained.delete(c)) {
          this.#containedCount--;
          return;
        }
        innerSucceeded?.(value, req, c);
        b.succeed(value);
      },
    };
    this[owned] = path === undefined ? (tail) => this.#withTail(tail) : undefined;
    // Alone over an owning service, the breaker rides on that service's reaction too.
    this.#owned =
      path === undefined && ownedPathOf(inner) !== undefined
        ? this.#withTail(passThrough)
        : undefined;
    this.#direct = path === undefined && this.#owned === undefined;
  }

  /** The call with `tail` (the layers above) and this breaker's counting in one reaction. */
  #withTail(tail: Tail<Req, Res>): (req: Req, ctx: CallContext | undefined) => Promise<Res> {
    const b = this.#b;
    const above = tail.succeeded;
    const run = withTail(this.#inner, {
      succeeded: above === undefined ? b.succeed : (value: Res) => above(b.succeed(value)),
      recover: (error, req, ctx) => {
        b.record(b.classify(error, ctx), false, 0);
        return tail.recover(error, req, ctx);
      },
    });
    // Not closed (or timed): admission and counting in the slow path, the tail after it.
    return (req, ctx) => (b.fast ? run(req, ctx) : this.#slowThen(req, ctx, tail));
  }

  #slowThen(req: Req, ctx: CallContext | undefined, tail: Tail<Req, Res>): Promise<Res> {
    return this.#slow(req, ctx).then(tail.succeeded, (error: unknown) =>
      tail.recover(error, req, ctx),
    );
  }

  /** The breaker this service is behind. */
  get breaker(): CircuitBreakerLayer {
    return this.#b;
  }

  call(req: Req, ctx?: CallContext): Promise<Res> {
    const b = this.#b;
    if (b.fast && this.#direct) {
      if (ctx !== undefined) {
        // A wrong or aborted context is refused here too, not left to the service below.
        const refused = abortedBeforeStart(ctx);
        if (refused !== undefined) return refused;
      }
      let started: Promise<Res>;
      try {
        started = this.#inner.call(req, ctx);
      } catch (error) {
        return Promise.reject(this.#failNow(error, ctx));
      }
      // The breaker only observes the outcome: the caller gets the inner promise itself, and
      // this reaction, made first, counts the outcome before the caller's runs.
      started.then(b.succeed, ctx === undefined ? this.#failed : this.#failedWith(ctx));
      return started;
    }
    if (this.#owned !== undefined) return this.#owned(req, ctx);
    if (this.#path === undefined) return this.#slow(req, ctx);
    const c = RequestContext.from(ctx);
    if (!b.fast) return this.#slow(req, c);
    return attemptThrough(this.#inner, this[fused], req, c);
  }

  #failNow(error: unknown, ctx: CallContext | undefined): unknown {
    this.#b.record(this.#b.classify(error, ctx), false, 0);
    return error;
  }

  /** The failure observer of a call with a context (made here: no closure in `call` itself). */
  #failedWith(ctx: CallContext): (error: unknown) => void {
    return (error) => {
      this.#failNow(error, ctx);
    };
  }

  /** Not closed, or timed: admission through the step function, outcome counted here. */
  #slow(req: Req, ctx: CallContext | undefined): Promise<Res> {
    const aborted = abortedBeforeStart(ctx);
    if (aborted !== undefined) return aborted;
    const b = this.#b;
    const admitted = b.admit();
    if (admitted instanceof TowerlineError) return Promise.reject(admitted);
    const probe = admitted;
    const gate = probe ? b.gate : undefined;
    if (gate === undefined) return this.#run(req, ctx, probe);
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = gate();
    } catch {
      verdict = false;
    }
    if (typeof verdict === 'boolean') {
      return verdict ? this.#run(req, ctx, true) : Promise.reject(b.denyProbe());
    }
    return verdict.then(
      (yes) => (yes ? this.#run(req, ctx, true) : Promise.reject(b.denyProbe())),
      () => Promise.reject(b.denyProbe()),
    );
  }

  #run(req: Req, ctx: CallContext | undefined, probe: boolean): Promise<Res> {
    const b = this.#b;
    const clock = b.clock;
    const started = b.timed ? clock.now() : 0;
    const path = this.#path;
    let p: Promise<Res>;
    if (path !== undefined && isRequestContext(ctx)) {
      p = attemptThrough(this.#inner, path, req, ctx);
    } else {
      try {
        p = this.#inner.call(req, ctx);
      } catch (error) {
        p = Promise.reject(error);
      }
    }
    const took = () => (b.timed ? clock.now() - started : 0);
    return p.then(
      (value) => {
        b.record(OK, probe, took());
        return value;
      },
      (error: unknown) => {
        b.record(b.classify(error, ctx), probe, took());
        throw error;
      },
    );
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
