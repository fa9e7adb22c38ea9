/**
 * Deadlines of many live reads behind one timer: a list kept in deadline order (every entry
 * of a list has the same duration, so a new one goes at the end, found from the end in O(1)),
 * and one clock timer armed for the earliest. Removing an entry is O(1) and arms nothing; the
 * timer, when it fires early for an entry already removed, re-arms for the new head. A wait
 * costs a list node, never a timer of its own.
 */
import type { Clock, TimerHandle } from '@towerline/core';

export interface Deadline {
  at: number;
  fire: () => void;
  prev: Deadline | undefined;
  next: Deadline | undefined;
  /** Still in the list. */
  queued: boolean;
}

export class Deadlines {
  #head: Deadline | undefined;
  #tail: Deadline | undefined;
  #timer: TimerHandle | undefined;
  #armedAt = Number.POSITIVE_INFINITY;
  #size = 0;

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.#size;
  }

  /** Calls `fire` in `ms` unless the entry is removed first. */
  add(ms: number, fire: () => void): Deadline {
    const d: Deadline = {
      at: this.clock.now() + ms,
      fire,
      prev: undefined,
      next: undefined,
      queued: true,
    };
    let after = this.#tail;
    while (after && after.at > d.at) after = after.prev;
    d.prev = after;
    d.next = after ? after.next : this.#head;
    if (d.next) d.next.prev = d;
    else this.#tail = d;
    if (after) after.next = d;
    else this.#head = d;
    this.#size++;
    if (d.at < this.#armedAt) this.#arm(d.at);
    return d;
  }

  remove(d: Deadline): void {
    if (!d.queued) return;
    d.queued = false;
    if (d.prev) d.prev.next = d.next;
    else this.#head = d.next;
    if (d.next) d.next.prev = d.prev;
    else this.#tail = d.prev;
    d.prev = d.next = undefined;
    this.#size--;
    if (this.#size === 0) this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#armedAt = at;
    this.#timer = this.clock.setTimeout(() => this.#expire(), Math.max(0, at - this.clock.now()));
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  #expire(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    // Bounded: each pass removes the head, and entries added meanwhile lie in the future.
    for (let d = this.#head; d && d.at <= now; d = this.#head) {
      this.remove(d);
      d.fire();
    }
    if (this.#head) this.#arm(this.#head.at);
  }

  /** Drops every entry without firing it, and the timer. */
  clear(): void {
    for (let d = this.#head; d; d = this.#head) this.remove(d);
    this.#disarm();
  }
}
