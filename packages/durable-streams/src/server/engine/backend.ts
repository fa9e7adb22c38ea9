/**
 * What the engine asks of a storage backend: write a batch of records (acknowledged when as
 * durable as the mode promises), read byte ranges of entries back, and load a stream's index
 * on first use. Addresses are the backend's own; the engine only stores and hands them back.
 */
import type { LogRecord } from './codec.js';
import type { Stream } from './stream.js';

/** A byte range of one index entry's data: `owner.index` entry `i`, bytes `[from, to)`. */
export interface Part {
  owner: Stream;
  i: number;
  from: number;
  to: number;
}

/** One record to write, and the stream it belongs to (a create's new stream included). */
export interface Write {
  record: LogRecord;
  stream: Stream;
}

export type WriteDone = (error: Error | null, addrs: Float64Array | undefined) => void;

export interface Backend {
  /** Writes `batch` in order; `done` gets one data address per record (NaN where it has none). */
  write(batch: Write[], done: WriteDone): void;
  /** The bytes of each part, zero-copy where the backend can. */
  read(parts: Part[]): Buffer[] | Promise<Buffer[]>;
  /** The message table of a JSON entry with `count > 1` messages (end offset of each). */
  table(owner: Stream, i: number, count: number): Uint32Array;
  /** Reads entries kept on disk into `stream.index` (sets `loaded`). */
  loadIndex(stream: Stream): void;
  /** A stream was deleted for good. */
  dropped(stream: Stream): void;
  /** Bytes of process memory the backend holds (data in memory mode, write windows, …). */
  readonly memory: number;
  /** Bytes of stream data held in memory that count against `max_memory_bytes`. */
  readonly storedInMemory: number;
  close(): Promise<void>;
}

/** Splits an address into its high part (segment, slab) and its offset. */
export const HIGH = 4294967296;
export const addrHigh = (addr: number): number => Math.floor(addr / HIGH);
export const addrLow = (addr: number): number => addr % HIGH;

/** Writes `chunks` and an optional table into `buf` at `at`; returns the data offset. */
export function putData(
  buf: Buffer,
  at: number,
  table: Uint32Array | undefined,
  chunks: Buffer[],
): number {
  let p = at;
  if (table) {
    for (let i = 0; i < table.length; i++) buf.writeUInt32LE(table[i]!, p + i * 4);
    p += table.length * 4;
  }
  const data = p;
  for (const c of chunks) {
    buf.set(c, p);
    p += c.length;
  }
  return data;
}

/** Reads a message table of `count` entries that ends at `buf[dataAt]`. */
export function getTable(buf: Buffer, dataAt: number, count: number): Uint32Array {
  const table = new Uint32Array(count);
  const at = dataAt - count * 4;
  for (let i = 0; i < count; i++) table[i] = buf.readUInt32LE(at + i * 4);
  return table;
}
