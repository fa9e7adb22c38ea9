/**
 * Fan-out of one stream to its live readers. A feed listens to the stream's engine-level
 * "visible data" notification (`stream.waiters`, woken by the engine on every durable commit,
 * close and delete, whichever instance or backend made it) with one listener, however many
 * readers it has. Wake-ups arriving within one turn of the event loop are coalesced into one
 * flush (`setImmediate`); a flush groups the SSE readers by position and builds one frame —
 * the data event and the control event, encoded once into one Buffer — per group, which every
 * reader of the group gets in one `write`. A reader whose socket holds more than
 * `bufferBytes` unsent is paused (it gets nothing more, so it holds at most one frame beyond
 * the limit) and rejoins at its own position on `drain`: it never slows the others, and
 * loses nothing. Long-poll waiters are answered by the same flush.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock, TimerHandle } from '@towerline/core';
import type { Engine } from '../engine/engine.js';
import { isTextual, type Stream } from '../engine/stream.js';
import { formatOffset } from '../protocol/offsets.js';
import type { Deadline } from './deadlines.js';

/** An SSE connection reading a stream. */
export interface SseReader {
  /** The response; dropped once the connection is taken from node:http, unless observed. */
  res: ServerResponse | undefined;
  /**
   * The HTTP/1.1 socket under a chunked `res`, written to directly with a frame that carries
   * its own chunk header (built once for every reader), so a write costs one socket write and
   * none of the response's per-write bookkeeping; undefined where that cannot be done (HTTP/2).
   */
  readonly socket: Socket | undefined;
  /** Taken off node:http (detach.ts): `res`, when still there, is only kept for its observers. */
  detached: boolean;
  /** Where the next frame this reader gets starts. */
  position: number;
  /** The last `Stream-Cursor` it was given (or sent). */
  cursor: string | null;
  /** Nothing sent yet: it gets a control event even at the tail. */
  first: boolean;
  /** Its socket is full: nothing more until `drain`. */
  paused: boolean;
  deadline: Deadline | undefined;
}

/** A long-poll waiting for the stream to change from what it was when the wait began. */
export interface PollWaiter {
  tail: number;
  closed: boolean;
  done(arrived: boolean): void;
}

/** What a feed needs from the live reads that own it. */
export interface FeedHost {
  readonly engine: Engine;
  readonly closing: boolean;
  /** Largest data event, bytes. */
  readonly maxChunkBytes: number;
  /** Unsent bytes past which a reader is paused. */
  readonly bufferBytes: number;
  /** Least time between two flushes of a feed, ms (0: every turn of the event loop). */
  readonly coalesceMs: number;
  /** The most that least time grows to under a flood of appends, ms. */
  readonly coalesceMaxMs: number;
  readonly clock: Clock;
  cursor(client: string | null): string;
  /** Ends an SSE read (its response, its count, its deadline). */
  end(feed: Feed, reader: SseReader): void;
  /** A feed with no reader left stops listening. */
  release(feed: Feed): void;
  onError(error: unknown): void;
}

const CRLF = '\r\n';

/** One encoded frame, in the two shapes a reader may need, each built at most once. */
class Frame {
  #plain: Buffer | undefined;
  #chunked: Buffer | undefined;

  constructor(
    readonly text: string,
    readonly end: number,
    readonly closed: boolean,
    readonly cursor: string | undefined,
  ) {}

  /** For `res.write`. */
  get plain(): Buffer {
    this.#plain ??= Buffer.from(this.text, 'utf8');
    return this.#plain;
  }

  /** One HTTP/1.1 chunk, header and trailer included, for the socket itself. */
  get chunked(): Buffer {
    if (!this.#chunked) {
      const n = Buffer.byteLength(this.text, 'utf8');
      this.#chunked = Buffer.from(`${n.toString(16)}${CRLF}${this.text}${CRLF}`, 'utf8');
    }
    return this.#chunked;
  }
}

/** Commits carried by one flush from which the feed counts as flooded. */
const FLOOD = 4;

const LINE_BREAK = /\r\n|\r|\n/;

