import type { CallContext } from './context.js';
import type { Service } from './service.js';

/**
 * What the layers above do with one attempt's outcome, handed down once (when the stack is
 * built) to the layer that attaches the attempt's promise reaction: observers (a breaker
 * counting a success) and the recovery (a retry) of every layer above then run in that one
 * reaction, and the layers above attach none of their own.
 *
 * @internal Exported for towerline's own layers; the shape may change between minor versions.
 */
export interface Tail<Req, Res> {
  /**
   * Observes a success and returns the value as it is (usable as a `then` fulfilment handler);
   * undefined when no layer above observes successes. It must not throw.
   */
  readonly succeeded?: ((value: Res) => Res) | undefined;
  /** The layers' handling of a failure of the call `run(req, ctx)` made; its promise is the call's. */
  recover(error: unknown, req: Req, ctx: CallContext | undefined): Promise<Res>;
}

/**
 * A service's call with a {@link Tail} from the layers above fused into it:
 * `owned(tail)(req, ctx)` must behave exactly as
 * `service.call(req, ctx).then(tail.succeeded, (e) => tail.recover(e, req, ctx))` and never
 * throw. It is built once per tail. A layer that owns its promise anyway (an exact timeout)
 * settles it through the tail, so the whole stack above it costs no promise reaction at all; a
 * layer that only observes (a breaker) adds its observation to the tail and passes it on.
 *
 * A service offering it needs no request context of its own: a retry above calls it with the
 * caller's context (none, usually) and makes one only after a first failure.
 *
 * @internal
 */
export type OwnedPath<Req, Res> = (
  tail: Tail<Req, Res>,
) => (req: Req, ctx: CallContext | undefined) => Promise<Res>;

/** The property under which a service offers its {@link OwnedPath}. */
export const owned: unique symbol = Symbol.for('towerline.owned') as never;

/** The owned path `service` offers, if any. */
export function ownedPathOf<Req, Res>(service: Service<Req, Res>): OwnedPath<Req, Res> | undefined {
  const path = (service as { [owned]?: unknown })[owned];
  return typeof path === 'function' ? (path as OwnedPath<Req, Res>) : undefined;
}

/**
 * `inner`'s call with `tail` attached in one reaction: the owned path of `inner` when it has
 * one, else `inner.call` followed by the tail.
 */
export function withTail<Req, Res>(
  inner: Service<Req, Res>,
  tail: Tail<Req, Res>,
): (req: Req, ctx: CallContext | undefined) => Promise<Res> {
  const path = ownedPathOf(inner);
  if (path !== undefined) return path(tail);
  const succeeded = tail.succeeded;
  return (req, ctx) => {
    let started: Promise<Res>;
    try {
      started = inner.call(req, ctx);
    } catch (error) {
      return tail.recover(error, req, ctx);
    }
    return started.then(succeeded, (error: unknown) => tail.recover(error, req, ctx));
  };
}

/** The tail of a caller with nothing to add: failures pass through as they are. */
export const passThrough: Tail<any, any> = { recover: (error) => Promise.reject(error) };
