/**
 * A stream as the engine holds it: its configuration, the state appends are checked against
 * (which runs ahead of the disk while a group commit is in flight), the state readers see
 * (only what is durable), and a compact index from positions to where the bytes are — three
 * typed arrays, 20 bytes per append, never a JavaScript object per append.
 */

export interface ProducerState {
  epoch: number;
  lastSeq: number;
}

export interface Fork {
  /** The stream this one was forked from, kept (soft-deleted if need be) while forks read it. */
  source: Stream;
  /** Where the fork diverges: positions below it are read from the source. */
  position: number;
  offset: number;
  subOffset: number;
}

export interface StreamConfig {
  contentType: string;
  ttlSeconds: number | undefined;
  expiresAt: number | undefined;
  expiresAtText: string | undefined;
}

/** Counts the bytes held by a set of indexes. */
export interface Meter {
  bytes: number;
}

/** Positions → data addresses, in position order; one entry per append (or per record). */
export class StreamIndex {
  starts: Float64Array = new Float64Array(4);
  addrs: Float64Array = new Float64Array(4);
  lens: Uint32Array = new Uint32Array(4);
  n = 0;

  constructor(private readonly meter: Meter = { bytes: 0 }) {
    meter.bytes += this.memory;
  }

  /** Stops counting this index (its stream is gone). */
  release(): void {
    this.meter.bytes -= this.memory;
  }

  #grow(): void {
    const size = Math.max(8, Math.ceil(this.starts.length * 1.5));
    const starts = new Float64Array(size);
    const addrs = new Float64Array(size);
    const lens = new Uint32Array(size);
    starts.set(this.starts.subarray(0, this.n));
    addrs.set(this.addrs.subarray(0, this.n));
    lens.set(this.lens.subarray(0, this.n));
    this.meter.bytes -= this.memory;
    this.starts = starts;
    this.addrs = addrs;
    this.lens = lens;
    this.meter.bytes += this.memory;
  }

  push(start: number, addr: number, len: number): void {
    if (this.n > 0 && start <= this.starts[this.n - 1]!) {
      this.set(start, addr, len);
      return;
    }
    if (this.n === this.starts.length) this.#grow();
    this.starts[this.n] = start;
    this.addrs[this.n] = addr;
    this.lens[this.n] = len;
    this.n++;
  }

  /** Inserts an entry, or moves the one at `start` to a new address (compaction, lazy load). */
  set(start: number, addr: number, len: number): void {
    const i = this.find(start);
    if (i >= 0 && this.starts[i] === start) {
      this.addrs[i] = addr;
      this.lens[i] = len;
      return;
    }
    if (this.n === this.starts.length) this.#grow();
    const at = i + 1;
    this.starts.copyWithin(at + 1, at, this.n);
    this.addrs.copyWithin(at + 1, at, this.n);
    this.lens.copyWithin(at + 1, at, this.n);
    this.starts[at] = start;
    this.addrs[at] = addr;
    this.lens[at] = len;
    this.n++;
  }

  /** Replaces every entry (a lazily loaded index): arrays of the same length, sorted. */
  replace(starts: Float64Array, addrs: Float64Array, lens: Uint32Array): void {
    this.meter.bytes -= this.memory;
    this.starts = starts;
    this.addrs = addrs;
    this.lens = lens;
    this.n = starts.length;
    this.meter.bytes += this.memory;
  }

  /** The last entry starting at or before `position`; -1 when there is none. */
  find(position: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Bytes of memory held. */
  get memory(): number {
    return this.starts.byteLength + this.addrs.byteLength + this.lens.byteLength;
  }
}

export function isJsonType(contentType: string): boolean {
  return mediaType(contentType) === 'application/json';
}

export function isTextual(contentType: string): boolean {
  const base = mediaType(contentType);
  return base.startsWith('text/') || base === 'application/json';
}

/** The part of a content type that must match: the media type, case-insensitively. */
export function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

export class Stream {
  readonly json: boolean;
  lastAccess: number;

  // What appends are checked against: includes mutations still being written.
  /** Next position: bytes or messages accepted so far. */
  tail = 0;
  closed = false;
  /** The producer tuple whose append closed the stream, for idempotent retries. */
  closedBy: { id: string; epoch: number; seq: number } | undefined;
  lastStreamSeq: string | undefined;
  readonly producers = new Map<string, ProducerState>();
  /** Data bytes of this stream's own appends (a fork's inherited bytes are its source's). */
  bytes = 0;
  /** Live forks reading this stream's data. */
  refs = 0;
  /** Deleted while forks still read it: 410 to its own clients. */
  softDeleted = false;
  /** Deleted for good: its data may be reclaimed. */
  removed = false;

  // What readers see: only what is durable.
  /** The create is durable. */
  created = false;
  visibleTail = 0;
  visibleClosed = false;

  readonly index: StreamIndex;
  /** False while entries in sealed segments have not been read into `index` yet. */
  loaded = true;
  /** Per-stream data of the storage backend (the memory arena's slabs). */
  slot: unknown;
  /** Woken when data or a close becomes visible, and on delete. */
  readonly waiters = new Set<() => void>();

  constructor(
    /** Internal id: never reused, part of ETags and of every record on disk. */
    readonly id: number,
    readonly key: string,
    readonly config: StreamConfig,
    readonly fork: Fork | undefined,
    now: number,
    meter?: Meter,
  ) {
    this.index = new StreamIndex(meter);
    this.json = isJsonType(config.contentType);
    this.lastAccess = now;
    if (fork) {
      this.tail = fork.position;
      this.visibleTail = fork.position;
    }
  }

  get contentType(): string {
    return this.config.contentType;
  }

  /** Whether the stream has expired at wall-clock `now` (sliding TTL or absolute expiry). */
  expired(now: number): boolean {
    const { expiresAt, ttlSeconds } = this.config;
    if (expiresAt !== undefined && now >= expiresAt) return true;
    return ttlSeconds !== undefined && now - this.lastAccess >= ttlSeconds * 1000;
  }

  /** Wakes every reader waiting on this stream. */
  wake(): void {
    if (this.waiters.size === 0) return;
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }
}