/** `data:` lines of an SSE event; a payload without a line break (base64, most JSON) as is. */
function dataLines(payload: string): string {
  if (payload.indexOf('\n') === -1 && payload.indexOf('\r') === -1) return `data:${payload}\n`;
  let out = '';
  for (const line of payload.split(LINE_BREAK)) out += `data:${line}\n`;
  return out;
}

/** The highest cursor among readers: the shared next cursor must pass every one of them. */
function highestCursor(readers: SseReader[]): string | null {
  let best: string | null = null;
  let n = -1;
  for (const r of readers) {
    if (r.cursor === null) continue;
    const v = Number(r.cursor);
    if (v > n) {
      n = v;
      best = r.cursor;
    }
  }
  return best;
}

export class Feed {
  readonly readers = new Set<SseReader>();
  readonly polls = new Set<PollWaiter>();
  readonly base64: boolean;
  #scheduled = false;
  #busy = false;
  #again = false;
  #released = false;
  /** Wake-ups (commits) since the last flush: how many the next one carries. */
  #wakes = 0;
  /** The least time from one flush to the next, now: grows under a flood, see `#flushNow`. */
  #window: number;
  readonly #onWake = () => {
    if (this.#released) return;
    this.#wakes++;
    // `wake()` empties the set before it calls: listen again for the next change.
    this.stream.waiters.add(this.#onWake);
    this.schedule();
  };

  constructor(
    readonly stream: Stream,
    private readonly host: FeedHost,
  ) {
    this.base64 = !isTextual(stream.contentType);
    this.#window = host.coalesceMs;
    stream.waiters.add(this.#onWake);
  }

  /**
   * Flushes once this turn of the event loop is over, however many times it is asked — but
   * not before `#readyAt`: at least the feed's window after the last flush began, and a flush
   * that took d ms of the event loop is followed by at least d ms for everything else, so
   * fan-out never takes more than half of the loop from the writers.
   *
   * The window is `coalesceMs` while each flush carries one commit or two. Under a flood (a
   * flush carrying four or more) it doubles at each flush, up to `coalesceMaxMs`: a write to a
   * socket costs about the same whatever its size (on loopback, the reader's side of TCP runs in
   * the writer's system call), so each reader then gets fewer, larger writes, and the
   * writers keep the CPU. A flush that carries at most one commit sets it back: an append after a
   * quiet spell goes out at once, and a steady trickle is not delayed.
   */
  schedule(): void {
    if (this.#scheduled || this.#released) return;
    this.#scheduled = true;
    const wait = this.#readyAt - this.host.clock.now();
    if (wait <= 0) setImmediate(this.#flushNow);
    else this.#timer = this.host.clock.setTimeout(this.#flushNow, wait);
  }

  #readyAt = Number.NEGATIVE_INFINITY;
  #timer: TimerHandle | undefined;
  readonly #flushNow = () => {
    this.#timer = undefined;
    const t = this.host.clock.now();
    const wakes = this.#wakes;
    this.#wakes = 0;
    const { coalesceMs, coalesceMaxMs } = this.host;
    if (wakes >= FLOOD) this.#window = Math.min(coalesceMaxMs, Math.max(1, this.#window * 2));
    else if (wakes <= 1) this.#window = coalesceMs;
    this.#readyAt = t + this.#window;
    this.#flush();
    this.#worked(t);
  };

  /** The least time between two flushes now, ms (for tests). */
  get window(): number {
    return this.#window;
  }

  /** Counts the event loop time spent since `t` against the next flush. */
  #worked(t: number): void {
    const now = this.host.clock.now();
    this.#readyAt = Math.max(this.#readyAt, now + (now - t));
  }

  /** Stops listening when no reader is left. */
  releaseIfIdle(): void {
    if (this.readers.size > 0 || this.polls.size > 0 || this.#released) return;
    this.#released = true;
    if (this.#timer !== undefined) this.host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.stream.waiters.delete(this.#onWake);
    this.host.release(this);
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#released) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    const s = this.stream;
    if (s.removed || this.host.closing) {
      for (const p of [...this.polls]) p.done(true);
      for (const r of [...this.readers]) this.host.end(this, r);
      return;
    }
    this.#answerPolls();
    const groups = this.#groups();
    if (groups.size === 0) return;
    this.#busy = true;
    this.#send(groups).then(
      () => this.#settled(),
      (error: unknown) => {
        this.host.onError(error);
        for (const rs of groups.values()) for (const r of rs) (r.res ?? r.socket)?.destroy();
        this.#settled();
      },
    );
  }

  #settled(): void {
    this.#busy = false;
    const tail = this.stream.visibleTail;
    let behind = this.#again;
    this.#again = false;
    for (const r of this.readers) if (!r.paused && r.position < tail) behind = true;
    if (behind) this.schedule();
    this.releaseIfIdle();
  }

  #answerPolls(): void {
    if (this.polls.size === 0) return;
    const s = this.stream;
    for (const p of [...this.polls])
      if (s.visibleTail > p.tail || s.visibleClosed !== p.closed || s.softDeleted) p.done(true);
  }

  /** Readers with something to get, by position: each group gets one frame. */
  #groups(): Map<number, SseReader[]> {
    const s = this.stream;
    const groups = new Map<number, SseReader[]>();
    for (const r of this.readers) {
      if (r.paused) continue;
      if (r.position < s.visibleTail || r.first || s.visibleClosed) {
        const g = groups.get(r.position);
        if (g) g.push(r);
        else groups.set(r.position, [r]);
      }
    }
    return groups;
  }

