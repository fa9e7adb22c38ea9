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

const SHIFT = 10;
/** Entries per chunk: a full chunk is never copied again, so an index grows without slack. */
const CHUNK = 1 << SHIFT;
const MASK = CHUNK - 1;
const ENTRY_BYTES = 20;

/**
 * Positions → data addresses, in position order; one entry per append (or per record): 20
 * bytes each, in chunks of 1,024 entries (the first grows from 4) that are never reallocated.
 */
export class StreamIndex {
  #starts: Float64Array[] = [new Float64Array(4)];
  #addrs: Float64Array[] = [new Float64Array(4)];
  #lens: Uint32Array[] = [new Uint32Array(4)];
  n = 0;

  constructor(private readonly meter: Meter = { bytes: 0 }) {
    meter.bytes += this.memory;
  }

  /** Stops counting this index (its stream is gone). */
  release(): void {
    this.meter.bytes -= this.memory;
  }

  start(i: number): number {
    return this.#starts[i >>> SHIFT]![i & MASK]!;
  }

  addr(i: number): number {
    return this.#addrs[i >>> SHIFT]![i & MASK]!;
  }

  len(i: number): number {
    return this.#lens[i >>> SHIFT]![i & MASK]!;
  }

  push(start: number, addr: number, len: number): void {
    if (this.n > 0 && start <= this.start(this.n - 1)) {
      this.set(start, addr, len);
      return;
    }
    const c = this.n >>> SHIFT;
    const j = this.n & MASK;
    if (c === this.#starts.length) {
      this.#starts.push(new Float64Array(CHUNK));
      this.#addrs.push(new Float64Array(CHUNK));
      this.#lens.push(new Uint32Array(CHUNK));
      this.meter.bytes += CHUNK * ENTRY_BYTES;
    } else if (j === this.#starts[c]!.length) this.#growFirst();
    this.#starts[c]![j] = start;
    this.#addrs[c]![j] = addr;
    this.#lens[c]![j] = len;
    this.n++;
  }

  #growFirst(): void {
    const size = this.#starts[0]!.length * 2;
    const grow = <T extends Float64Array | Uint32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.meter.bytes += (size / 2) * ENTRY_BYTES;
    this.#starts[0] = grow(this.#starts[0]!);
    this.#addrs[0] = grow(this.#addrs[0]!);
    this.#lens[0] = grow(this.#lens[0]!);
  }

  /** Inserts an entry, or moves the one at `start` to a new address (compaction, lazy load). */
  set(start: number, addr: number, len: number): void {
    const i = this.find(start);
    if (i >= 0 && this.start(i) === start) {
      this.#addrs[i >>> SHIFT]![i & MASK] = addr;
      this.#lens[i >>> SHIFT]![i & MASK] = len;
      return;
    }
    // An insertion in the middle: rare (an entry moved before it was loaded), so rebuilt.
    const { starts, addrs, lens } = this.flat();
    const at = i + 1;
    const ins = <T extends Float64Array | Uint32Array>(a: T, v: number): T => {
      const b = new (a.constructor as new (n: number) => T)(a.length + 1);
      b.set(a.subarray(0, at));
      b[at] = v;
      b.set(a.subarray(at), at + 1);
      return b;
    };
    this.replace(ins(starts, start), ins(addrs, addr), ins(lens, len));
  }

  /** Every entry as three arrays. */
  flat(): { starts: Float64Array; addrs: Float64Array; lens: Uint32Array } {
    const starts = new Float64Array(this.n);
    const addrs = new Float64Array(this.n);
    const lens = new Uint32Array(this.n);
    for (let c = 0; c * CHUNK < this.n; c++) {
      const m = Math.min(CHUNK, this.n - c * CHUNK);
      starts.set(this.#starts[c]!.subarray(0, m), c * CHUNK);
      addrs.set(this.#addrs[c]!.subarray(0, m), c * CHUNK);
      lens.set(this.#lens[c]!.subarray(0, m), c * CHUNK);
    }
    return { starts, addrs, lens };
  }

  /** Replaces every entry (a lazily loaded index): arrays of the same length, sorted. */
  replace(starts: Float64Array, addrs: Float64Array, lens: Uint32Array): void {
    this.meter.bytes -= this.memory;
    const n = starts.length;
    const chunks = Math.max(1, Math.ceil(n / CHUNK));
    const first = n <= CHUNK ? Math.max(4, n) : CHUNK;
    this.#starts = [];
    this.#addrs = [];
    this.#lens = [];
    for (let c = 0; c < chunks; c++) {
      const size = c === 0 ? first : CHUNK;
      const from = c * CHUNK;
      const to = Math.min(n, from + size);
      const s = new Float64Array(size);
      const a = new Float64Array(size);
      const l = new Uint32Array(size);
      s.set(starts.subarray(from, to));
      a.set(addrs.subarray(from, to));
      l.set(lens.subarray(from, to));
      this.#starts.push(s);
      this.#addrs.push(a);
      this.#lens.push(l);
    }
    this.n = n;
    this.meter.bytes += this.memory;
  }

  /** The last entry starting at or before `position`; -1 when there is none. */
  find(position: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.start(mid) <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Bytes of memory held. */
  get memory(): number {
    let n = 0;
    for (let c = 0; c < this.#starts.length; c++) n += this.#starts[c]!.length * ENTRY_BYTES;
    return n;
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
