/**
 * Live reads: a long-poll waits for data (or its timeout, or the client leaving); an SSE
 * connection writes `data` and `control` events as the stream grows and is closed after
 * `sseReconnectMs` so that clients re-collapse behind a CDN. Every timer comes from the
 * injected clock, and every open live read is counted (`max_live_connections`) and ended by
 * `close()`.
 */
import type { ServerResponse } from 'node:http';
import type { Clock } from '@towerline/core';
import type { Engine } from '../engine/engine.js';
import { isTextual, type Stream } from '../engine/stream.js';
import { formatOffset } from '../protocol/offsets.js';
import type { Responder } from './respond.js';

export interface LiveOptions {
  longPollTimeoutMs: number;
  sseReconnectMs: number;
  /** Largest data event, bytes. */
  maxChunkBytes: number;
  clock: Clock;
  /** The next `Stream-Cursor` for a client holding `cursor`. */
  cursor(client: string | null): string;
}

const LINE_BREAK = /\r\n|\r|\n/;

export class LiveReads {
  readonly #open = new Set<ServerResponse>();
  #closing = false;

  constructor(
    private readonly engine: Engine,
    private readonly responder: Responder,
    private readonly o: LiveOptions,
    /** Told when a live read starts (+1) and ends (-1). */
    private readonly count: (delta: number) => void,
  ) {}

  get closing(): boolean {
    return this.#closing;
  }

  #track(res: ServerResponse): () => void {
    this.#open.add(res);
    this.count(1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#open.delete(res);
      this.count(-1);
    };
  }

  /** Waits for data on `stream`; false on timeout, the client leaving, or shutdown. */
  wait(stream: Stream, res: ServerResponse): Promise<boolean> {
    if (this.#closing) return Promise.resolve(false);
    const untrack = this.#track(res);
    const { clock } = this.o;
    return new Promise((resolve) => {
      const done = (arrived: boolean) => {
        clock.clearTimeout(timer);
        stream.waiters.delete(onData);
        res.off('close', onGone);
        untrack();
        resolve(arrived);
      };
      const onData = () => done(true);
      const onGone = () => done(false);
      const timer = clock.setTimeout(() => done(false), this.o.longPollTimeoutMs);
      stream.waiters.add(onData);
      res.once('close', onGone);
    });
  }

  /** Serves an SSE read of `stream` from `start` until the stream closes or the deadline. */
  async sse(
    res: ServerResponse,
    stream: Stream,
    start: number,
    cursor: string | null,
  ): Promise<void> {
    const base64 = !isTextual(stream.contentType);
    const headers = [
      'content-type',
      'text/event-stream',
      'cache-control',
      'no-cache',
      'connection',
      'keep-alive',
    ];
    if (base64) headers.push('stream-sse-data-encoding', 'base64');
    res.writeHead(200, this.responder.common.concat(headers));
    res.flushHeaders();
    const untrack = this.#track(res);
    let gone = false;
    res.once('close', () => {
      gone = true;
      stream.wake();
    });
    const { clock } = this.o;
    const deadline = clock.now() + this.o.sseReconnectMs;
    let position = start;
    let first = true;
    let lastCursor = cursor;
    try {
      while (!gone && !this.#closing && clock.now() < deadline && !stream.removed) {
        const plan = this.engine.plan(stream, position, this.o.maxChunkBytes);
        if (plan.parts.length > 0) {
          const bufs = await this.engine.read(plan.parts);
          if (gone) break;
          const payload = stream.json
            ? `[${bufs.map((b) => b.toString('utf8')).join(',')}]`
            : Buffer.concat(bufs).toString(base64 ? 'base64' : 'utf8');
          res.write(
            `event: data\n${payload
              .split(LINE_BREAK)
              .map((l) => `data:${l}`)
              .join('\n')}\n\n`,
          );
          position = plan.end;
        }
        const upToDate = position >= stream.visibleTail;
        const closed = stream.visibleClosed && upToDate;
        if (plan.parts.length > 0 || first || closed) {
          const control: Record<string, unknown> = { streamNextOffset: formatOffset(position) };
          if (!closed) {
            lastCursor = this.o.cursor(lastCursor);
            control.streamCursor = lastCursor;
          }
          if (upToDate) control.upToDate = true;
          if (closed) control.streamClosed = true;
          res.write(`event: control\ndata:${JSON.stringify(control)}\n\n`);
          first = false;
        }
        if (closed) break;
        if (!upToDate) continue;
        await new Promise<void>((resolve) => {
          const done = () => {
            clock.clearTimeout(timer);
            stream.waiters.delete(done);
            resolve();
          };
          const timer = clock.setTimeout(done, Math.max(0, deadline - clock.now()));
          stream.waiters.add(done);
        });
      }
    } finally {
      untrack();
      res.end();
    }
  }

  /** Ends every live read; call before closing the server. */
  close(): void {
    this.#closing = true;
    for (const s of this.engine.streams.values()) s.wake();
    for (const res of this.#open) res.end();
  }
}
