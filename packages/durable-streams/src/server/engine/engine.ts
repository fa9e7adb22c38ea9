/**
 * The storage engine: the stream set, the changes the protocol decided on, group commit, and
 * reads. In memory mode a change is stored and visible at once; in the other modes it is
 * checked against the state ahead of the disk, queued for the next batch, and acknowledged
 * (its `done` called) once the batch is durable.
 */
import type { Backend, Part, Write } from './backend.js';
import { type LogRecord, type Payload, T_COPY } from './codec.js';
import { CommitQueue, type Done } from './commit-queue.js';
import { type CompactionReport, Compactor } from './compaction.js';
import { StorageError } from './errors.js';
import { type OnCorruption, openLog } from './log-recovery.js';
import type { LogStore } from './log-store.js';
import { MemoryStore } from './memory-store.js';
import { nextBoundary, planRead, type ReadPlan } from './read-plan.js';
import type { SharedStore } from './shared.js';
import type { Stream, StreamIndex } from './stream.js';
import { type AppendSpec, type CreateSpec, StreamTable } from './table.js';

export type StorageMode = 'memory' | 'file-fast' | 'file-durable' | 'acid' | 'postgres';

export const STORAGE_MODES: readonly StorageMode[] = [
  'memory',
  'file-fast',
  'file-durable',
  'acid',
  'postgres',
];

export interface EngineOptions {
  /** `memory` (default), `file-fast`, `file-durable`, `acid` or `postgres`. */
  mode?: StorageMode;
  /** `postgres`: the database every instance shares (`postgres://host:port/db`). */
  postgresUrl?: string;
  /** `postgres`: the schema of its tables, created if missing. Default `durable_streams`. */
  postgresSchema?: string;
  /** `postgres`: connections for changes and reads. Default 4. */
  postgresPoolSize?: number;
  /** Where `file-*` and `acid` keep their data. */
  dataDir?: string;
  /** Wall clock (ms), for TTLs. Default `Date.now`. */
  now?: () => number;
  /** A corrupt batch in the middle of the log: refuse to start (default) or keep what precedes it. */
  onCorruption?: OnCorruption;
  /** Log segment size before it is sealed. Default 64 MiB. */
  segmentBytes?: number;
  /** Log records before a segment is sealed (bounds the replay at start-up). Default 65,536. */
  segmentRecords?: number;
  /** Told about repairs made at open (a truncated torn tail) and failures. */
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

/** What opening found: batches replayed, bytes cut off a torn tail, time taken. */
export interface OpenReport {
  replayed: number;
  truncated: number;
  ms: number;
}

export class Engine {
  readonly table: StreamTable;
  readonly mode: StorageMode;
  #backend!: Backend;
  #queue: CommitQueue | undefined;
  #failed: Error | undefined;
  #log: LogStore | undefined;
  #compactor: Compactor | undefined;
  #memory: MemoryStore | undefined;
  #shared: SharedStore | undefined;
  #warn: EngineOptions['warn'];
  /** An id of this store, part of ETags: a stream id alone repeats after a memory restart. */
  storeId = '';
  report: OpenReport = { replayed: 0, truncated: 0, ms: 0 };

