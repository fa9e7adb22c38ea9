/**
 * Group commit. A mutation accepted while a batch is being written and synced waits in the
 * queue; when the disk answers, everything queued goes out as the next batch: one write and
 * one fsync (or one transaction) for all of them, each acknowledged only once its batch is
 * durable. The first mutation after a quiet spell waits one turn of the event loop
 * (`setImmediate`), so that requests read from the network together are written together.
 *
 * Left alone, writers that share the disk settle into two groups taking turns, each waiting
 * for the other's fsync: half the throughput of one group. So after a batch, the next one
 * waits for as many writers as the last had — the clients just acknowledged are about to come
 * back — but never longer than half the last write took (MySQL's group-commit delay and count,
 * set from what the disk just did instead of by hand).
 */
import { type Clock, systemClock } from '@towerline/core';
import type { Write, WriteDone } from './backend.js';

export type Done = (error: Error | null) => void;

interface Batch {
  writes: Write[];
  dones: Done[];
  /** Callbacks that wait for everything accepted before them (`barrier`). */
  barriers: Array<() => void>;
  bytes: number;
}

const empty = (): Batch => ({ writes: [], dones: [], barriers: [], bytes: 0 });

export class CommitQueue {
  #queued: Batch = empty();
  #inFlight: Batch | undefined;
  #scheduled = false;
  #failed: Error | undefined;
  /** After a batch: flush once this many are queued, or when the gather timer fires. */
  #gather = 0;
  #gatherTimer: unknown;
  /** Batches written, and the records in them: records ÷ batches is the group size. */
  readonly stats = { batches: 0, records: 0 };

  constructor(
    private readonly writeBatch: (writes: Write[], done: WriteDone) => void,
    /** Applies a durable batch to what readers see, before anyone is acknowledged. */
    private readonly committed: (writes: Write[], addrs: Float64Array) => void,
    private readonly failed: (error: Error) => void,
    private readonly schedule: (fn: () => void) => void = setImmediate,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Bytes accepted and not yet durable. */
  get pendingBytes(): number {
    return this.#queued.bytes + (this.#inFlight?.bytes ?? 0);
  }

  get idle(): boolean {
    return this.#inFlight === undefined && this.#queued.writes.length === 0;
  }

  push(write: Write, bytes: number, done: Done): void {
    if (this.#failed) {
      done(this.#failed);
      return;
    }
    const q = this.#queued;
    q.writes.push(write);
    q.dones.push(done);
    q.bytes += bytes;
    if (this.#gatherTimer !== undefined && q.writes.length >= this.#gather) {
      this.clock.clearTimeout(this.#gatherTimer);
      this.#gatherTimer = undefined;
      this.#flush();
      return;
    }
    if (!this.#inFlight && !this.#scheduled && this.#gatherTimer === undefined) {
      this.#scheduled = true;
      this.schedule(() => {
        this.#scheduled = false;
        this.#flush();
      });
    }
  }

  /** Runs `fn` once everything accepted so far is durable (at once when nothing is pending). */
  barrier(fn: () => void): void {
    if (this.#queued.writes.length > 0) this.#queued.barriers.push(fn);
    else if (this.#inFlight) this.#inFlight.barriers.push(fn);
    else fn();
  }

  #flush(): void {
    if (this.#inFlight || this.#queued.writes.length === 0) return;
    const batch = this.#queued;
    this.#queued = empty();
    this.#inFlight = batch;
    this.stats.batches++;
    this.stats.records += batch.writes.length;
    const started = this.clock.now();
    this.writeBatch(batch.writes, (error, addrs) => {
      this.#inFlight = undefined;
      const tookMs = this.clock.now() - started;
      if (error || !addrs) {
        this.#fail(error ?? new Error('the storage backend returned no addresses'), batch);
        return;
      }
      this.committed(batch.writes, addrs);
      for (const done of batch.dones) done(null);
      for (const fn of batch.barriers) fn();
      this.#next(batch.writes.length, tookMs);
    });
  }

  /**
   * Starts the next batch. Those waiting already go out together with the writers just
   * acknowledged, who are about to come back: so the next batch waits for them too, for at
   * most half as long as the last write took.
   */
  #next(lastSize: number, tookMs: number): void {
    const waiting = this.#queued.writes.length;
    if (waiting === 0) return;
    if (tookMs < 0.2) {
      this.#flush();
      return;
    }
    this.#gather = waiting + lastSize;
    this.#gatherTimer = this.clock.setTimeout(
      () => {
        this.#gatherTimer = undefined;
        this.#flush();
      },
      Math.min(5, tookMs / 2),
    );
  }

  #fail(error: Error, batch: Batch): void {
    this.#failed = error;
    if (this.#gatherTimer !== undefined) this.clock.clearTimeout(this.#gatherTimer);
    this.#gatherTimer = undefined;
    const queued = this.#queued;
    this.#queued = empty();
    for (const b of [batch, queued]) {
      for (const done of b.dones) done(error);
      for (const fn of b.barriers) fn();
    }
    this.failed(error);
  }
}
