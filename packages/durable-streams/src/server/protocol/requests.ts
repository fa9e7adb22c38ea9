/**
 * What a request asks for, read from its headers and query alone: checked before its body is
 * read, so a request that can never succeed is refused without buffering what it sends.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseOffset, parseUint } from './offsets.js';
import { type Problem, problem } from './problem.js';

export const header = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};
const flag = (h: IncomingHttpHeaders, name: string) => header(h, name)?.toLowerCase() === 'true';

export interface Producer {
  id: string;
  epoch: number;
  seq: number;
}

export interface AppendRequest {
  closing: boolean;
  producer: Producer | undefined;
  contentType: string | undefined;
  streamSeq: string | undefined;
}

export function parseAppend(h: IncomingHttpHeaders): AppendRequest | Problem {
  const id = header(h, 'producer-id');
  const epochText = header(h, 'producer-epoch');
  const seqText = header(h, 'producer-seq');
  const some = +(id !== undefined) + +(epochText !== undefined) + +(seqText !== undefined);
  if (some !== 0 && some !== 3)
    return problem(400, 'Producer-Id, Producer-Epoch and Producer-Seq go together');
  let producer: Producer | undefined;
  if (some === 3) {
    const epoch = parseUint(epochText!);
    const seq = parseUint(seqText!);
    if (!id || epoch === undefined || seq === undefined)
      return problem(400, 'invalid producer headers');
    producer = { id, epoch, seq };
  }
  return {
    closing: flag(h, 'stream-closed'),
    producer,
    contentType: header(h, 'content-type'),
    streamSeq: header(h, 'stream-seq'),
  };
}

export interface CreateRequest {
  /** The content type asked for (trimmed), if any. */
  contentType: string | undefined;
  ttlSeconds: number | undefined;
  expiresAt: number | undefined;
  expiresAtText: string | undefined;
  closed: boolean;
  fork: { from: string; offsetText: string | undefined; subText: string | undefined } | undefined;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T/;

export function parseCreate(h: IncomingHttpHeaders): CreateRequest | Problem {
  const from = header(h, 'stream-forked-from');
  const offsetText = header(h, 'stream-fork-offset');
  const subText = header(h, 'stream-fork-sub-offset');
  if (from === undefined && (offsetText !== undefined || subText !== undefined))
    return problem(400, 'fork headers need Stream-Forked-From');
  const ttlText = header(h, 'stream-ttl');
  const expiresText = header(h, 'stream-expires-at');
  if (ttlText !== undefined && expiresText !== undefined)
    return problem(400, 'Stream-TTL and Stream-Expires-At are exclusive');
  let ttlSeconds: number | undefined;
  if (ttlText !== undefined) {
    ttlSeconds = parseUint(ttlText);
    if (ttlSeconds === undefined) return problem(400, 'invalid Stream-TTL');
  }
  let expiresAt: number | undefined;
  if (expiresText !== undefined) {
    expiresAt = Date.parse(expiresText);
    if (!ISO_DATE.test(expiresText) || Number.isNaN(expiresAt))
      return problem(400, 'invalid Stream-Expires-At');
  }
  return {
    contentType: header(h, 'content-type')?.trim() || undefined,
    ttlSeconds,
    expiresAt,
    expiresAtText: expiresText,
    closed: flag(h, 'stream-closed'),
    fork: from === undefined ? undefined : { from, offsetText, subText },
  };
}

export type LiveMode = 'long-poll' | 'sse';

export interface ReadRequest {
  offset: number | 'now';
  /** The offset was given (live reads need one). */
  explicit: boolean;
  live: LiveMode | undefined;
  cursor: string | null;
}

export function parseRead(search: string): ReadRequest | Problem {
  const query = new URLSearchParams(search);
  const offsets = query.getAll('offset');
  if (offsets.length > 1 || offsets[0] === '') return problem(400, 'invalid offset');
  const live = query.get('live');
  if (live !== null && live !== 'long-poll' && live !== 'sse')
    return problem(400, 'invalid live mode');
  if (live !== null && offsets.length === 0) return problem(400, 'live reads need an offset');
  const offset = parseOffset(offsets[0] ?? '-1');
  if (offset === undefined) return problem(400, 'invalid offset');
  return {
    offset,
    explicit: offsets.length === 1,
    live: live ?? undefined,
    cursor: query.get('cursor'),
  };
}
