import { backoff, type Service, serviceFn, TowerlineError, VirtualClock } from '@towerline/core';
import { parseRetryAfter, RetryBudget, RetryLayer, retry } from '@towerline/retry';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.useRealTimers();
});

const fast = backoff.fixed(0);

/** A service that fails `failures` times with the given errors, then answers. */
function flaky(errors: unknown[], answer = 'ok') {
  const calls: unknown[] = [];
  const svc: Service<string, string> = {
    call: async (req) => {
      calls.push(req);
      if (calls.length <= errors.length) throw errors[calls.length - 1];
      return answer;
    },
  };
  return { svc, calls };
}

const econn = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

describe('RetryLayer', () => {
  it('returns the first success with one inner call, no timer and no event on the happy path', async () => {
    vi.useFakeTimers();
    const { svc, calls } = flaky([]);
    const layer = new RetryLayer({ backoff: fast });
    const events = vi.fn();
    layer.events.on('retry', events);
    expect(await layer.wrap(svc).call('a')).toBe('ok');
    expect(calls).toEqual(['a']);
    expect(vi.getTimerCount()).toBe(0);
    expect(events).not.toHaveBeenCalled();
  });

  it('retries after a failure and succeeds within maxAttempts', async () => {
    const { svc, calls } = flaky([econn(), econn()]);
    expect(await retry(svc, { maxAttempts: 3, backoff: fast }).call('a')).toBe('ok');
    expect(calls).toHaveLength(3);
  });

  it('makes exactly maxAttempts attempts, then throws ERR_RETRY_EXHAUSTED with the last error', async () => {
    const errors = Array.from({ length: 5 }, (_, i) =>
      Object.assign(new Error(`secret-token-${i}`), { code: `E${i}` }),
    );
    const { svc, calls } = flaky(errors);
    const layer = new RetryLayer({ maxAttempts: 4, backoff: fast });
    const exhausted = vi.fn();
    layer.events.on('exhausted', exhausted);
    const error = await layer
      .wrap(svc)
      .call('x')
      .catch((e) => e);
    expect(calls).toHaveLength(4);
    expect(error).toBeInstanceOf(TowerlineError);
    expect(error).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', attempts: 4 });
    expect(error.cause).toBe(errors[3]);
    expect(error.message).toContain('E3');
    expect(error.message).not.toContain('secret-token');
    expect(exhausted).toHaveBeenCalledWith({ attempts: 4, error: errors[3] });
  });

  it('defaults to 3 attempts', async () => {
    const { svc, calls } = flaky(Array.from({ length: 5 }, econn));
    await expect(retry(svc, { backoff: fast }).call('x')).rejects.toMatchObject({ attempts: 3 });
    expect(calls).toHaveLength(3);
  });

  it('asks retryOn with (error, attempt) and throws a refused error unchanged', async () => {
    const fatal = Object.assign(new Error('bad request'), { status: 400 });
    const { svc, calls } = flaky([econn(), fatal]);
    const retryOn = vi.fn(
      (e: unknown, _attempt: number) => (e as { status?: number }).status !== 400,
    );
    const error = await retry(svc, { maxAttempts: 5, backoff: fast, retryOn })
      .call('x')
      .catch((e) => e);
    expect(error).toBe(fatal);
    expect(calls).toHaveLength(2);
    expect(retryOn.mock.calls.map(([, attempt]) => attempt)).toEqual([1, 2]);
  });

  it('never retries an AbortError', async () => {
    const abort = new DOMException('the operation was aborted', 'AbortError');
    const { svc, calls } = flaky([abort]);
    await expect(
      retry(svc, { maxAttempts: 5, backoff: fast, retryOn: () => true }).call('x'),
    ).rejects.toBe(abort);
    expect(calls).toHaveLength(1);
  });

  it('retries non-Error throwables and TypeErrors', async () => {
    const { svc, calls } = flaky(['a string', new TypeError('x is not a function')]);
    expect(await retry(svc, { backoff: fast }).call('x')).toBe('ok');
    expect(calls).toHaveLength(3);
    const onlyStrings = flaky(['s1', 's2', 's3']);
    const e = await retry(onlyStrings.svc, { backoff: fast })
      .call('x')
      .catch((err) => err);
    expect(e.cause).toBe('s3');
  });

  it('treats a synchronous throw from the inner service as a failed attempt', async () => {
    let n = 0;
    const svc: Service<string, string> = {
      call: (() => {
        if (++n === 1) throw econn();
        return Promise.resolve('ok');
      }) as Service<string, string>['call'],
    };
    expect(await retry(svc, { backoff: fast }).call('x')).toBe('ok');
  });

  it('waits the backoff between attempts and reports each retry', async () => {
    const clock = new VirtualClock();
    const { svc, calls } = flaky([econn(), econn()]);
    const layer = new RetryLayer({
      maxAttempts: 3,
      backoff: backoff.exponential({ initial: 100 }),
      clock,
    });
    const onRetry = vi.fn();
    const events: unknown[] = [];
    layer.events.on('retry', (e) => events.push(e));
    const result = layer.wrap(svc).call('x');
    await clock.advance(99);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls).toHaveLength(2);
    await clock.advance(200);
    expect(await result).toBe('ok');
    expect(events).toEqual([
      { attempt: 1, delayMs: 100, error: expect.objectContaining({ code: 'ECONNRESET' }) },
      { attempt: 2, delayMs: 200, error: expect.objectContaining({ code: 'ECONNRESET' }) },
    ]);
    expect(onRetry).not.toHaveBeenCalled();
  });

  it('lets delayFromError win for that attempt, still capped by maxDelay', async () => {
    const clock = new VirtualClock();
    const hinted = Object.assign(new Error('503'), { retryAfterMs: 2_500 });
    const huge = Object.assign(new Error('503'), { retryAfterMs: 3_600_000 });
    const { svc } = flaky([hinted, econn(), huge]);
    const delays: number[] = [];
    const r = retry(svc, {
      maxAttempts: 4,
      backoff: backoff.fixed(50),
      maxDelay: 10_000,
      clock,
      delayFromError: (e) => (e as { retryAfterMs?: number }).retryAfterMs,
      onRetry: ({ delayMs }) => delays.push(delayMs),
    });
    const result = r.call('x');
    await clock.advance(20_000);
    expect(await result).toBe('ok');
    expect(delays).toEqual([2_500, 50, 10_000]);
  });

  it('caps hints at backoff.max by default', async () => {
    const clock = new VirtualClock();
    const { svc } = flaky([Object.assign(new Error('x'), { retryAfterMs: 99_999 })]);
    const delays: number[] = [];
    const r = retry(svc, {
      clock,
      backoff: backoff.exponential({ initial: 10, max: 1_000 }),
      delayFromError: (e) => (e as { retryAfterMs?: number }).retryAfterMs,
      onRetry: ({ delayMs }) => delays.push(delayMs),
    });
    const result = r.call('x');
    await clock.advance(2_000);
    await result;
    expect(delays).toEqual([1_000]);
  });

  it('aborts a pending wait at once with the signal reason, leaving no timer', async () => {
    vi.useFakeTimers();
    const { svc, calls } = flaky([econn(), econn()]);
    const ac = new AbortController();
    const result = retry(svc, { backoff: backoff.fixed(60_000) }).call('x', { signal: ac.signal });
    const outcome = result.catch((e) => e);
    await vi.advanceTimersByTimeAsync(10);
    expect(vi.getTimerCount()).toBe(1);
    const reason = new Error('caller gave up');
    ac.abort(reason);
    expect(await outcome).toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
    expect(calls).toHaveLength(1);
  });

  it('a throwing onRetry does not break the loop', async () => {
    const { svc } = flaky([econn()]);
    const r = retry(svc, {
      backoff: fast,
      onRetry: () => {
        throw new Error('observer bug');
      },
    });
    expect(await r.call('x')).toBe('ok');
  });

  it('forwards close() to the inner service', async () => {
    const close = vi.fn(async () => {});
    const r = retry({ call: async () => 'x', close }, {});
    await r.close();
    await r[Symbol.asyncDispose]();
    expect(close).toHaveBeenCalledTimes(2);
  });

  it('refuses invalid options with ERR_INVALID_ARGUMENT', () => {
    const svc = serviceFn(async () => 1);
    for (const [options, parameter] of [
      [{ maxAttempts: 0 }, 'maxAttempts'],
      [{ maxAttempts: 1.5 }, 'maxAttempts'],
      [{ backoff: { nope: true } }, 'backoff'],
      [{ maxDelay: -1 }, 'maxDelay'],
      [{ retryOn: 'yes' }, 'retryOn'],
    ] as const) {
      expect(() => retry(svc, options as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', parameter }),
      );
    }
  });
});

