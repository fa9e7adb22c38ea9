/**
 * Request bodies: refused with 413 past the limit (by `Content-Length` before a byte is read,
 * or as the bytes arrive), counted while held so that overload control sees them, and handed
 * over without a copy — the engine copies them once, into its arena or write window.
 */
import type { IncomingMessage } from 'node:http';
import { type Problem, problem } from '../protocol/problem.js';

export type BodyDone = (error: Problem | null, body: Buffer) => void;

const NONE = Buffer.alloc(0);

/** Counts the bytes of request bodies being received and not yet handed to the engine. */
export class BodyMeter {
  bytes = 0;
}

const STATE = Symbol('body');

/** One request's body being read; the listeners are shared, the state hangs off the request. */
class Reading {
  size = 0;
  first: Buffer | undefined;
  chunks: Buffer[] | undefined;
  settled = false;
  constructor(
    readonly limit: number,
    readonly meter: BodyMeter,
    readonly done: BodyDone,
  ) {}

  finish(error: Problem | null, body: Buffer): void {
    if (this.settled) return;
    this.settled = true;
    this.meter.bytes -= this.size;
    this.done(error, body);
  }
}

type Req = IncomingMessage & { [STATE]?: Reading };

const tooLarge = (limit: number) => problem(413, `the request body is larger than ${limit} bytes`);

function onData(this: Req, chunk: Buffer): void {
  const r = this[STATE]!;
  if (r.settled) return;
  r.size += chunk.length;
  r.meter.bytes += chunk.length;
  if (r.size > r.limit) {
    this.removeListener('data', onData);
    this.resume();
    r.finish(tooLarge(r.limit), NONE);
    return;
  }
  if (!r.first) r.first = chunk;
  else {
    r.chunks ??= [r.first];
    r.chunks.push(chunk);
  }
}

function onEnd(this: Req): void {
  const r = this[STATE]!;
  r.finish(null, r.chunks ? Buffer.concat(r.chunks, r.size) : (r.first ?? NONE));
}

function onError(this: Req): void {
  this[STATE]!.finish(problem(400, 'the request body was cut off'), NONE);
}

export function readBody(
  req: IncomingMessage,
  limit: number,
  meter: BodyMeter,
  done: BodyDone,
): void {
  if (Number(req.headers['content-length']) > limit) {
    req.resume();
    done(tooLarge(limit), NONE);
    return;
  }
  (req as Req)[STATE] = new Reading(limit, meter, done);
  // `on`, not `once`: each fires at most once, and `once` costs a wrapper per request.
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
}

/** Discards a body that will not be used. */
export function drain(req: IncomingMessage, then: () => void): void {
  if (req.complete) {
    then();
    return;
  }
  req.on('data', () => {});
  req.once('end', then);
  req.once('error', then);
}
