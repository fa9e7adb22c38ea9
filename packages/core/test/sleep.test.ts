import { execFile } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type Clock, sleep, TowerlineError, VirtualClock } from '@towerline/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.useRealTimers();
});

/** Settles to 'resolved', 'rejected' or 'pending' after the microtasks queued so far. */
async function state(p: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  const pending = Symbol('pending');
  const winner = await Promise.race([p, Promise.resolve(pending)]).then(
    (v) => (v === pending ? 'pending' : 'resolved'),
    () => 'rejected' as const,
  );
  return winner;
}

describe('sleep on the system clock (fake timers)', () => {
  it('resolves once the time has passed, not before, and leaves no timer', async () => {
    vi.useFakeTimers();
    const p = sleep(1_000);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(await state(p)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await state(p)).toBe('resolved');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sleep(0) resolves on the next timer turn', async () => {
    vi.useFakeTimers();
    const p = sleep(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(await state(p)).toBe('resolved');
  });

  it('rejects with the signal reason on abort, at once, and leaves no timer or listener', async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const p = sleep(60_000, { signal: ac.signal });
    expect(vi.getTimerCount()).toBe(1);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    const reason = new Error('stop');
    ac.abort(reason);
    expect(vi.getTimerCount()).toBe(0);
    await expect(p).rejects.toBe(reason);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('rejects with a non-Error reason unchanged', async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const p = sleep(60_000, { signal: ac.signal });
    ac.abort('just a string');
    await expect(p).rejects.toBe('just a string');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects immediately, without a timer, when the signal is already aborted', async () => {
    vi.useFakeTimers();
    const signal = AbortSignal.abort();
    const p = sleep(10, { signal });
    expect(vi.getTimerCount()).toBe(0);
    expect(await state(p)).toBe('rejected');
    await expect(p).rejects.toBe(signal.reason);
    expect((signal.reason as Error).name).toBe('AbortError');
  });

  it('removes its abort listener when it resolves', async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const p = sleep(10, { signal: ac.signal });
    await vi.advanceTimersByTimeAsync(10);
    await p;
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    ac.abort(); // too late to matter
    expect(await state(p)).toBe('resolved');
  });
});

describe('sleep on an injected clock', () => {
  it('waits on the clock it is given', async () => {
    const clock = new VirtualClock();
    const p = sleep(500, { clock });
    expect(clock.pending).toBe(1);
    await clock.advance(499);
    expect(await state(p)).toBe('pending');
    await clock.advance(1);
    expect(await state(p)).toBe('resolved');
    expect(clock.pending).toBe(0);
  });

  it('clears its timer on the injected clock when aborted', async () => {
    const clock = new VirtualClock();
    const ac = new AbortController();
    const p = sleep(500, { clock, signal: ac.signal });
    await clock.advance(100);
    ac.abort(new Error('bye'));
    expect(clock.pending).toBe(0);
    await expect(p).rejects.toThrow('bye');
  });

  it('hands the duration to the clock and unrefs the timer only when asked', () => {
    const handles: unknown[] = [];
    const clock: Clock = {
      now: () => 0,
      setTimeout: vi.fn((_fn: () => void, _ms: number) => {
        const h = { id: handles.length };
        handles.push(h);
        return h;
      }),
      clearTimeout: vi.fn(),
      unref: vi.fn(),
    };
    void sleep(123, { clock });
    expect(clock.setTimeout).toHaveBeenCalledWith(expect.any(Function), 123);
    expect(clock.unref).not.toHaveBeenCalled();
    void sleep(10, { clock, unref: false });
    expect(clock.unref).not.toHaveBeenCalled();
    void sleep(10, { clock, unref: true });
    expect(clock.unref).toHaveBeenCalledTimes(1);
    expect(clock.unref).toHaveBeenCalledWith(handles[2]);
  });

  it('an injected clock without unref() is fine', async () => {
    const clock = new VirtualClock();
    expect('unref' in clock).toBe(false);
    const p = sleep(1, { clock });
    await clock.advance(1);
    await expect(p).resolves.toBeUndefined();
  });
});

describe('sleep: invalid durations', () => {
  it('throws ERR_INVALID_ARGUMENT naming ms', () => {
    const bad = fc.oneof(
      fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
      fc.constantFrom<unknown>(Number.NaN, Number.POSITIVE_INFINITY, '5', null, undefined, {}),
    );
    fc.assert(
      fc.property(bad, (ms) => {
        let thrown: unknown;
        try {
          void sleep(ms as number);
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(TowerlineError);
        expect(thrown).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', parameter: 'ms' });
      }),
    );
  });
});

describe('sleep: the process', () => {
  const run = (code: string) =>
    new Promise<{ status: number | null; stdout: string }>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', code],
        { cwd: fileURLToPath(new URL('../../..', import.meta.url)), timeout: 20_000 },
        (error, stdout) => {
          if (error && typeof error.code !== 'number') reject(error);
          else resolve({ status: error ? (error.code as number) : 0, stdout });
        },
      );
    });

  it('stays alive for an awaited sleep, as timers/promises does; exits under unref: true', async () => {
    const kept = await run(
      "import { sleep } from '@towerline/core'; await sleep(100); console.log('woke')",
    );
    expect(kept).toEqual({ status: 0, stdout: 'woke\n' });
    // An unsettled top-level await: Node exits with 13 before the timer fires.
    const dropped = await run(
      "import { sleep } from '@towerline/core'; await sleep(100, { unref: true }); console.log('woke')",
    );
    expect(dropped).toEqual({ status: 13, stdout: '' });
  });
});

describe('delays longer than a Node timer keeps (2^31 - 1 ms)', () => {
  it('a 3e9 ms sleep is still pending a while later (a bare Node timer fires after 1 ms)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const ac = new AbortController();
    const p = sleep(3e9, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 30));
    expect(await state(p)).toBe('pending');
    ac.abort(new Error('done'));
    await expect(p).rejects.toThrow('done');
    process.off('warning', onWarning);
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  it('fires at its time through a chain of timers, and a clear at any link cancels it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { systemClock } = await import('@towerline/core');
    const max = 2 ** 31 - 1;
    const fired: string[] = [];
    systemClock.setTimeout(() => fired.push('long'), 2.5 * max);
    const cleared = systemClock.setTimeout(() => fired.push('cleared'), 3 * max);
    await vi.advanceTimersByTimeAsync(max + 10);
    systemClock.clearTimeout(cleared);
    await vi.advanceTimersByTimeAsync(1.5 * max - 11);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toEqual(['long']);
    await vi.advanceTimersByTimeAsync(2 * max);
    expect(fired).toEqual(['long']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
