import { type CallContext, type Clock, type TimerHandle, TowerlineError } from '@towerline/core';

/** Calls that join one window before the next one opens: bounds a window's age under a busy loop. */
const MAX_JOINS = 32;
/** How soon an open window closes on an idle loop, in ms (the layer's timer fires then). */
const TICK_MS = 1;

type Reject = (error: unknown) => void;

/**
 * The calls that started within about one millisecond of each other through one timeout layer,
 * sharing one deadline, one lazily made abort signal and one place in the layer's timer heap.
 * The clock is read once per window, never per call: reading it costs as much as a bare call.
 *
 * It is also the context handed to the inner service of a caller that passed none, so that
 * such a call allocates nothing of its own for its signal or deadline.
 */
export class DeadlineWindow implements CallContext {
  readonly deadline: number;
  readonly idempotent: boolean | undefined = undefined;
  /** Calls joined so far; a window of one (an earlier caller deadline) starts full. */
  joins: number;
  /**
   * The first exact-mode call pending (slot -1): a caller that awaits each call before the next
   * one never needs more, so it never allocates {@link rejects}.
   */
  one: Reject | undefined = undefined;
  /** The other exact-mode calls pending, by slot; undefined when none is. */
  rejects: Array<Reject | undefined> | undefined = undefined;
  pending = 0;
  expired = false;
  /** Position in the queue's heap, -1 while not in it. */
  heapIndex = -1;
  readonly #queue: DeadlineQueue;
  #controller: AbortController | undefined = undefined;
  /** The last parent signal linked to this window's, and the result (callers sharing one parent share it). */
  #linkParent: AbortSignal | undefined = undefined;
  #linked: AbortSignal | undefined = undefined;
  #unlinks: Array<() => void> | undefined = undefined;

  constructor(queue: DeadlineQueue, deadline: number, joins: number) {
    this.#queue = queue;
    this.deadline = deadline;
    this.joins = joins;
  }

  /** No call joins any more: the layer's timer came, or the window is full. */
  closed = false;

