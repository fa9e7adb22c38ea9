/**
 * Group commit. A mutation accepted while a batch is being written and synced waits in the
 * queue; when the disk answers, everything queued goes out as the next batch: one write and
 * one fsync (or one transaction) for all of them, each acknowledged only once its batch is
 * durable. The first mutation after a quiet spell waits one turn of the event loop
 * (`setImmediate`), so that requests read from the network together are written together.
 */
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
  /** Batches written, and the records in them: records ÷ batches is the group size. */
  readonly stats = { batches: 0, records: 0 };

  constructor(
    private readonly writeBatch: (writes: Write[], done: WriteDone) => void,
    /** Applies a durable batch to what readers see, before anyone is acknowledged. */
    private readonly committed: (writes: Write[], addrs: Float64Array) => void,
    private readonly failed: (error: Error) => void,
    private readonly schedule: (fn: () => void) => void = setImmediate,
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
    if (!this.#inFlight && !this.#scheduled) {
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
    this.writeBatch(batch.writes, (error, addrs) => {
      this.#inFlight = undefined;
      if (error || !addrs) {
        this.#fail(error ?? new Error('the storage backend returned no addresses'), batch);
        return;
      }
      this.committed(batch.writes, addrs);
      for (const done of batch.dones) done(null);
      for (const fn of batch.barriers) fn();
      // Everything that arrived during the fsync goes out now, as one batch.
      this.#flush();
    });
  }

  #fail(error: Error, batch: Batch): void {
    this.#failed = error;
    const queued = this.#queued;
    this.#queued = empty();
    for (const b of [batch, queued]) {
      for (const done of b.dones) done(error);
      for (const fn of b.barriers) fn();
    }
    this.failed(error);
  }
}