  private constructor(
    mode: StorageMode,
    readonly now: () => number,
  ) {
    this.mode = mode;
    // Recovery replays deletes before the backend is set: nothing of theirs is held yet then.
    this.table = new StreamTable((s) => this.#backend?.dropped(s), now);
  }

  /** A memory-mode engine, ready at once. */
  static memory(options: Pick<EngineOptions, 'now'> = {}): Engine {
    const engine = new Engine('memory', options.now ?? Date.now);
    engine.#memory = new MemoryStore();
    engine.#backend = engine.#memory;
    engine.storeId = Math.random().toString(36).slice(2, 10);
    return engine;
  }

  /** Opens the storage of `options.mode`, recovering what is on disk. */
  static async open(options: EngineOptions = {}): Promise<Engine> {
    const started = performance.now();
    const mode = options.mode ?? 'memory';
    if (mode === 'memory') return Engine.memory(options);
    const engine = new Engine(mode, options.now ?? Date.now);
    engine.#warn = options.warn;
    if (mode === 'postgres') {
      if (!options.postgresUrl)
        throw new StorageError('ERR_STORAGE_FAILED', 'storage mode postgres needs a database URL');
      const { openPg } = await import('./pg-open.js');
      const store = await openPg(
        {
          url: options.postgresUrl,
          schema: options.postgresSchema ?? 'durable_streams',
          ...(options.postgresPoolSize ? { poolSize: options.postgresPoolSize } : {}),
          ...(options.warn ? { warn: options.warn } : {}),
        },
        engine.table,
        engine.now,
      );
      engine.#backend = store;
      engine.#shared = store;
      engine.storeId = store.storeId;
      engine.report.ms = performance.now() - started;
      return engine;
    }
    if (!options.dataDir)
      throw new StorageError('ERR_STORAGE_FAILED', `storage mode ${mode} needs a data directory`);
    if (mode === 'acid') {
      const { openSqlite } = await import('./sqlite-store.js');
      const store = await openSqlite(options.dataDir, engine.table, engine.now());
      engine.#backend = store;
      engine.storeId = store.storeId;
    } else {
      const opened = await openLog(
        {
          dir: options.dataDir,
          sync: mode === 'file-durable',
          ...(options.segmentBytes ? { segmentBytes: options.segmentBytes } : {}),
          ...(options.segmentRecords ? { segmentRecords: options.segmentRecords } : {}),
          ...(options.onCorruption ? { onCorruption: options.onCorruption } : {}),
          ...(options.warn ? { warn: options.warn } : {}),
        },
        engine.table,
        engine.now(),
      );
      engine.#backend = opened.store;
      engine.#log = opened.store;
      const compactor = new Compactor(engine, opened.store);
      engine.#compactor = compactor;
      opened.store.onSealed = () =>
        void compactor
          .run()
          .catch((error: Error) =>
            options.warn?.('compaction failed', { 'error.message': error.message }),
          );
      engine.storeId = opened.store.storeId.slice(0, 8);
      engine.report = { ...engine.report, replayed: opened.replayed, truncated: opened.truncated };
    }
    engine.#queue = new CommitQueue(
      (batch, done) => engine.#backend.write(batch, done),
      (batch, addrs) => engine.#committed(batch, addrs),
      (error) => {
        engine.#failed = error;
        options.warn?.('storage failed: writes are refused until restart', {
          'error.message': error.message,
        });
      },
    );
    engine.report.ms = performance.now() - started;
    return engine;
  }

  get streams(): ReadonlyMap<string, Stream> {
    return this.table.streams;
  }

  /** The log store (file modes), for compaction. */
  get log(): LogStore | undefined {
    return this.#log;
  }

  /**
   * The store several instances share (postgres mode): refresh a stream with `sync` before
   * serving it, and decide changes through it, under the database's lock.
   */
  get shared(): SharedStore | undefined {
    return this.#shared;
  }

  /** Set once a write failed: every later change is refused with it. */
  get failed(): Error | undefined {
    return this.#failed;
  }

  /** Bytes of memory held: indexes, write windows, memory-mode data, changes not yet durable. */
  get memoryBytes(): number {
    return this.table.meter.bytes + this.#backend.memory + (this.#queue?.pendingBytes ?? 0);
  }

  /** Group commit so far: batches written and the records in them (none in memory mode). */
  get commits(): { batches: number; records: number } {
    return this.#queue?.stats ?? { batches: 0, records: 0 };
  }

  /** Stream data counted against `max_memory_bytes`: all of it in memory mode, else none. */
  get storedBytes(): number {
    return this.#backend.storedInMemory;
  }

  /** The stream at `key`, unless it expired (then it is deleted, softly if forks read it). */
  live(key: string): Stream | undefined {
    const s = this.table.streams.get(key);
    if (s && !s.softDeleted && s.expired(this.now())) {
      if (this.#shared) {
        // Deleted in the database (if it still is expired there); gone here at once.
        this.#shared.delete(s, true, () => {});
        if (s.refs === 0) return undefined;
        s.softDeleted = true;
        return s;
      }
      this.delete(s, () => {});
      return s.softDeleted ? s : undefined;
    }
    return s;
  }

  create(spec: CreateSpec, done: Done): Stream {
    const { stream, record } = this.table.create(spec, this.now());
    this.#submit(record, stream, spec.payload, done);
    return stream;
  }

