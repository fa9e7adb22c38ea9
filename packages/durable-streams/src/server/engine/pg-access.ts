/**
 * The last access of TTL streams read by this instance, written back for the whole fleet (so
 * that every instance slides their expiry): in the turn after a refresh, and once a second.
 */
import type { Stream } from './stream.js';

export class AccessLog {
  /** Streams with a TTL read here since their last access was written. */
  readonly #touched = new Map<Stream, number>();
  readonly #timer: NodeJS.Timeout;
  #soon = false;
  #closed = false;

  constructor(private readonly write: (ids: number[], at: number[]) => Promise<unknown>) {
    this.#timer = setInterval(() => void this.flush(), 1_000);
    this.#timer.unref();
  }

  /**
   * `s` was refreshed: a read served after it slides the expiry, written in the next turn (a
   * HEAD, which does not, leaves nothing to write).
   */
  refreshed(s: Stream): void {
    if (s.config.ttlSeconds === undefined || this.#touched.has(s)) return;
    this.#touched.set(s, s.lastAccess);
    if (this.#soon) return;
    this.#soon = true;
    setImmediate(() => {
      this.#soon = false;
      void this.flush();
    });
  }

  async flush(): Promise<void> {
    if (this.#touched.size === 0 || this.#closed) return;
    const streams = [...this.#touched].filter(([s, at]) => !s.removed && s.lastAccess > at);
    this.#touched.clear();
    if (streams.length === 0) return;
    await this.write(
      streams.map(([s]) => s.id),
      streams.map(([s]) => s.lastAccess),
    ).catch(() => {});
  }

  /** Writes what is left and stops. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    this.#closed = true;
  }
}
