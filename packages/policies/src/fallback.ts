import {
  attemptThrough,
  type CallContext,
  contextProblem,
  expectOptions,
  type FusableService,
  type FusedPath,
  fused,
  fusedPathOf,
  invalidArgument,
  RequestContext,
  type Service,
  TypedEmitter,
} from '@towerline/core';
import { expectName } from './check.js';

export type FallbackEvents = { fallback: { error: unknown } };

export interface FallbackOptions<Req, Res> {
  /** The answer instead of a failure. It may throw (or reject) to fail after all. */
  fallback: (error: unknown, req: Req, ctx: CallContext | undefined) => Res | Promise<Res>;
  /** Which failures get the fallback; default every one but the caller's own abort. */
  handle?: (error: unknown) => boolean;
  name?: string;
}

/**
 * Answers a failed call with a fallback value (cockatiel's `fallback`, Polly's fallback
 * strategy): a cached answer, a default, a degraded path. The happy path is the inner call;
 * over a fusable layer it adds no reaction of its own.
 *
 * @example
 * ```ts
 * const svc = new FallbackLayer({ fallback: () => ({ items: [], degraded: true }) }).wrap(search);
 * ```
 */
export class FallbackLayer<Req, Res> {
  readonly events = new TypedEmitter<FallbackEvents>({ channel: 'towerline:fallback' });
  readonly #options: FallbackOptions<Req, Res>;

  constructor(options: FallbackOptions<Req, Res>) {
    expectOptions(options, false);
    if (typeof options.fallback !== 'function') invalidArgument('fallback', 'expected a function');
    if (options.handle !== undefined && typeof options.handle !== 'function') {
      invalidArgument('handle', 'expected a function');
    }
    this.#options = options;
    expectName(options.name);
    this.events.source = options.name ?? 'fallback';
  }

  wrap(inner: Service<Req, Res>): FusableService<Req, Res> {
    const { fallback, handle } = this.#options;
    const events = this.events;
    const path = fusedPathOf(inner);
    const answer = (error: unknown, req: Req, ctx: CallContext | undefined): Promise<Res> => {
      const handled = handle !== undefined ? handle(error) : !(ctx?.signal?.aborted === true);
      if (!handled) return Promise.reject(error);
      events.emit('fallback', { error });
      try {
        return Promise.resolve(fallback(error, req, ctx));
      } catch (thrown) {
        return Promise.reject(thrown);
      }
    };
    const own: FusedPath<Req, Res> = {
      start: (req, c) => (path !== undefined ? path.start(req, c) : inner.call(req, c)),
      recover: (error, req, c) =>
        path === undefined
          ? answer(error, req, c)
          : path.recover(error, req, c).then(undefined, (e: unknown) => answer(e, req, c)),
    };
    if (path?.succeeded !== undefined) own.succeeded = path.succeeded;
    return {
      [fused]: own,
      call(req: Req, ctx?: CallContext): Promise<Res> {
        // A context of the wrong kind is the caller's bug: refused, never answered by the fallback.
        const problem = contextProblem(ctx);
        if (problem !== undefined) return Promise.reject(problem);
        if (path !== undefined) return attemptThrough(inner, own, req, RequestContext.from(ctx));
        let started: Promise<Res>;
        try {
          started = inner.call(req, ctx);
        } catch (error) {
          return answer(error, req, ctx);
        }
        return started.then(undefined, (error: unknown) => answer(error, req, ctx));
      },
      close: () => inner.close?.() ?? Promise.resolve(),
    };
  }
}
