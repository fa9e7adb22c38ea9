/**
 * The request context through the stack (issue 10): retry and reconnect decide per request on
 * one context — its signal, deadline, idempotency and the attempts made for it by any layer.
 * Virtual time, fake connections whose requests stay in flight until the test settles them.
 */
import {
  backoff,
  contextual,
  notSent,
  type Readiness,
  RequestContext,
  type Service,
  serviceFn,
  TowerlineError,
  VirtualClock,
} from '@towerline/core';
import { ReconnectLayer } from '@towerline/reconnect';
import { RetryBudget, RetryLayer } from '@towerline/retry';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FakeConn, fakeReconnector } from '../packages/reconnect/test/fake-connection.js';

const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
const fast = backoff.fixed(0);

interface Flight {
  conn: FakeConn;
  req: string;
  resolve: (v: string) => void;
  reject: (e: unknown) => void;
}

/** Retry (outer) over reconnect (inner) over fake connections, as the README composes them. */
function stack(
  retryOptions: ConstructorParameters<typeof RetryLayer>[0] = {},
  idempotent: (req: string) => boolean = (req) => req.startsWith('GET'),
) {
  const h = fakeReconnector({ auto: () => 'ok' });
  const flights: Flight[] = [];
  const sends: string[] = [];
  const reconnect = new ReconnectLayer<FakeConn, string, string>({
    call: (conn, req) =>
      new Promise((resolve, reject) => {
        sends.push(req);
        if (conn.disposed) return reject(reset());
        flights.push({ conn, req, resolve, reject });
      }),
    retryOnReconnect: idempotent,
  }).wrap(h.r);
  const retry = new RetryLayer({ backoff: fast, clock: h.clock, ...retryOptions });
  /** The live connection dies with every request on it in flight. */
  const kill = () => {
    const conn = h.r.current!;
    conn.lost?.(reset());
    for (const f of flights.splice(0)) if (f.conn === conn) f.reject(reset());
  };
  return { ...h, reconnect, retry, svc: retry.wrap(reconnect), flights, sends, kill };
}

/** Runs `fn` until `p` settles, advancing virtual time in steps (every loop bounded). */
async function drive<T>(clock: VirtualClock, p: Promise<T>, each: () => void = () => {}) {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 200 && !settled; i++) {
    each();
    await clock.advance(50);
  }
  return p;
}

