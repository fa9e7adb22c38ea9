/**
 * A small SSE client for the live-read tests, over node:http so that a test can stop reading
 * (`pause`) and go on (`resume`): collects `data` and `control` events and resolves `done`
 * once a control event reports `streamNextOffset` at (or past) a target.
 */
import { type ClientRequest, type IncomingMessage, request } from 'node:http';

export interface SseEvent {
  event: string;
  data: string;
}

export interface Control {
  streamNextOffset: string;
  streamCursor?: string;
  upToDate?: boolean;
  streamClosed?: boolean;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  headers: IncomingMessage['headers'] = {};
  #buf = '';
  #req: ClientRequest;
  #res: IncomingMessage | undefined;
  #target: string | undefined;
  #reached: (() => void) | undefined;
  /** Resolves once the response's headers are in. */
  readonly opened: Promise<void>;
  /** Resolves when the server ends the response. */
  readonly ended: Promise<void>;
  /** Called for every data event as it is parsed. */
  onData: ((data: string) => void) | undefined;

  constructor(url: string) {
    let open!: () => void;
    let end!: () => void;
    this.opened = new Promise((r) => {
      open = r;
    });
    this.ended = new Promise((r) => {
      end = r;
    });
    this.#req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      this.#res = res;
      this.headers = res.headers;
      res.setEncoding('utf8');
      res.on('data', (d: string) => this.#parse(d));
      res.on('end', end);
      res.on('close', end);
      open();
    });
    this.#req.on('error', () => end());
    this.#req.end();
  }

  #parse(chunk: string): void {
    this.#buf += chunk;
    for (let at = this.#buf.indexOf('\n\n'); at !== -1; at = this.#buf.indexOf('\n\n')) {
      const block = this.#buf.slice(0, at);
      this.#buf = this.#buf.slice(at + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5));
      }
      const e = { event, data: data.join('\n') };
      this.events.push(e);
      if (event === 'data') this.onData?.(e.data);
      if (event === 'control' && this.#target !== undefined) {
        const c = JSON.parse(e.data) as Control;
        if (c.streamNextOffset >= this.#target) this.#reached?.();
      }
    }
  }

  get controls(): Control[] {
    return this.events.filter((e) => e.event === 'control').map((e) => JSON.parse(e.data));
  }

  get data(): string[] {
    return this.events.filter((e) => e.event === 'data').map((e) => e.data);
  }

  /** Resolves once a control event says the reader is at `offset` (or the response ends). */
  until(offset: string): Promise<void> {
    const last = this.controls.at(-1);
    if (last && last.streamNextOffset >= offset) return Promise.resolve();
    this.#target = offset;
    return Promise.race([
      new Promise<void>((r) => {
        this.#reached = r;
      }),
      this.ended,
    ]);
  }

  pause(): void {
    this.#res?.pause();
  }

  resume(): void {
    this.#res?.resume();
  }

  close(): void {
    this.#req.destroy();
  }
}
