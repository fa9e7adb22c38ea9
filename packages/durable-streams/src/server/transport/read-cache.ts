/**
 * Bodies of recent catch-up reads, one per stream, least recently used evicted first within a
 * byte budget. A range of an append-only stream never changes, so a body built once serves
 * every reader that asks for the same range — the fan-out case, where many clients catch up
 * from the same offsets — without reading its entries again.
 */
import type { Stream } from '../engine/stream.js';

export interface CachedRead {
  position: number;
  /** The stream's visible tail when the body was built. */
  tail: number;
  end: number;
  body: Buffer;
  /** The ETag of the range, unquoted, before any closed-stream suffix. */
  etagBase: string;
}

export class ReadCache {
  readonly #entries = new Map<Stream, CachedRead>();
  #bytes = 0;

  constructor(public budget: number) {}

  /**
   * The cached body from `position`: valid while the tail has not moved, or when the page
   * stopped short of the tail (more appends do not change a page cut by its size).
   */
  get(stream: Stream, position: number): CachedRead | undefined {
    const hit = this.#entries.get(stream);
    if (!hit || hit.position !== position) return undefined;
    if (stream.removed || (hit.end >= hit.tail && hit.tail !== stream.visibleTail))
      return undefined;
    this.#entries.delete(stream);
    this.#entries.set(stream, hit);
    return hit;
  }

  set(stream: Stream, read: CachedRead): void {
    this.delete(stream);
    if (read.body.length > this.budget) return;
    this.shrink(this.budget - read.body.length);
    this.#entries.set(stream, read);
    this.#bytes += read.body.length;
  }

  /** Evicts least recently used bodies until at most `bytes` are held. */
  shrink(bytes: number): void {
    for (const [s, old] of this.#entries) {
      if (this.#bytes <= bytes) break;
      this.#entries.delete(s);
      this.#bytes -= old.body.length;
    }
  }

  delete(stream: Stream): void {
    const old = this.#entries.get(stream);
    if (!old) return;
    this.#entries.delete(stream);
    this.#bytes -= old.body.length;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }
}