describe('RetryLayer decides per request', () => {
  it('never retries a final error, whatever retryOn says', async () => {
    const finals = [
      new TowerlineError('ERR_CLOSED', 'closed'),
      new TowerlineError('ERR_RECONNECT_GAVE_UP', 'gave up'),
      new TowerlineError('ERR_INVALID_ARGUMENT', 'bad'),
      new DOMException('aborted', 'AbortError'),
    ];
    for (const error of finals) {
      let calls = 0;
      const svc = new RetryLayer({ backoff: fast, retryOn: () => true }).wrap({
        call: async () => {
          calls++;
          throw error;
        },
      });
      await expect(svc.call('x')).rejects.toBe(error);
      expect(calls).toBe(1);
    }
  });

  it('repeats a request that may have executed only when it is idempotent', async () => {
    const ambiguous = () =>
      new TowerlineError('ERR_CONNECTION_LOST', 'lost', { mayHaveExecuted: true });
    const run = async (layer: RetryLayer, ctx?: { idempotent?: boolean }) => {
      let calls = 0;
      const svc = layer.wrap({
        call: async () => {
          if (++calls === 1) throw ambiguous();
          return 'ok';
        },
      });
      const outcome = await svc.call('x', ctx).catch((e: unknown) => e);
      return { calls, outcome };
    };
    expect(await run(new RetryLayer({ backoff: fast }))).toMatchObject({
      calls: 1,
      outcome: { code: 'ERR_CONNECTION_LOST', mayHaveExecuted: true },
    });
    expect(await run(new RetryLayer({ backoff: fast }), { idempotent: true })).toEqual({
      calls: 2,
      outcome: 'ok',
    });
    expect(await run(new RetryLayer({ backoff: fast, idempotent: true }))).toEqual({
      calls: 2,
      outcome: 'ok',
    });
    // The caller's word wins over the layer's default.
    expect(
      (await run(new RetryLayer({ backoff: fast, idempotent: true }), { idempotent: false })).calls,
    ).toBe(1);
  });

  it('stops before an attempt that could not start before the deadline: ERR_TIMEOUT', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const svc = new RetryLayer({ backoff: backoff.fixed(1_000), clock }).wrap({
      call: async () => {
        calls++;
        throw reset();
      },
    });
    const error = await svc.call('x', { deadline: clock.now() + 500 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT', attempts: 1 });
    expect((error as TowerlineError).cause).toMatchObject({ code: 'ECONNRESET' });
    expect(calls).toBe(1);
    expect(clock.pending).toBe(0);
  });

  it('waits for a lost connection to come back instead of sleeping its whole backoff', async () => {
    const clock = new VirtualClock();
    let up = false;
    let wake: (() => void) | undefined;
    const connection: Readiness = {
      get ready() {
        return up;
      },
      whenReady: () => (up ? Promise.resolve() : new Promise<void>((r) => (wake = r))),
    };
    const times: number[] = [];
    const svc = new RetryLayer({ backoff: backoff.fixed(5_000), clock }).wrap({
      call: async (_req: string, ctx) => {
        times.push(clock.now());
        if (times.length > 1) return 'ok';
        (ctx as RequestContext).connection = connection;
        throw reset();
      },
    });
    // The caller's own request context: a plain service shares it, and can name its connection.
    const result = svc.call('x', new RequestContext());
    await clock.advance(30);
    up = true;
    wake?.();
    await clock.advance(0);
    expect(await result).toBe('ok');
    expect(times).toEqual([0, 30]);
    expect(clock.pending).toBe(0);
  });

  it('over a plain service, the first attempt costs no context, and the attempts below still count', async () => {
    const seen: unknown[] = [];
    let calls = 0;
    const caller = { signal: new AbortController().signal };
    const svc = new RetryLayer({ maxAttempts: 3, backoff: fast }).wrap({
      call: async (_req: string, ctx) => {
        seen.push(ctx);
        calls++;
        // A layer below (behind this service) already sent it twice: send and resend.
        throw new TowerlineError('ERR_CONNECTION_LOST', 'lost', { attempts: 2 });
      },
    });
    const error = await svc.call('GET k', { ...caller, idempotent: true }).catch((e: unknown) => e);
    expect(seen[0]).toEqual({ ...caller, idempotent: true }); // the caller's own object, untouched
    expect(seen[1]).toBeInstanceOf(RequestContext);
    expect(calls).toBe(2); // 2 below + 1 more = maxAttempts
    expect(error).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', attempts: 3 });
  });
});

describe('abort means abort', () => {
  it('an aborted signal never reaches the wire, at any layer', async () => {
    const s = stack();
    await s.r.acquire();
    const reason = new Error('caller gone');
    const signal = AbortSignal.abort(reason);
    await expect(s.svc.call('INCR k', { signal })).rejects.toBe(reason);
    await expect(s.reconnect.call('INCR k', { signal })).rejects.toBe(reason);
    let plain = 0;
    const leaf = new RetryLayer().wrap(serviceFn(async () => ++plain));
    await expect(leaf.call(undefined, { signal })).rejects.toBe(reason);
    expect(s.sends).toEqual([]);
    expect(plain).toBe(0);
    await s.reconnect.close();
  });

  it('aborting a queued request takes it out of the queue: count and bytes restored, never sent', async () => {
    const s = stack();
    const ac = new AbortController();
    const queued = s.svc.call('INCR abcdefgh', { signal: ac.signal });
    expect(s.reconnect.stats).toMatchObject({ queued: 1, queuedBytes: 13 });
    ac.abort(new Error('not any more'));
    await expect(queued).rejects.toThrow('not any more');
    expect(s.reconnect.stats).toMatchObject({ queued: 0, queuedBytes: 0 });
    await s.settle();
    expect(s.sends).toEqual([]);
    await s.reconnect.close();
  });

  it('aborting in flight rejects at once with the reason and marks the request as possibly executed', async () => {
    const s = stack({}, () => true);
    await s.r.acquire();
    const ac = new AbortController();
    const ctx = new RequestContext({ signal: ac.signal });
    const pending = s.svc.call('GET k', ctx);
    expect(s.sends).toEqual(['GET k']);
    const reason = new Error('timed out by the caller');
    ac.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(ctx.mayHaveExecuted).toBe(true);
    expect(s.sends).toEqual(['GET k']); // not retried, though idempotent
    await s.reconnect.close();
  });
});

describe('one attempt count and one budget per request, across layers', () => {
  it('no idempotent request is sent more than maxAttempts times by retry and resend together', async () => {
    const s = stack({ maxAttempts: 3 }, () => true);
    await s.r.acquire();
    const ctx = new RequestContext();
    const result = drive(s.clock, s.svc.call('GET k', ctx), () => {
      if (s.flights.length > 0) s.kill();
    });
    await expect(result).rejects.toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', attempts: 3 });
    expect(s.sends).toHaveLength(3); // counted apart it would be 6: 3 retries × (send + resend)
    expect(ctx.attempts).toBe(3);
    await s.reconnect.close();
  });

  it('a non-idempotent request cut off in flight is sent once, and rejected "may have executed"', async () => {
    const s = stack();
    await s.r.acquire();
    const pending = s.svc.call('INCR k');
    s.kill();
    await expect(pending).rejects.toMatchObject({
      code: 'ERR_CONNECTION_LOST',
      mayHaveExecuted: true,
    });
    await s.clock.advance(1_000);
    expect(s.sends).toEqual(['INCR k']);
    await s.reconnect.close();
  });

  it('a resend after reconnect is paid from the retry budget', async () => {
    const clock = new VirtualClock();
    // A reserve of exactly one repeat, and no deposits worth a retry.
    const budget = new RetryBudget({ ttl: 1_000, minPerSecond: 1, retryPercent: 0.001, clock });
    const s = stack({ maxAttempts: 5, budget }, () => true);
    await s.r.acquire();
    const result = drive(s.clock, s.svc.call('GET k'), () => {
      if (s.flights.length > 0) s.kill();
    });
    const error = await result.catch((e: unknown) => e);
    expect(s.sends).toHaveLength(2); // the send, the one resend the budget paid for
    expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST', budgetExhausted: true });
    await s.reconnect.close();
  });

  it('a request the client never wrote waits for the next connection and is not "may have executed"', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    let writes = 0;
    const reconnect = new ReconnectLayer<FakeConn, string, string>({
      call: async (conn) => {
        if (++writes === 1) {
          conn.lost?.(reset());
          throw notSent(reset());
        }
        return 'done';
      },
    }).wrap(h.r);
    await h.r.acquire();
    const ctx = new RequestContext();
    const result = new RetryLayer({ backoff: fast, clock: h.clock })
      .wrap(reconnect)
      .call('INCR k', ctx);
    expect(await drive(h.clock, result)).toBe('done');
    expect(ctx.mayHaveExecuted).toBe(false);
    expect(reconnect.stats).toMatchObject({ requeued: 1, mayHaveExecuted: 0 });
    await reconnect.close();
  });
});

