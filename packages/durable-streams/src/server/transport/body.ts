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

export function readBody(
  req: IncomingMessage,
  limit: number,
  meter: BodyMeter,
  done: BodyDone,
): void {
  const declared = Number(req.headers['content-length']);
  const tooLarge = () => problem(413, `the request body is larger than ${limit} bytes`);
  if (declared > limit) {
    req.resume();
    done(tooLarge(), NONE);
    return;
  }
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  let settled = false;
  const finish = (error: Problem | null, body: Buffer) => {
    if (settled) return;
    settled = true;
    meter.bytes -= size;
    done(error, body);
  };
  req.on('data', (chunk: Buffer) => {
    if (settled) return;
    size += chunk.length;
    meter.bytes += chunk.length;
    if (size > limit) {
      req.removeAllListeners('data');
      req.resume();
      return finish(tooLarge(), NONE);
    }
    if (!first) first = chunk;
    else {
      chunks ??= [first];
      chunks.push(chunk);
    }
  });
  req.once('end', () => finish(null, chunks ? Buffer.concat(chunks, size) : (first ?? NONE)));
  req.once('error', () => finish(problem(400, 'the request body was cut off'), NONE));
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
