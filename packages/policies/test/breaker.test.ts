import { type Service, ServiceBuilder, VirtualClock } from '@towerline/core';
import {
  type BreakerState,
  breakerStep,
  CircuitBreakerLayer,
  closedState,
} from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** A service whose answer the test sets: ok, or throw. */
function switchable() {
  const s = { failing: false, calls: 0 };
  const svc: Service<number, string> = {
    call: async () => {
      s.calls++;
      if (s.failing) throw new Error('down');
      return 'up';
    },
  };
  return { s, svc };
}

/**
 * An independent model of a consecutive-failure breaker with N probes: plain flags and
 * counters, written from the specification, not from the step function.
 */
class Model {
  kind: 'closed' | 'open' | 'halfOpen' | 'isolated' = 'closed';
  failures = 0;
  until = 0;
  admitted = 0;
  succeeded = 0;
  constructor(
    readonly threshold: number,
    readonly probes: number,
    readonly openMs: number,
  ) {}
  request(now: number): 'pass' | 'probe' | 'reject' {
    if (this.kind === 'closed') return 'pass';
    if (this.kind === 'isolated') return 'reject';
    if (this.kind === 'open') {
      if (now < this.until) return 'reject';
      this.kind = 'halfOpen';
      this.admitted = 1;
      this.succeeded = 0;
      return 'probe';
    }
    if (this.admitted < this.probes) {
      this.admitted++;
      return 'probe';
    }
    return 'reject';
  }
  outcome(ok: boolean, probe: boolean, now: number): void {
    if (this.kind === 'closed') {
      this.failures = ok ? 0 : this.failures + 1;
      if (this.failures >= this.threshold) this.#open(now);
    } else if (this.kind === 'halfOpen' && probe) {
      if (!ok) this.#open(now);
      else if (++this.succeeded >= this.probes) {
        this.kind = 'closed';
        this.failures = 0;
      }
    }
  }
  #open(now: number): void {
    this.kind = 'open';
    this.until = now + this.openMs;
    this.failures = 0;
  }
}

describe('breakerStep', () => {
  it('agrees with an independent model over generated schedules (consecutive policy)', async () => {
    let probesFull = 0;
    const op = fc.oneof(
      fc.record({ t: fc.constant('call' as const), ok: fc.boolean(), later: fc.boolean() }),
      fc.record({ t: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ t: fc.constant('settle' as const), ok: fc.boolean() }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(op, { minLength: 30, maxLength: 120 }),
        async (threshold, probes, ops) => {
          const clock = new VirtualClock();
          const breaker = new CircuitBreakerLayer({
            policy: { kind: 'consecutive', threshold },
            halfOpenProbes: probes,
            openMs: 100,
            clock,
          });
          const model = new Model(threshold, probes, 100);
          // Calls held open until a `settle` op (oldest first), as a concurrent load would.
          const held: Array<{ finish: (ok: boolean) => void; probe: boolean }> = [];
          const svc = breaker.wrap<boolean, string>({
            call: (ok) =>
              ok === undefined
                ? Promise.resolve('x')
                : new Promise<string>((resolve, reject) => {
                    held[held.length - 1]!.finish = (good) =>
                      good ? resolve('ok') : reject(new Error('fail'));
                  }),
          });
          for (const o of ops) {
            if (o.t === 'wait') {
              await clock.advance(o.ms);
              continue;
            }
            if (o.t === 'settle') {
              const h = held.shift();
              if (!h) continue;
              h.finish(o.ok);
              await new Promise((r) => setImmediate(r));
              model.outcome(o.ok, h.probe, clock.now());
              expect(breaker.state).toBe(model.kind);
              continue;
            }
            const verdict = model.request(clock.now());
            if (verdict === 'reject' && model.kind === 'halfOpen') probesFull++;
            if (verdict === 'reject') {
              // Refused at once, or (a bug) let through and left pending.
              const error = await Promise.race([
                svc.call(o.ok).catch((e: unknown) => e),
                new Promise((r) => setImmediate(() => r('admitted'))),
              ]);
              expect(error).toMatchObject({ code: 'ERR_CIRCUIT_OPEN' });
            } else {
              held.push({ finish: () => {}, probe: verdict === 'probe' });
              void svc.call(o.ok).catch(() => {});
            }
            expect(breaker.state).toBe(model.kind);
          }
        },
      ),
      { numRuns: 150 },
    );
    // The schedules did reach the interesting case: a half-open breaker with every probe out.
    expect(probesFull).toBeGreaterThan(20);
  });

  it('is pure: the same state and event give the same step, and the input is not changed', () => {
    const env = { now: 5, halfOpenProbes: 2, openMs: () => 10 };
    const open: BreakerState = { kind: 'open', until: 5, opens: 1 };
    const frozen = Object.freeze({ ...open });
    expect(breakerStep(frozen, { type: 'request' }, env)).toEqual(
      breakerStep(open, { type: 'request' }, env),
    );
    expect(breakerStep(closedState, { type: 'isolate' }, env).state).toEqual({ kind: 'isolated' });
  });
});

