/**
 * Live reads: a long-poll waits for data (or its timeout, or the client leaving); an SSE
 * connection gets `data` and `control` events as the stream grows and is closed after
 * `sseReconnectMs` so that clients re-collapse behind a CDN. Both are served by one feed per
 * stream (fanout.ts: coalesced wake-ups, one frame per position shared by every reader there,
 * slow readers paused), and their deadlines sit in two lists behind one timer each
 * (deadlines.ts), never a timer per wait. Every open live read is counted
 * (`max_live_connections`) and ended by `close()`.
 */
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '@towerline/core';
import type { Engine } from '../engine/engine.js';
import type { Stream } from '../engine/stream.js';
import { Deadlines } from './deadlines.js';
import { detachSse, endDetached, observed } from './detach.js';
import { Feed, type FeedHost, type PollWaiter, type SseReader } from './fanout.js';
import type { Responder } from './respond.js';

export interface LiveOptions {
  longPollTimeoutMs: number;
  sseReconnectMs: number;
  /** Largest data event, bytes. */
  maxChunkBytes: number;
  /** Unsent bytes a live connection may hold before it is paused. Default 256 KiB. */
  bufferBytes?: number;
  /** Least time between two flushes of a stream's feed, ms. Default 3. */
  coalesceMs?: number;
  /** What that least time grows to under a flood of appends, ms. Default 12 (at least `coalesceMs`). */
  coalesceMaxMs?: number;
  clock: Clock;
  /** The next `Stream-Cursor` for a client holding `cursor`. */
  cursor(client: string | null): string;
  /** Told when building a frame failed (a storage error); the readers it was for are dropped. */
  onError?(error: unknown): void;
}

/** What live reads hold now (for tests and metrics). */
export interface LiveStats {
  /** SSE connections open. */
  sse: number;
  /** Long-polls waiting. */
  longPolls: number;
  /** SSE connections paused because their socket is full. */
  paused: number;
  /** Bytes written to SSE sockets and not yet sent, summed over connections. */
  bufferedBytes: number;
  /** Streams with a feed (at least one live reader). */
  feeds: number;
}

const SSE_HEADERS = [
  'content-type',
  'text/event-stream',
  'cache-control',
  'no-cache',
  'connection',
  'keep-alive',
];

/**
 * The socket under an HTTP/1.1 response using chunked encoding with nothing queued in the
 * response itself (its headers are flushed): frames may then go to the socket as whole chunks.
 */
function rawSocket(res: ServerResponse): Socket | undefined {
  const r = res as ServerResponse & { chunkedEncoding?: boolean; outputData?: unknown[] };
  const socket = res.socket;
  if (!(res instanceof ServerResponse) || r.chunkedEncoding !== true) return undefined;
  if (!socket || socket.destroyed || r.outputData?.length !== 0) return undefined;
  return socket;
}

/**
 * Takes an SSE reader's connection off node:http (a function of its own, so that no closure
 * of `sse()` keeps the response alive once it is detached).
 */
function detachReader(feed: Feed, reader: SseReader, socket: Socket): void {
  if (!feed.readers.has(reader) || socket.destroyed || !reader.res) return;
  if (!detachSse(reader.res, socket)) return;
  reader.detached = true;
  if (!observed(reader.res)) reader.res = undefined;
}

export class LiveReads implements FeedHost {
  readonly #feeds = new Map<Stream, Feed>();
  readonly #open = new Set<ServerResponse>();
  readonly #readers = new Map<SseReader, Feed>();
  readonly #pollDeadlines: Deadlines;
  readonly #sseDeadlines: Deadlines;
  readonly maxChunkBytes: number;
  readonly bufferBytes: number;
  readonly coalesceMs: number;
  readonly coalesceMaxMs: number;
  readonly clock: Clock;
  #closing = false;
  #polls = 0;

  constructor(
    readonly engine: Engine,
    private readonly responder: Responder,
    private readonly o: LiveOptions,
    /** Told when a live read starts (+1) and ends (-1). */
    private readonly count: (delta: number) => void,
  ) {
    this.#pollDeadlines = new Deadlines(o.clock);
    this.#sseDeadlines = new Deadlines(o.clock);
    this.maxChunkBytes = o.maxChunkBytes;
    this.bufferBytes = o.bufferBytes ?? 256 * 1024;
    this.coalesceMs = o.coalesceMs ?? 3;
    this.coalesceMaxMs = Math.max(this.coalesceMs, o.coalesceMaxMs ?? 12);
    this.clock = o.clock;
  }