  /** Aborts when the deadline passes. Made on first read; the window then waits in the heap. */
  get signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === undefined) {
      controller = new AbortController();
      this.#controller = controller;
      if (this.expired) controller.abort(this.#queue.error());
      else if (this.closed && this.armed) this.#queue.track(this);
    }
    return controller.signal;
  }

  /**
   * Whether the window has anything to do at its deadline: calls to reject, or, in optimistic
   * mode (where nobody knows when a call is done), a signal to abort. In exact mode a signal
   * matters only while its calls are pending.
   */
  get armed(): boolean {
    return this.pending > 0 || (this.#controller !== undefined && !this.#queue.exact);
  }

  /** A signal that aborts when `parent` does or this window's deadline passes. */
  link(parent: AbortSignal | undefined): AbortSignal {
    if (parent === undefined) return this.signal;
    if (parent === this.#linkParent) return this.#linked!;
    const own = this.signal;
    if (parent.aborted || own.aborted) return parent.aborted ? parent : own;
    const controller = new AbortController();
    const onParent = () => controller.abort(parent.reason);
    const onOwn = () => controller.abort(own.reason);
    parent.addEventListener('abort', onParent, { once: true });
    own.addEventListener('abort', onOwn, { once: true });
    // A long-lived parent must not collect one listener per call: dropped when the window ends.
    this.#unlinks ??= [];
    this.#unlinks.push(() => parent.removeEventListener('abort', onParent));
    this.#linkParent = parent;
    this.#linked = controller.signal;
    return controller.signal;
  }

  /** Registers an exact-mode call; returns its slot for {@link take}. */
  add(reject: Reject): number {
    this.pending++;
    // A window of one (an earlier caller deadline) is closed from the start: it goes to the heap.
    if (this.closed) this.#queue.track(this);
    if (this.one === undefined) {
      this.one = reject;
      return -1;
    }
    this.rejects ??= [];
    return this.rejects.push(reject) - 1;
  }

  /**
   * The call in `slot` settles, on its own or at the deadline: whether it was still pending
   * (each call settles once; a call the deadline rejected is not pending when its inner call
   * settles later).
   */
  take(slot: number): boolean {
    // A slot is taken once: by its call's own outcome, or by the deadline, which only a closed
    // window reaches (no call joins it any more). An empty slot means "already settled".
    if (slot === -1) {
      if (this.one === undefined) return false;
      this.one = undefined;
    } else {
      const rejects = this.rejects;
      if (rejects === undefined || rejects[slot] === undefined) return false;
      rejects[slot] = undefined;
    }
    if (--this.pending === 0) {
      this.rejects = undefined;
      // Nothing left to do at the deadline: leave the heap now rather than then.
      if (this.closed && !this.armed) {
        this.#queue.untrack(this);
        this.release();
      }
    }
    return true;
  }

  /** Drops the listeners this window put on parent signals (it will never abort). */
  release(): void {
    if (this.#unlinks !== undefined) for (const unlink of this.#unlinks) unlink();
    this.#unlinks = undefined;
    this.#linkParent = undefined;
    this.#linked = undefined;
  }

  /** The deadline passed: reject what is pending, abort the signal, drop the links. */
  expire(error: TowerlineError): number {
    // Each reject takes its own slot (see `take`): the count drops to 0 with the last one.
    let rejected = 0;
    const one = this.one;
    if (one !== undefined) {
      rejected++;
      one(error);
    }
    const rejects = this.rejects;
    if (rejects !== undefined) {
      for (let i = 0; i < rejects.length; i++) {
        const reject = rejects[i];
        if (reject !== undefined) {
          rejected++;
          reject(error);
        }
      }
    }
    this.expired = true;
    this.one = undefined;
    this.rejects = undefined;
    this.#controller?.abort(error);
    this.release();
    return rejected;
  }
}

/**
 * One timer for every deadline of one timeout layer: windows of calls that started together,
 * plus windows of one for calls that came with an earlier deadline of their own, in a min-heap
 * by deadline. The timer is armed for the earliest entry (or one tick ahead while a window is
 * open, to close it), re-armed only when that changes, and unref'd.
 */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #ms: number;
  readonly #onExpire: (rejected: number) => void;
  readonly #heap: DeadlineWindow[] = [];
  #open: DeadlineWindow | undefined = undefined;
  #timer: TimerHandle | undefined = undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  /** Exact mode: calls are rejected at their deadline (else only their signal aborts). */
  readonly exact: boolean;

  constructor(clock: Clock, ms: number, exact: boolean, onExpire: (rejected: number) => void) {
    this.exact = exact;
    this.#clock = clock;
    this.#ms = ms;
    this.#onExpire = onExpire;
  }

  /** The error a call that ran out of time rejects with, and its signal's reason. */
  error(): TowerlineError {
    return new TowerlineError('ERR_TIMEOUT', `the call did not finish within ${this.#ms} ms`, {
      mayHaveExecuted: true,
    });
  }

  /** The window a call starting now belongs to. */
  join(): DeadlineWindow {
    const open = this.#open;
    if (open !== undefined) {
      if (open.joins < MAX_JOINS) {
        open.joins++;
        return open;
      }
      this.#close(open);
    }
    const now = this.#clock.now();
    const window = new DeadlineWindow(this, now + this.#ms, 1);
    this.#open = window;
    this.#arm(now, now + TICK_MS);
    return window;
  }

  /** A window of one for a call whose own deadline is earlier than this layer's. */
  single(deadline: number): DeadlineWindow {
    const window = new DeadlineWindow(this, deadline, MAX_JOINS);
    window.closed = true;
    return window;
  }

  /**
   * No more calls join `window`. Only now does it go to the heap, and only if it has calls
   * pending or a signal made: a window whose calls all settled while it was open (every
   * sequential caller's) never costs a heap entry. Its deadline is still ahead: a window is
   * closed by the layer's timer at the latest, which is also the earliest any deadline fires.
   */
  #close(window: DeadlineWindow): void {
    window.closed = true;
    if (window.armed) this.track(window);
    else window.release();
  }

  /** Puts `window` in the heap (once): it has calls to reject or a signal to abort. */
  track(window: DeadlineWindow): void {
    if (window.heapIndex !== -1 || window.expired) return;
    const heap = this.#heap;
    heap.push(window);
    window.heapIndex = heap.length - 1;
    this.#siftUp(heap.length - 1);
    if (window.heapIndex === 0) this.#arm(undefined, window.deadline);
  }

  /** Whether `deadline` has already passed. */
  passed(deadline: number): boolean {
    return deadline <= this.#clock.now();
  }

  /** Takes `window` out of the heap before its deadline (nothing left for it to do). */
  untrack(window: DeadlineWindow): void {
    const i = window.heapIndex;
    if (i === -1) return;
    const heap = this.#heap;
    const last = heap.pop()!;
    window.heapIndex = -1;
    if (last === window) return;
    heap[i] = last;
    last.heapIndex = i;
    this.#siftUp(i);
    this.#siftDown(last.heapIndex);
  }

  #siftUp(i: number): void {
    const heap = this.#heap;
    const item = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.deadline <= item.deadline) break;
      heap[i] = heap[parent]!;
      heap[i]!.heapIndex = i;
      i = parent;
    }
    heap[i] = item;
    item.heapIndex = i;
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const item = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.deadline < heap[l]!.deadline ? r : l;
      if (heap[c]!.deadline >= item.deadline) break;
      heap[i] = heap[c]!;
      heap[i]!.heapIndex = i;
      i = c;
    }
    heap[i] = item;
    item.heapIndex = i;
  }

  /** Entries waiting in the heap (for tests). */
  get size(): number {
    return this.#heap.length;
  }

  #arm(now: number | undefined, at: number): void {
    if (at >= this.#timerAt) return;
    const clock = this.#clock;
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    const delay = Math.max(0, Math.ceil(at - (now ?? clock.now())));
    this.#timer = clock.setTimeout(this.#fire, delay);
    clock.unref?.(this.#timer);
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    if (this.#open !== undefined) this.#close(this.#open);
    this.#open = undefined;
    const heap = this.#heap;
    let rejected = 0;
    // Bounded: each pass removes one entry, and no entry is added while expiring.
    while (heap.length > 0 && heap[0]!.deadline <= now) {
      rejected += this.#pop().expire(this.error());
    }
    if (rejected > 0) this.#onExpire(rejected);
    if (heap.length > 0) this.#arm(now, heap[0]!.deadline);
  };

  #pop(): DeadlineWindow {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    top.heapIndex = -1;
    if (last !== top) {
      heap[0] = last;
      last.heapIndex = 0;
      this.#siftDown(0);
    }
    return top;
  }

  /** Stops the timer (every pending entry is then left to its inner call). */
  close(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }
}
