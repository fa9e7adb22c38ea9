/**
 * A context of the wrong kind (`null`, a number, `{ signal: controller }` instead of
 * `controller.signal`, a deadline that is not a number) is refused by every layer and helper
 * that takes one: the call's promise rejects with `ERR_INVALID_ARGUMENT` naming the field,
 * nothing runs, nothing throws synchronously, and no timer is left to throw later. It used to
 * reach `sleep`, whose timer then threw `removeEventListener is not a function` and ended the
 * process.
 */
import {
  isTowerlineError,
  RequestContext,
  type Service,
  sleep,
  TypedEmitter,
  untilAborted,
} from '@towerline/core';
import {
  CircuitBreakerLayer,
  ConcurrencyLimitLayer,
  FallbackLayer,
  HedgeLayer,
  LoadShedLayer,
  RateLimitLayer,
  TimeoutLayer,
  TokenBucket,
} from '@towerline/policies';
import { ReconnectLayer } from '@towerline/reconnect';
import { RetryLayer } from '@towerline/retry';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeConn, fakeReconnector } from '../packages/reconnect/test/fake-connection.js';

const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);
beforeEach(() => {
  uncaught.length = 0;
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
});
afterEach(() => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
});

const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

/** A service that counts its calls and always fails with a connection error (worth a retry). */
function counting() {
  const seen = { calls: 0 };
  const svc: Service<string, string> = {
    call: async () => {
      seen.calls++;
      throw reset();
    },
  };
  return { svc, seen };
}

type Wrap = (inner: Service<string, string>) => Service<string, string>;
const layers: Array<[string, Wrap]> = [
  ['RetryLayer', (s) => new RetryLayer({ retryOn: () => true }).wrap(s)],
  ['TimeoutLayer', (s) => new TimeoutLayer({ ms: 1_000 }).wrap(s)],
  ['TimeoutLayer optimistic', (s) => new TimeoutLayer({ ms: 1_000, mode: 'optimistic' }).wrap(s)],
  ['CircuitBreakerLayer', (s) => new CircuitBreakerLayer().wrap(s)],
  ['ConcurrencyLimitLayer', (s) => new ConcurrencyLimitLayer({ limit: 2 }).wrap(s)],
  [
    'RateLimitLayer',
    (s) => new RateLimitLayer({ limiter: new TokenBucket({ rate: 100, burst: 10 }) }).wrap(s),
  ],
  ['HedgeLayer', (s) => new HedgeLayer({ delayMs: 5 }).wrap(s)],
  ['FallbackLayer', (s) => new FallbackLayer<string, string>({ fallback: () => 'fb' }).wrap(s)],
  ['LoadShedLayer', (s) => new LoadShedLayer({ saturated: () => false }).wrap(s)],
  [
    'RetryLayer over TimeoutLayer',
    (s) => new RetryLayer({ retryOn: () => true }).wrap(new TimeoutLayer({ ms: 1_000 }).wrap(s)),
  ],
];

/** Contexts no layer can use, and the field each one gets wrong. */
const badContexts = fc.oneof(
  fc.constantFrom<[unknown, string]>(
    [null, 'ctx'],
    [42, 'ctx'],
    ['secret-context', 'ctx'],
    [[], 'ctx'],
    [{ signal: new AbortController() }, 'ctx.signal'],
    [{ signal: {} }, 'ctx.signal'],
    [{ signal: 'secret-signal' }, 'ctx.signal'],
    [{ signal: null }, 'ctx.signal'],
    [{ deadline: '200' }, 'ctx.deadline'],
    [{ deadline: Number.NaN }, 'ctx.deadline'],
    [{ idempotent: 'yes' }, 'ctx.idempotent'],
  ),
  fc
    .oneof(fc.integer(), fc.string(), fc.constant({ aborted: false }))
    .map((signal): [unknown, string] => [{ signal }, 'ctx.signal']),
);

async function refusedWith(
  run: () => Promise<unknown>,
): Promise<{ code: string; parameter: string; message: string }> {
  let promise: Promise<unknown>;
  try {
    promise = run();
  } catch (error) {
    throw new Error(`threw synchronously: ${String(error)}`);
  }
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isTowerlineError(error), `rejected with ${String(error)}`).toBe(true);
  return error as { code: string; parameter: string; message: string };
}

describe('a context of the wrong kind', () => {
  it('is refused by every layer before anything runs (any such context)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...layers), badContexts, async ([, wrap], [ctx, field]) => {
        const { svc, seen } = counting();
        const error = await refusedWith(() => wrap(svc).call('req', ctx as never));
        expect(error.code).toBe('ERR_INVALID_ARGUMENT');
        expect(error.parameter).toBe(field);
        expect(error.message).not.toContain('secret');
        expect(seen.calls).toBe(0);
      }),
      { numRuns: 150 },
    );
    // Nothing was left to throw later (the old failure was a timer throwing in sleep).
    await sleep(30);
    expect(uncaught).toEqual([]);
  });

  it('is refused by the reconnect layer, connected or not, and the queue stays empty', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    let sent = 0;
    const svc = new ReconnectLayer<FakeConn, string, string>({
      call: async () => {
        sent++;
        return 'ok';
      },
    }).wrap(h.r);
    for (const [ctx, field] of [
      [null, 'ctx'],
      [{ signal: new AbortController() }, 'ctx.signal'],
    ] as const) {
      const error = await refusedWith(() => svc.call('req', ctx as never));
      expect(error.parameter).toBe(field);
    }
    expect(sent).toBe(0);
    expect(svc.stats.queued).toBe(0);
    await svc.close();
  });

  it('a RequestContext cannot be made from one', () => {
    expect(() => new RequestContext({ signal: new AbortController() } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', parameter: 'ctx.signal' }),
    );
    expect(() => new RequestContext({ deadline: '5' } as never)).toThrow(
      expect.objectContaining({ parameter: 'ctx.deadline' }),
    );
    // Signals of any realm or polyfill with the AbortSignal surface are fine.
    const like = { aborted: false, addEventListener() {}, removeEventListener() {} };
    expect(new RequestContext({ signal: like as never }).signal).toBe(like);
  });
});

describe('helpers given a signal that is not one', () => {
  const notSignals = [new AbortController(), {}, 'secret-x', 5, null];
  it('sleep refuses it before starting a timer', async () => {
    for (const signal of notSignals) {
      expect(() => sleep(10_000, { signal: signal as never })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', parameter: 'options.signal' }),
      );
    }
    expect(() => sleep(10, null as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
  });

  it('untilAborted, TypedEmitter.next and Reconnector.whenReady reject with ERR_INVALID_ARGUMENT', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    const emitter = new TypedEmitter<{ tick: { n: number } }>();
    for (const signal of notSignals) {
      const e1 = await refusedWith(() => untilAborted(new Promise(() => {}), signal as never));
      expect(e1.code).toBe('ERR_INVALID_ARGUMENT');
      const e2 = await refusedWith(() => emitter.next('tick', signal as never));
      expect(e2.code).toBe('ERR_INVALID_ARGUMENT');
      const e3 = await refusedWith(() => h.r.whenReady(signal as never));
      expect(e3.code).toBe('ERR_INVALID_ARGUMENT');
    }
    await h.r.close();
    expect(uncaught).toEqual([]);
  });
});