  /** Appends; returns the tail after this append (the reply's next offset). */
  append(stream: Stream, spec: AppendSpec, done: Done): number {
    this.#submit(this.table.append(stream, spec), stream, spec.payload, done);
    return stream.tail;
  }

  delete(stream: Stream, done: Done): void {
    if (this.#shared) {
      this.#shared.delete(stream, false, done);
      return;
    }
    this.#submit(this.table.delete(stream), stream, undefined, done);
  }

  /** Moves an entry's data (compaction): written like any change, applied when durable. */
  copy(stream: Stream, start: number, payload: Payload, done: Done): void {
    this.#submit({ t: T_COPY, id: stream.id, start, payload }, stream, payload, done);
  }

  #submit(record: LogRecord, stream: Stream, payload: Payload | undefined, done: Done): void {
    if (this.#shared) {
      // The checked state here is a cache: a change decided on it alone could race another
      // instance's. Shared stores take decisions (`shared.append`), not changes.
      done(
        new StorageError('ERR_STORAGE_FAILED', 'postgres mode changes go through engine.shared'),
      );
      return;
    }
    if (this.#failed) {
      done(this.#failed);
      return;
    }
    if (this.#memory) {
      // Memory mode: stored and visible at once, no batch, no allocation beyond the copy.
      const addr = payload && payload.count > 0 ? this.#memory.store(stream, payload) : Number.NaN;
      this.table.commit(record, stream, addr);
      done(null);
      return;
    }
    this.#queue!.push({ record, stream }, payload?.bytes ?? 0, done);
  }

  #committed(batch: Write[], addrs: Float64Array): void {
    for (let k = 0; k < batch.length; k++) {
      const w = batch[k]!;
      this.table.commit(w.record, w.stream, addrs[k]!);
    }
  }

  /** Runs `fn` once every change accepted so far is durable (at once in memory mode). */
  barrier(fn: () => void): void {
    if (this.#queue) this.#queue.barrier(fn);
    else fn();
  }

  /** The stream's index, read from disk on first use. */
  index(stream: Stream): StreamIndex {
    if (!stream.loaded) this.#backend.loadIndex(stream);
    return stream.index;
  }

  /** The message table of a JSON entry with more than one message. */
  messageTable(owner: Stream, i: number, count: number): Uint32Array {
    return this.#backend.table(owner, i, count);
  }

  readonly #indexes = {
    index: (s: Stream) => this.index(s),
    table: (owner: Stream, i: number, count: number) => this.#backend.table(owner, i, count),
  };

  /** A page of visible data from `position`, at most `maxBytes` (at least one message). */
  plan(stream: Stream, position: number, maxBytes: number): ReadPlan {
    return planRead(this.#indexes, stream, position, maxBytes);
  }

  read(parts: Part[]): Buffer[] | Promise<Buffer[]> {
    return this.#backend.read(parts);
  }

  /** The end of the append containing `position` (a fork's sub-offset stays inside it). */
  nextBoundary(stream: Stream, position: number): number {
    return nextBoundary(this.#indexes, stream, position);
  }

  /** Deletes every expired stream; returns how many. */
  sweep(): number {
    if (this.#shared) {
      // Every expired stream of the database, not only the ones this process holds.
      this.#shared
        .sweep()
        .catch((error: Error) => this.#warn?.('sweep failed', { 'error.message': error.message }));
      return 0;
    }
    const now = this.now();
    let n = 0;
    for (const s of [...this.table.streams.values()]) {
      if (!s.softDeleted && !s.removed && s.expired(now)) {
        this.delete(s, () => {});
        n++;
      }
    }
    return n;
  }

  /** Resolves once every accepted change is durable and background work (seals) is done. */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => this.barrier(resolve));
    await this.#log?.sealed();
  }

  /** Reclaims the disk of deleted and expired streams (file modes; SQLite reuses its pages). */
  compact(): Promise<CompactionReport> {
    return this.#compactor?.run() ?? Promise.resolve({ deleted: 0, copied: 0 });
  }

  /** Waits for every accepted change and any compaction to be durable, then closes. */
  async close(): Promise<void> {
    await this.settle();
    await this.#compactor?.idle();
    await this.settle();
    await this.#backend.close();
  }
}
