/**
 * Catch-up reads: a page of the stream from an offset. A page that fits in `inlineBytes` is
 * built whole (and cached: ranges never change); a larger one — up to the configurable
 * catch-up page size, 10 MiB by default so that a client that reads one response gets a whole
 * dev-profile stream — is pumped from storage a megabyte at a time with backpressure, so its
 * memory stays bounded whatever the page size.
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Part } from '../engine/backend.js';
import type { Engine } from '../engine/engine.js';
import type { ReadPlan } from '../engine/read-plan.js';
import type { Stream } from '../engine/stream.js';
import { etagBase, pageHeaders } from '../protocol/replies.js';
import type { ReadCache } from './read-cache.js';
import type { Responder } from './respond.js';

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');
const PUMP_BYTES = 1024 * 1024;

export interface CatchUpOptions {
  pageBytes: number;
  /** Pages up to this size are built whole and cached. Default 1 MiB. */
  inlineBytes: number;
  /** Whether `bytes` more may be cached within the memory budget. */
  roomFor(bytes: number): boolean;
}

/** A JSON page's body: the messages of each part, joined and bracketed. */
function assemble(json: boolean, bufs: Buffer[]): Buffer {
  if (!json) return bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
  const list: Buffer[] = [OPEN];
  bufs.forEach((b, k) => {
    if (k > 0) list.push(COMMA);
    list.push(b);
  });
  list.push(CLOSE);
  return Buffer.concat(list);
}

/** The body's length: data, plus brackets and commas for JSON. */
const bodyLength = (json: boolean, plan: ReadPlan) =>
  plan.bytes + (json ? 2 + Math.max(0, plan.parts.length - 1) : 0);

export class CatchUp {
  /** Bytes read from storage and not yet handed to a socket. */
  inFlight = 0;

  constructor(
    private readonly engine: Engine,
    private readonly responder: Responder,
    private readonly cache: ReadCache,
    private readonly o: CatchUpOptions,
  ) {}

  serve(
    req: IncomingMessage,
    res: ServerResponse,
    stream: Stream,
    position: number,
    cursor: string | undefined,
  ): void | Promise<void> {
    const hit = this.cache.get(stream, position);
    if (hit) return this.#send(req, res, stream, hit.end, hit.etagBase, cursor, hit.body);
    const plan = this.engine.plan(stream, position, this.o.pageBytes);
    const base = etagBase(this.engine.storeId, stream, position, plan.end);
    // The tail the plan saw: an asynchronous read (postgres) may finish after it moved, and a
    // page cached against the newer tail would pass for one cut short by its size.
    const tail = stream.visibleTail;
    if (bodyLength(stream.json, plan) > this.o.inlineBytes)
      return this.#pump(req, res, stream, plan, base, cursor);
    const build = (bufs: Buffer[]) => {
      const body = assemble(stream.json, bufs);
      if (this.o.roomFor(body.length))
        this.cache.set(stream, {
          position,
          tail,
          end: plan.end,
          body,
          etagBase: base,
        });
      this.#send(req, res, stream, plan.end, base, cursor, body);
    };
    const bufs = this.engine.read(plan.parts);
    if (bufs instanceof Promise) return bufs.then(build);
    build(bufs);
  }

  #send(
    req: IncomingMessage,
    res: ServerResponse,
    stream: Stream,
    end: number,
    base: string,
    cursor: string | undefined,
    body: Buffer,
  ): void {
    const { headers, etag } = pageHeaders(stream, end, base, cursor);
    if (req.headers['if-none-match'] === etag) {
      this.responder.send(res, 304, ['etag', etag]);
      return;
    }
    this.responder.send(res, 200, headers, body);
  }

  async #pump(
    req: IncomingMessage,
    res: ServerResponse,
    stream: Stream,
    plan: ReadPlan,
    base: string,
    cursor: string | undefined,
  ): Promise<void> {
    const { headers, etag } = pageHeaders(stream, plan.end, base, cursor);
    if (req.headers['if-none-match'] === etag) return this.responder.send(res, 304, ['etag', etag]);
    const json = stream.json;
    res.writeHead(
      200,
      this.responder.common.concat(headers, ['content-length', String(bodyLength(json, plan))]),
    );
    if (json) res.write(OPEN);
    // Pieces of at most a megabyte; a JSON part's first piece follows a comma.
    const pieces: Array<{ part: Part; comma: boolean }> = [];
    plan.parts.forEach((p, n) => {
      for (let from = p.from; from < p.to; from += PUMP_BYTES)
        pieces.push({
          part: { ...p, from, to: Math.min(p.to, from + PUMP_BYTES) },
          comma: json && n > 0 && from === p.from,
        });
    });
    let k = 0;
    while (k < pieces.length && !res.destroyed) {
      const group: typeof pieces = [];
      let bytes = 0;
      while (k < pieces.length && (group.length === 0 || bytes < PUMP_BYTES)) {
        const piece = pieces[k++]!;
        group.push(piece);
        bytes += piece.part.to - piece.part.from;
      }
      this.inFlight += bytes;
      let ok = true;
      try {
        const bufs = await this.engine.read(group.map((g) => g.part));
        group.forEach((g, n) => {
          if (g.comma) res.write(COMMA);
          ok = res.write(bufs[n]!) && ok;
        });
      } finally {
        this.inFlight -= bytes;
      }
      if (!ok && !res.destroyed) {
        // The listener that loses the race is removed: one per page would pile up otherwise.
        const ac = new AbortController();
        const { signal } = ac;
        await Promise.race([once(res, 'drain', { signal }), once(res, 'close', { signal })]);
        ac.abort();
      }
    }
    if (json) res.write(CLOSE);
    res.end();
  }
}