describe('CircuitBreakerLayer', () => {
  it('opens after the threshold, carries the time to the next probe, probes, closes', async () => {
    const clock = new VirtualClock();
    const { s, svc } = switchable();
    const breaker = new CircuitBreakerLayer({
      policy: { kind: 'consecutive', threshold: 3 },
      openMs: 1_000,
      clock,
    });
    const changes: string[] = [];
    breaker.on('stateChange', ({ from, to }) => changes.push(`${from}>${to}`));
    const guarded = breaker.wrap(svc);
    s.failing = true;
    for (let i = 0; i < 3; i++) await expect(guarded.call(1)).rejects.toThrow('down');
    expect(breaker.state).toBe('open');
    await clock.advance(400);
    const refused = await guarded.call(1).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_CIRCUIT_OPEN', retryAfterMs: 600 });
    expect(s.calls).toBe(3);
    await clock.advance(600);
    s.failing = false;
    expect(await guarded.call(1)).toBe('up');
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual(['closed>open', 'open>halfOpen', 'halfOpen>closed']);
  });

  it('a classifier or an interval function that throws: callers get their own outcome, nothing goes unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const clock = new VirtualClock();
      const { s, svc } = switchable();
      const breaker = new CircuitBreakerLayer({
        policy: { kind: 'count', size: 4, minimumCalls: 4, failureRateThreshold: 0.5 },
        openMs: {
          next: () => {
            throw new Error('broken interval');
          },
        },
        isFailure: (error) => {
          if ((error as Error).message === 'odd') throw new Error('broken classifier');
          return true;
        },
        clock,
      });
      const guarded = breaker.wrap(svc);
      s.failing = true;
      for (let i = 0; i < 2; i++) await expect(guarded.call(1)).rejects.toThrow('down');
      s.failing = false;
      expect(await guarded.call(1)).toBe('up');
      // The fourth call, a success, completes the window at 50 % failures: it trips the breaker.
      expect(await guarded.call(1)).toBe('up');
      expect(breaker.state).toBe('open');
      // The broken interval function got the default open time.
      const refused = await guarded.call(1).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'ERR_CIRCUIT_OPEN', retryAfterMs: 10_000 });
      const failingOdd = new CircuitBreakerLayer({
        policy: { kind: 'consecutive', threshold: 1 },
        isFailure: () => {
          throw new Error('broken classifier');
        },
      }).wrap<number, string>({ call: async () => Promise.reject(new Error('odd')) });
      await expect(failingOdd.call(1)).rejects.toThrow('odd');
      await expect(failingOdd.call(1)).rejects.toMatchObject({ code: 'ERR_CIRCUIT_OPEN' });
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('half-open admits exactly N probes under a concurrent burst, and the probe gate is asked', async () => {
    for (const probes of [1, 2, 5]) {
      const clock = new VirtualClock();
      let gateAsked = 0;
      const breaker = new CircuitBreakerLayer({
        policy: { kind: 'consecutive', threshold: 1 },
        halfOpenProbes: probes,
        openMs: 100,
        clock,
        probeGate: async () => {
          gateAsked++;
          return true;
        },
      });
      let reached = 0;
      let fail = true;
      const release: Array<() => void> = [];
      const svc = breaker.wrap<number, string>({
        call: () => {
          reached++;
          if (fail) return Promise.reject(new Error('x'));
          return new Promise((resolve) => release.push(() => resolve('ok')));
        },
      });
      await svc.call(1).catch(() => {});
      fail = false;
      reached = 0;
      await clock.advance(100);
      const burst = Array.from({ length: 50 }, () => svc.call(1).catch((e: unknown) => e));
      await new Promise((r) => setImmediate(r));
      expect(reached).toBe(probes);
      expect(gateAsked).toBe(probes);
      for (const r of release) r();
      const outcomes = await Promise.all(burst);
      expect(outcomes.filter((o) => o === 'ok')).toHaveLength(probes);
      expect(breaker.state).toBe('closed');
    }
  });

  it('a probe gate that says no refuses as if open, and frees the slot', async () => {
    const clock = new VirtualClock();
    let allow = false;
    const breaker = new CircuitBreakerLayer({
      policy: { kind: 'consecutive', threshold: 1 },
      openMs: 50,
      clock,
      probeGate: () => allow,
    });
    let fail = true;
    const svc = breaker.wrap({
      call: async () => {
        if (fail) throw new Error('x');
        return 'ok';
      },
    });
    await svc.call(1).catch(() => {});
    await clock.advance(50);
    fail = false;
    await expect(svc.call(1)).rejects.toMatchObject({ code: 'ERR_CIRCUIT_OPEN' });
    expect(breaker.state).toBe('open');
    await clock.advance(50);
    allow = true;
    expect(await svc.call(1)).toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('count window: failure rate over the last N calls, after the minimum', async () => {
    const clock = new VirtualClock();
    const breaker = new CircuitBreakerLayer({
      policy: { kind: 'count', size: 10, failureRateThreshold: 0.5, minimumCalls: 4 },
      clock,
    });
    const { s, svc } = switchable();
    const guarded = breaker.wrap(svc);
    s.failing = true;
    for (let i = 0; i < 3; i++) await guarded.call(1).catch(() => {});
    expect(breaker.state).toBe('closed'); // 3 of 3, but under the minimum
    breaker.reset();
    s.failing = false;
    for (let i = 0; i < 5; i++) await guarded.call(1);
    s.failing = true;
    for (let i = 0; i < 4; i++) await guarded.call(1).catch(() => {});
    expect(breaker.state).toBe('closed'); // 4 of 9
    await guarded.call(1).catch(() => {});
    expect(breaker.state).toBe('open'); // 5 of 10: the rate reached
  });

  it('time window: slow calls trip it, old calls age out', async () => {
    const clock = new VirtualClock();
    const breaker = new CircuitBreakerLayer({
      policy: {
        kind: 'time',
        windowMs: 1_000,
        slowCallRateThreshold: 0.5,
        slowCallDurationMs: 100,
        minimumCalls: 4,
      },
      clock,
    });
    const svc = breaker.wrap<number, string>({
      call: async (ms) => {
        if (ms > 0) await new Promise<void>((r) => clock.setTimeout(r, ms));
        return 'ok';
      },
    });
    const slow = () => {
      const p = svc.call(150);
      return clock.advance(150).then(() => p);
    };
    await slow();
    await slow();
    await clock.advance(2_000); // both aged out
    for (let i = 0; i < 3; i++) await svc.call(0);
    await slow();
    expect(breaker.state).toBe('closed'); // 1 slow of 4
    await slow();
    await slow();
    expect(breaker.state).toBe('open'); // 3 of 6
  });

  it('isolate() refuses everything until reset(); an outcome listener sees durations', async () => {
    const breaker = new CircuitBreakerLayer();
    const outcomes: Array<{ ok: boolean; durationMs: number }> = [];
    breaker.on('outcome', (o) => outcomes.push(o));
    const svc = breaker.wrap({ call: async () => 'ok' });
    breaker.isolate();
    expect(breaker.state).toBe('isolated');
    await expect(svc.call(1)).rejects.toMatchObject({ code: 'ERR_CIRCUIT_OPEN' });
    breaker.reset();
    expect(await svc.call(1)).toBe('ok');
    expect(outcomes).toEqual([{ ok: true, durationMs: expect.any(Number) }]);
  });

  it('fused under a retry: each attempt counted once, and the retry sees the open circuit', async () => {
    const clock = new VirtualClock();
    const breaker = new CircuitBreakerLayer({
      policy: { kind: 'consecutive', threshold: 2 },
      openMs: 1_000,
      clock,
    });
    const { s, svc } = switchable();
    const stack = new ServiceBuilder()
      .layer(new RetryLayer({ maxAttempts: 5, backoff: { next: () => 0 } }))
      .layer(breaker)
      .service(svc);
    s.failing = true;
    const error = await stack.call(1).catch((e: unknown) => e);
    expect(s.calls).toBe(2);
    expect(error).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED' });
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('ERR_CIRCUIT_OPEN');
    await clock.advance(1_000);
    s.failing = false;
    expect(await stack.call(1)).toBe('up');
    expect(breaker.state).toBe('closed');
    s.failing = true;
    await stack.call(1).catch(() => {});
    expect(breaker.state).toBe('open');
  });
});