describe('fused and unfused stacks agree', () => {
  type Outcome = 'ok' | 'reply-error' | 'lost' | 'unsent';
  /**
   * How retry finds the reconnect service below: directly (fused); behind a plain service
   * with the caller's own request context (shared); behind a service marked `contextual`
   * (marked); behind an unmarked plain service with a plain context (opaque).
   */
  type Mode = 'fused' | 'shared' | 'marked' | 'opaque';
  const run = async (mode: Mode, outcomes: Outcome[], idempotent: boolean) => {
    const h = fakeReconnector({ auto: () => 'ok' });
    let i = 0;
    const reconnect = new ReconnectLayer<FakeConn, string, string>({
      call: async (conn) => {
        const o = outcomes[i++] ?? 'ok';
        if (o === 'ok') return 'ok';
        if (o === 'reply-error') throw new Error('WRONGTYPE');
        conn.lost?.(reset());
        throw o === 'lost' ? reset() : notSent(reset());
      },
      retryOnReconnect: () => idempotent,
    }).wrap(h.r);
    const forward: Service<string, string> = { call: (req, ctx) => reconnect.call(req, ctx) };
    const inner: Service<string, string> =
      mode === 'fused'
        ? reconnect
        : mode === 'marked'
          ? Object.assign(forward, { [contextual]: true })
          : forward;
    await h.r.acquire();
    const ctx = (
      mode === 'shared' || mode === 'fused' ? new RequestContext() : {}
    ) as RequestContext;
    const result = await drive(
      h.clock,
      new RetryLayer({ maxAttempts: 4, backoff: fast, clock: h.clock }).wrap(inner).call('r', ctx),
    ).then(
      (value) => ({ value }),
      (error: unknown) => ({ code: (error as { code?: string }).code ?? 'other' }),
    );
    await reconnect.close();
    return { result, sends: i, attempts: ctx.attempts, mayHaveExecuted: ctx.mayHaveExecuted };
  };

  it('agrees on a link lost twice under an idempotent request', async () => {
    const a = await run('fused', ['lost', 'lost'], true);
    const b = await run('shared', ['lost', 'lost'], true);
    expect(a).toEqual(b);
    expect(a).toMatchObject({ result: { value: 'ok' }, sends: 3 });
  });

  it('gives the same outcome, sends and attempts for any sequence of send outcomes', async () => {
    const outcome = fc.constantFrom<Outcome>('ok', 'reply-error', 'lost', 'unsent');
    await fc.assert(
      fc.asyncProperty(
        fc.array(outcome, { maxLength: 6 }),
        fc.boolean(),
        async (outcomes, idem) => {
          const fusedRun = await run('fused', outcomes, idem);
          expect(await run('shared', outcomes, idem)).toEqual(fusedRun);
          const { attempts: _a, mayHaveExecuted: _m, ...seen } = fusedRun;
          const {
            attempts: _b,
            mayHaveExecuted: _n,
            ...marked
          } = await run('marked', outcomes, idem);
          expect(marked).toEqual(seen);
          // An opaque service between the layers, with a plain context: retry makes its own
          // context only after the first failure, so a resend inside that first attempt is the
          // one send it may not count. Never an unsafe repeat.
          const opaque = await run('opaque', outcomes, idem);
          for (const [r, slack] of [
            [fusedRun, 0],
            [opaque, 1],
          ] as const) {
            const unsent = outcomes.slice(0, r.sends).filter((o) => o === 'unsent').length;
            expect(r.sends).toBeLessThanOrEqual(4 + slack + unsent);
            // Nothing is sent again once a send may have executed (a link lost in flight).
            const firstLost = outcomes.indexOf('lost');
            if (!idem && firstLost !== -1) expect(r.sends).toBeLessThanOrEqual(firstLost + 1);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
