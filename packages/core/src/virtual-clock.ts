import type { Clock, TimerHandle } from './clock.js';
import { describeValue, invalidArgument } from './errors.js';

interface VirtualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

const before = (a: VirtualTimer, b: VirtualTimer) =>
  a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Lets pending promise callbacks run (setImmediate runs after the microtask queue drains). */
const flushMicrotasks = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A clock whose time moves only when told to, for tests and simulations: backoff schedules,
 * state-machine timing and herds of ten thousand clients run in milliseconds of real time.
 * Timers fire in time order (ties in creation order); a min-heap keeps that cheap.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * const r = new Reconnector({ connect, clock });
 * await clock.advance(30_000); // runs every timer due in the next 30 virtual seconds
 * ```
 */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #heap: VirtualTimer[] = [];
  #live = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: VirtualTimer = { at: this.#now + delay, seq: this.#seq++, fn, cancelled: false };
    this.#push(timer);
    this.#live++;
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle as VirtualTimer | undefined;
    if (timer && !timer.cancelled) {
      timer.cancelled = true;
      this.#live--;
    }
  }

  /** Timers scheduled and neither fired nor cleared. */
  get pending(): number {
    return this.#live;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in order. Between distinct
   * instants it lets promise callbacks run, so async code driven by the timers keeps up.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms))
      invalidArgument('ms', `expected >= 0, got ${describeValue(ms)}`);
    const target = this.#now + ms;
    for (;;) {
      await flushMicrotasks();
      const next = this.#peek();
      if (!next || next.at > target) break;
      this.#now = next.at;
      while (this.#peek()?.at === this.#now) this.#fire(this.#pop()!);
    }
    this.#now = target;
    await flushMicrotasks();
  }

  /** Fires timers until none is left or `maxTimers` have fired; returns how many fired. */
  async runAll(maxTimers = 100_000): Promise<number> {
    let fired = 0;
    for (;;) {
      await flushMicrotasks();
      const next = this.#peek();
      if (!next || fired >= maxTimers) return fired;
      this.#now = next.at;
      this.#fire(this.#pop()!);
      fired++;
    }
  }

  #fire(timer: VirtualTimer): void {
    if (timer.cancelled) return;
    timer.cancelled = true;
    this.#live--;
    timer.fn();
  }

  #peek(): VirtualTimer | undefined {
    while (this.#heap.length && this.#heap[0]!.cancelled) this.#pop();
    return this.#heap[0];
  }

  #push(timer: VirtualTimer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): VirtualTimer | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}
