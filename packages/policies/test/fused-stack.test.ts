import {
  type CallContext,
  isRequestContext,
  type Service,
  ServiceBuilder,
  VirtualClock,
} from '@towerline/core';
import { CircuitBreakerLayer, TimeoutLayer } from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** What one attempt of the inner service does: answer, fail, or hang (ignoring its signal or not). */
type Attempt =
  | { kind: 'ok'; ms: number }
  | { kind: 'fail'; ms: number }
  | { kind: 'hang'; honours: boolean; abortError: boolean };

const attempt = fc.oneof(
  fc.record({ kind: fc.constant('ok' as const), ms: fc.integer({ min: 0, max: 150 }) }),
  fc.record({ kind: fc.constant('fail' as const), ms: fc.integer({ min: 0, max: 150 }) }),
  fc.record({
    kind: fc.constant('hang' as const),
    honours: fc.boolean(),
    // On its signal: reject with the signal's reason, or with an AbortError of its own.
    abortError: fc.boolean(),
  }),
);

/**
 * The inner service: request `i`'s attempt `n` does `plan[i][n]` (the last one again past the
 * end), so that both stacks see the same behaviour whatever order their attempts run in.
 */
function planned(plan: Attempt[][], clock: VirtualClock, log: string[]): Service<number, string> {
  const attempts = new Map<number, number>();
  return {
    call: (i, ctx?: CallContext) => {
      const n = attempts.get(i) ?? 0;
      attempts.set(i, n + 1);
      const a = plan[i]![Math.min(n, plan[i]!.length - 1)]!;
      log.push(`${i}.${n}:${a.kind}`);
      return new Promise<string>((resolve, reject) => {
        if (a.kind === 'hang') {
          if (a.honours && ctx?.signal) {
            const signal = ctx.signal;
            const abort = () =>
              reject(a.abortError ? new DOMException('aborted', 'AbortError') : signal.reason);
            signal.addEventListener('abort', abort, { once: true });
          }
          return;
        }
        clock.setTimeout(() => {
          if (a.kind === 'ok') resolve(`r${i}.${n}`);
          else reject(Object.assign(new Error('refused'), { mayHaveExecuted: false }));
        }, a.ms);
      });
    },
  };
}

/** Hides every marker a layer finds on its inner service: each layer then runs alone, unfused. */
const opaque = <Req, Res>(inner: Service<Req, Res>): Service<Req, Res> => ({
  call: (req, ctx) => inner.call(req, ctx),
});

function stack(
  fuse: boolean,
  mode: 'exact' | 'optimistic',
  idempotent: boolean,
  clock: VirtualClock,
  inner: Service<number, string>,
) {
  const breaker = new CircuitBreakerLayer({
    policy: { kind: 'consecutive', threshold: 3 },
    openMs: 500,
    clock,
  });
  const changes: string[] = [];
  breaker.on('stateChange', ({ from, to }) => changes.push(`${from}>${to}`));
  const timeout = new TimeoutLayer({ ms: 100, mode, clock });
  let timeouts = 0;
  timeout.events.on('timeout', ({ calls }) => {
    timeouts += calls;
  });
  const retry = new RetryLayer({ maxAttempts: 3, backoff: { next: () => 10 }, clock, idempotent });
  const svc = fuse
    ? new ServiceBuilder().layer(retry).layer(breaker).layer(timeout).service(inner)
    : retry.wrap(opaque(breaker.wrap(opaque(timeout.wrap(inner)))));
  return { svc, breaker, changes, timeouts: () => timeouts };
}

describe('retry → breaker → attempt timeout, fused into one reaction', () => {
  it('behaves exactly as the same layers run one by one (generated plans)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(attempt, { minLength: 1, maxLength: 4 }), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.constantFrom('exact' as const, 'optimistic' as const),
        fc.boolean(),
        async (plan, mode, idempotent) => {
          const run = async (fuse: boolean) => {
            const clock = new VirtualClock();
            const log: string[] = [];
            const s = stack(fuse, mode, idempotent, clock, planned(plan, clock, log));
            const outcomes: string[] = [];
            for (let i = 0; i < plan.length; i++) {
              let outcome: string | undefined;
              s.svc.call(i).then(
                (v) => {
                  outcome = v;
                },
                (e: { code?: string; message: string }) => {
                  outcome = e.code ?? e.message;
                },
              );
              // Bounded: each step runs the timers of 50 virtual ms.
              for (let step = 0; step < 40 && outcome === undefined; step++)
                await clock.advance(50);
              outcomes.push(outcome ?? 'pending');
              await clock.advance(600); // past the open period: the next request may probe
            }
            await clock.advance(1_000);
            return {
              outcomes,
              log,
              changes: s.changes,
              state: s.breaker.state,
              timeouts: s.timeouts(),
              timers: clock.pending,
            };
          };
          const fused = await run(true);
          const alone = await run(false);
          expect(fused).toEqual(alone);
          // An exact timeout ends every call; an optimistic one those that honour their signal.
          if (mode === 'exact') expect(fused.outcomes).not.toContain('pending');
          expect(fused.timers).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('the stack shares one reaction: its first attempt makes no request context', async () => {
    const clock = new VirtualClock();
    const seen: Array<CallContext | undefined> = [];
    const inner: Service<number, string> = {
      call: async (i, ctx) => {
        seen.push(ctx);
        if (seen.length === 1) throw Object.assign(new Error('once'), { mayHaveExecuted: false });
        return `r${i}`;
      },
    };
    const { svc } = stack(true, 'exact', false, clock, inner);
    const outcome = svc.call(7);
    await clock.advance(50);
    expect(await outcome).toBe('r7');
    // The first attempt ran on the timeout's own window; the retry made its context only then.
    expect(isRequestContext(seen[0])).toBe(false);
    expect(seen[0]?.deadline).toBe(100);
    expect(isRequestContext(seen[1])).toBe(true);
    expect(seen[1]?.deadline).toBe(110);
  });
});