describe('RetryBudget', () => {
  it('allows the reserve (minPerSecond × ttl) with no deposits, then refuses', () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ttl: 1_000, minPerSecond: 5, retryPercent: 1, clock });
    for (let i = 0; i < 5; i++) expect(budget.withdraw()).toBe(true);
    expect(budget.withdraw()).toBe(false);
  });

  it('drains and refills: deposits count for ttl, then expire', async () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ttl: 1_000, minPerSecond: 0, retryPercent: 0.5, clock });
    expect(budget.withdraw()).toBe(false);
    budget.deposit();
    budget.deposit();
    await clock.advance(901);
    expect(budget.withdraw()).toBe(true); // two requests earned one retry
    expect(budget.withdraw()).toBe(false);
    await clock.advance(2_001);
    budget.deposit();
    await clock.advance(301);
    budget.deposit();
    await clock.advance(801);
    // The first of these deposits has expired; the second still counts.
    budget.deposit();
    expect(budget.withdraw()).toBe(true);
  });

  it('a refused retry throws the original error at once, marked budgetExhausted', async () => {
    const clock = new VirtualClock();
    const budget = new RetryBudget({ ttl: 1_000, minPerSecond: 1, retryPercent: 0.1, clock });
    const layer = new RetryLayer({ maxAttempts: 5, backoff: fast, budget });
    const refused = vi.fn();
    layer.events.on('budgetExhausted', refused);
    const errors = Array.from({ length: 10 }, econn);
    const { svc, calls } = flaky(errors);
    const wrapped = layer.wrap(svc);
    const e = await wrapped.call('a').catch((err) => err);
    // One retry from the reserve, then the budget is empty.
    expect(calls).toHaveLength(2);
    expect(e).toBe(errors[1]);
    expect(e.budgetExhausted).toBe(true);
    expect(refused).toHaveBeenCalledWith({ attempt: 2, error: errors[1] });
    expect(budget.remaining).toBe(0);
  });

  it('validates its options', () => {
    expect(() => new RetryBudget({ ttl: 100 })).toThrow(/ttl/);
    expect(() => new RetryBudget({ minPerSecond: -1 })).toThrow(/minPerSecond/);
    expect(() => new RetryBudget({ retryPercent: 2_000 })).toThrow(/retryPercent/);
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates', () => {
    const now = Date.parse('2026-11-23T10:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('')).toBeUndefined();
  });
});
