/**
 * Memory mode: each stream's data in its own arena of slabs that double from 256 bytes to
 * 1 MiB (a larger append gets a slab of its own). An append costs one copy into the arena and
 * an index entry; a read is a view into a slab; deleting a stream drops its slabs. No object
 * per append reaches the garbage collector.
 */

import {
  type Backend,
  getTable,
  HIGH,
  type Part,
  putData,
  type Write,
  type WriteDone,
} from './backend.js';
import type { Payload } from './codec.js';
import type { Stream } from './stream.js';

const FIRST_SLAB = 256;
const MAX_SLAB = 1024 * 1024;

interface Arena {
  slabs: Buffer[];
  /** Bytes used in the last slab. */
  used: number;
}

export class MemoryStore implements Backend {
  #allocated = 0;

  write(batch: Write[], done: WriteDone): void {
    const addrs = new Float64Array(batch.length);
    for (let k = 0; k < batch.length; k++) {
      const { record, stream } = batch[k]!;
      addrs[k] =
        'payload' in record && record.payload.count > 0
          ? this.store(stream, record.payload)
          : Number.NaN;
    }
    done(null, addrs);
  }

  /** Copies a payload into the stream's arena; returns the data's address. */
  store(stream: Stream, payload: Payload): number {
    let arena = stream.slot as Arena | undefined;
    if (!arena) {
      arena = { slabs: [], used: 0 };
      stream.slot = arena;
    }
    const need = (payload.table ? payload.table.length * 4 : 0) + payload.bytes;
    let slab = arena.slabs.at(-1);
    if (!slab || slab.length - arena.used < need) {
      const next = slab ? Math.min(MAX_SLAB, slab.length * 2) : FIRST_SLAB;
      slab = Buffer.allocUnsafeSlow(Math.max(next, need));
      arena.slabs.push(slab);
      arena.used = 0;
      this.#allocated += slab.length;
    }
    const data = putData(slab, arena.used, payload.table, payload.chunks);
    arena.used = data + payload.bytes;
    return (arena.slabs.length - 1) * HIGH + data;
  }

  read(parts: Part[]): Buffer[] {
    const out: Buffer[] = new Array(parts.length);
    for (let k = 0; k < parts.length; k++) {
      const { owner, i, from, to } = parts[k]!;
      const addr = owner.index.addr(i);
      const slab = (owner.slot as Arena).slabs[Math.floor(addr / HIGH)]!;
      const at = addr % HIGH;
      out[k] = slab.subarray(at + from, at + to);
    }
    return out;
  }

  table(owner: Stream, i: number, count: number): Uint32Array {
    const addr = owner.index.addr(i);
    return getTable((owner.slot as Arena).slabs[Math.floor(addr / HIGH)]!, addr % HIGH, count);
  }

  loadIndex(stream: Stream): void {
    stream.loaded = true;
  }

  dropped(stream: Stream): void {
    const arena = stream.slot as Arena | undefined;
    if (!arena) return;
    for (const s of arena.slabs) this.#allocated -= s.length;
    stream.slot = undefined;
  }

  get memory(): number {
    return this.#allocated;
  }

  get storedInMemory(): number {
    return this.#allocated;
  }

  async close(): Promise<void> {}
}