  get closing(): boolean {
    return this.#closing;
  }

  get stats(): LiveStats {
    let paused = 0;
    let bufferedBytes = 0;
    for (const r of this.#readers.keys()) {
      if (r.paused) paused++;
      bufferedBytes += (r.socket ?? r.res)?.writableLength ?? 0;
    }
    return {
      sse: this.#readers.size,
      longPolls: this.#polls,
      paused,
      bufferedBytes,
      feeds: this.#feeds.size,
    };
  }

  cursor(client: string | null): string {
    return this.o.cursor(client);
  }

  onError(error: unknown): void {
    this.o.onError?.(error);
  }

  #feed(stream: Stream): Feed {
    let f = this.#feeds.get(stream);
    if (!f) {
      f = new Feed(stream, this);
      this.#feeds.set(stream, f);
    }
    return f;
  }

  release(feed: Feed): void {
    if (this.#feeds.get(feed.stream) === feed) this.#feeds.delete(feed.stream);
  }

  #track(res: ServerResponse): void {
    this.#open.add(res);
    this.count(1);
  }

  #untrack(res: ServerResponse): void {
    if (this.#open.delete(res)) this.count(-1);
  }

  /** Waits for the stream to change; false on timeout, the client leaving, or shutdown. */
  wait(stream: Stream, res: ServerResponse): Promise<boolean> {
    if (this.#closing) return Promise.resolve(false);
    this.#track(res);
    this.#polls++;
    const feed = this.#feed(stream);
    return new Promise((resolve) => {
      let finished = false;
      const waiter: PollWaiter = {
        tail: stream.visibleTail,
        closed: stream.visibleClosed,
        done: (arrived) => {
          if (finished) return;
          finished = true;
          this.#polls--;
          feed.polls.delete(waiter);
          this.#pollDeadlines.remove(deadline);
          res.off('close', onGone);
          this.#untrack(res);
          feed.releaseIfIdle();
          resolve(arrived);
        },
      };
      const onGone = () => waiter.done(false);
      const deadline = this.#pollDeadlines.add(this.o.longPollTimeoutMs, onGone);
      feed.polls.add(waiter);
      res.once('close', onGone);
    });
  }

  /** Serves an SSE read of `stream` from `start` until the stream closes or the deadline. */
  sse(res: ServerResponse, stream: Stream, start: number, cursor: string | null): void {
    const feed = this.#feed(stream);
    const headers = feed.base64
      ? SSE_HEADERS.concat('stream-sse-data-encoding', 'base64')
      : SSE_HEADERS;
    res.writeHead(200, this.responder.common.concat(headers));
    res.flushHeaders();
    if (this.#closing) {
      res.end();
      feed.releaseIfIdle();
      return;
    }
    this.count(1);
    const socket = rawSocket(res);
    const reader: SseReader = {
      res,
      socket,
      detached: false,
      position: start,
      cursor,
      first: true,
      paused: false,
      deadline: undefined,
    };
    reader.deadline = this.#sseDeadlines.add(this.o.sseReconnectMs, () => this.end(feed, reader));
    feed.readers.add(reader);
    this.#readers.set(reader, feed);
    (socket ?? res).once('close', () => this.end(feed, reader));
    feed.schedule();
    // Off node:http once the headers are out — after the parser has finished with this
    // request, which it does once this call returns: the socket is all an idle reader keeps.
    if (socket) setImmediate(detachReader, feed, reader, socket);
  }

  /** Ends an SSE read: idempotent. */
  end(feed: Feed, reader: SseReader): void {
    if (!feed.readers.delete(reader)) return;
    this.#readers.delete(reader);
    if (reader.deadline) this.#sseDeadlines.remove(reader.deadline);
    this.count(-1);
    if (reader.detached) endDetached(reader.socket!, reader.res);
    else if (reader.res && !reader.res.writableEnded) reader.res.end();
    feed.releaseIfIdle();
  }

  /** Ends every live read; call before closing the server. */
  close(): void {
    this.#closing = true;
    for (const feed of [...this.#feeds.values()]) {
      for (const p of [...feed.polls]) p.done(false);
      for (const r of [...feed.readers]) this.end(feed, r);
    }
    for (const res of this.#open) res.end();
    this.#pollDeadlines.clear();
    this.#sseDeadlines.clear();
  }
}