  async #send(groups: Map<number, SseReader[]>): Promise<void> {
    for (const [position, readers] of groups) {
      const f = this.#frame(position, readers);
      if (!(f instanceof Promise)) {
        this.#deliver(f, readers);
        continue;
      }
      const frame = await f;
      const t = this.host.clock.now();
      this.#deliver(frame, readers);
      this.#worked(t);
    }
  }

  #deliver(frame: Frame, readers: SseReader[]): void {
    const limit = this.host.bufferBytes;
    for (const r of readers) {
      if (!this.readers.has(r)) continue; // left while the frame was being read
      r.position = frame.end;
      r.first = false;
      if (frame.cursor !== undefined) r.cursor = frame.cursor;
      const socket = r.socket;
      if (socket) {
        socket.write(frame.chunked);
        if (frame.closed) this.host.end(this, r);
        else if (socket.writableLength > limit && socket.writableNeedDrain) this.#pause(r);
      } else if (r.res) {
        r.res.write(frame.plain);
        if (frame.closed) this.host.end(this, r);
        else if (r.res.writableLength > limit && r.res.writableNeedDrain) this.#pause(r);
      }
    }
  }

  #pause(r: SseReader): void {
    r.paused = true;
    (r.socket ?? r.res)?.once('drain', () => {
      r.paused = false;
      if (this.readers.has(r)) this.schedule();
    });
  }

  /** One frame from `position`: up to `maxChunkBytes` of data, and the control event. */
  #frame(position: number, readers: SseReader[]): Frame | Promise<Frame> {
    const { engine, maxChunkBytes } = this.host;
    const plan = engine.plan(this.stream, position, maxChunkBytes);
    if (plan.parts.length === 0) return this.#encode(position, undefined, readers);
    const bufs = engine.read(plan.parts);
    if (bufs instanceof Promise) return bufs.then((b) => this.#encode(plan.end, b, readers));
    return this.#encode(plan.end, bufs, readers);
  }

  #encode(end: number, bufs: Buffer[] | undefined, readers: SseReader[]): Frame {
    const s = this.stream;
    let text = '';
    if (bufs) {
      const payload = s.json
        ? `[${bufs.map((b) => b.toString('utf8')).join(',')}]`
        : (bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs)).toString(
            this.base64 ? 'base64' : 'utf8',
          );
      text = `event: data\n${dataLines(payload)}\n`;
    }
    const upToDate = end >= s.visibleTail;
    const closed = s.visibleClosed && upToDate;
    const control: Record<string, unknown> = { streamNextOffset: formatOffset(end) };
    let cursor: string | undefined;
    if (!closed) {
      cursor = this.host.cursor(highestCursor(readers));
      control.streamCursor = cursor;
    }
    if (upToDate) control.upToDate = true;
    if (closed) control.streamClosed = true;
    text += `event: control\ndata:${JSON.stringify(control)}\n\n`;
    return new Frame(text, end, closed, cursor);
  }
}
