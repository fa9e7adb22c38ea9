/**
 * Reclaims the disk of deleted and expired streams. A sealed segment that no snapshot needs
 * any more is deleted when no live stream has data in it, or — when less than half of it is
 * live — its live entries are copied to the head (as records written like any other, so a
 * crash mid-way leaves both copies and loses neither), made durable, and then it is deleted.
 */
import { addrHigh } from './backend.js';
import type { Payload } from './codec.js';
import type { Engine } from './engine.js';
import type { LogStore } from './log-store.js';

export interface CompactionReport {
  deleted: number;
  copied: number;
}

export class Compactor {
  #running: Promise<CompactionReport> | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly log: LogStore,
    /** Copy a segment's live data once it is less than this share of the segment. */
    private readonly minLive = 0.5,
  ) {}

  /** Resolves once no pass runs. */
  async idle(): Promise<void> {
    await this.#running?.catch(() => {});
  }

  /** Starts a pass unless one runs; resolves with what the pass did. */
  run(): Promise<CompactionReport> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<CompactionReport> {
    const report = { deleted: 0, copied: 0 };
    const byId = this.engine.table.byId;
    const below = this.log.compactBelow;
    for (const seg of [...this.log.segments.values()].sort((a, b) => a.n - b.n)) {
      if (!seg.sealed || seg.n >= below || seg.n === this.log.headSegment) continue;
      let live = 0;
      for (const [id, d] of seg.dir) if (byId.has(id)) live += d.bytes;
      if (live > 0 && live >= seg.size * this.minLive) continue;
      if (live > 0) report.copied += await this.#copyLive(seg.n);
      if (this.engine.failed) break;
      await this.log.deleteSegment(seg.n);
      report.deleted++;
    }
    return report;
  }

  /** Copies every live entry of segment `n` to the head; resolves once they are durable. */
  async #copyLive(n: number): Promise<number> {
    const seg = this.log.segments.get(n)!;
    let copied = 0;
    for (const id of seg.dir.keys()) {
      const stream = this.engine.table.byId.get(id);
      if (!stream) continue;
      const idx = this.engine.index(stream);
      for (let i = 0; i < idx.n; i++) {
        if (addrHigh(idx.addr(i)) !== n) continue;
        const start = idx.start(i);
        const len = idx.len(i);
        const end = i + 1 < idx.n ? idx.start(i + 1) : stream.visibleTail;
        const count = stream.json ? end - start : len;
        const table =
          stream.json && count > 1 ? this.engine.messageTable(stream, i, count) : undefined;
        const [data] = await this.engine.read([{ owner: stream, i, from: 0, to: len }]);
        const payload: Payload = { chunks: [Buffer.from(data!)], bytes: len, count, table };
        this.engine.copy(stream, start, payload, () => {});
        copied++;
      }
    }
    await new Promise<void>((resolve) => this.engine.barrier(resolve));
    // file-fast acknowledges without fsync; the copies must be on disk before the original goes.
    await this.log.flush();
    return copied;
  }
}
