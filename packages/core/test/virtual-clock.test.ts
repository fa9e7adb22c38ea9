import { TowerlineError, VirtualClock } from '@towerline/core';
import { describe, expect, it } from 'vitest';

describe('VirtualClock', () => {
  it('moves only when told to and fires timers in time order, ties in creation order', async () => {
    const clock = new VirtualClock(1_000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b@200'), 200);
    clock.setTimeout(() => fired.push('a@100'), 100);
    clock.setTimeout(() => fired.push('c@200'), 200);
    clock.setTimeout(() => fired.push('d@NaN→0'), Number.NaN);
    expect(clock.now()).toBe(1_000);
    expect(clock.pending).toBe(4);
    await clock.advance(150);
    expect(clock.now()).toBe(1_150);
    expect(fired).toEqual(['d@NaN→0', 'a@100']);
    await clock.advance(50);
    expect(fired).toEqual(['d@NaN→0', 'a@100', 'b@200', 'c@200']);
    expect(clock.pending).toBe(0);
  });

  it('clearTimeout cancels, once', async () => {
    const clock = new VirtualClock();
    let fired = 0;
    const h = clock.setTimeout(() => fired++, 10);
    clock.clearTimeout(h);
    clock.clearTimeout(h);
    clock.clearTimeout(undefined);
    expect(clock.pending).toBe(0);
    await clock.advance(100);
    expect(fired).toBe(0);
  });

  it('lets promise callbacks run between instants, so timer-driven async code keeps up', async () => {
    const clock = new VirtualClock();
    const times: number[] = [];
    const loop = async () => {
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((r) => clock.setTimeout(r, 100));
        times.push(clock.now());
      }
    };
    const done = loop();
    await clock.advance(300);
    await done;
    expect(times).toEqual([100, 200, 300]);
  });

  it('runAll() fires every timer, up to a limit', async () => {
    const clock = new VirtualClock();
    let n = 0;
    const again = () => {
      n++;
      clock.setTimeout(again, 1_000);
    };
    clock.setTimeout(again, 1_000);
    expect(await clock.runAll(5)).toBe(5);
    expect(n).toBe(5);
    expect(clock.now()).toBe(5_000);
  });

  it('refuses to go backwards', async () => {
    await expect(new VirtualClock().advance(-1)).rejects.toBeInstanceOf(TowerlineError);
  });
});
