/**
 * The protocol's rules for creates and appends, as pure functions: given the stream as it
 * stands (including changes not yet durable) and the request, either a change for the engine
 * with the reply it earns, a reply without a change (an idempotent retry), or a problem.
 */
import type { Payload } from '../engine/codec.js';
import { mediaType, type Stream, type StreamConfig } from '../engine/stream.js';
import type { AppendSpec, CreateSpec } from '../engine/table.js';
import { jsonPayload } from './json.js';
import { parseOffset, parseUint } from './offsets.js';
import { type HeaderList, isProblem, type Problem, problem } from './problem.js';
import { streamHeaders, tailHeaders } from './replies.js';
import type { AppendRequest, CreateRequest } from './requests.js';

const EMPTY: Payload = { chunks: [], bytes: 0, count: 0, table: undefined };

export interface Limits {
  /** Largest stream, bytes (413 beyond). */
  maxStreamBytes: number | undefined;
}

/** A reply: status and headers (the transport adds CORS). */
export interface Reply {
  readonly kind: 'reply';
  status: number;
  headers: HeaderList;
}

const reply = (status: number, headers: HeaderList): Reply => ({ kind: 'reply', status, headers });
/** Shared by every plain append: never mutated (replies concatenate, they do not push). */
const NO_HEADERS: HeaderList = Object.freeze([]) as unknown as HeaderList;
const PLAIN_204 = Object.freeze(reply(204, NO_HEADERS)) as Reply;

/** The body as stored data: one unit per byte, or the messages of a JSON body. */
export function payloadOf(json: boolean, body: Buffer, creating: boolean): Payload | Problem {
  if (body.length === 0) return EMPTY;
  if (json) return jsonPayload(body, creating);
  return { chunks: [body], bytes: body.length, count: body.length, table: undefined };
}

export type AppendDecision = Problem | Reply | { kind: 'append'; spec: AppendSpec; reply: Reply };

export function decideAppend(
  stream: Stream,
  a: AppendRequest,
  body: Buffer,
  limits: Limits,
): AppendDecision {
  const { producer } = a;
  if (stream.closed) {
    const by = stream.closedBy;
    const byCloser =
      producer !== undefined &&
      by !== undefined &&
      by.id === producer.id &&
      by.epoch === producer.epoch &&
      by.seq === producer.seq;
    if ((a.closing && body.length === 0) || byCloser) {
      const h = tailHeaders(stream.tail, true);
      if (producer)
        h.push('producer-epoch', String(producer.epoch), 'producer-seq', String(producer.seq));
      return reply(204, h);
    }
    return problem(409, 'the stream is closed', tailHeaders(stream.tail, true));
  }
  if (body.length === 0 && !a.closing) return problem(400, 'empty body');
  if (body.length > 0) {
    if (!a.contentType) return problem(400, 'Content-Type is required');
    if (
      a.contentType !== stream.contentType &&
      mediaType(a.contentType) !== mediaType(stream.contentType)
    )
      return problem(409, 'content type mismatch');
  }
  const payload = payloadOf(stream.json, body, false);
  if (isProblem(payload)) return payload;
  let extra: HeaderList = NO_HEADERS;
  if (producer) {
    const state = stream.producers.get(producer.id);
    if (state && producer.epoch < state.epoch)
      return problem(403, 'stale producer epoch', ['producer-epoch', String(state.epoch)]);
    if (!state || producer.epoch > state.epoch) {
      if (producer.seq !== 0) return problem(400, 'a new producer epoch starts at Producer-Seq 0');
    } else if (producer.seq <= state.lastSeq) {
      // A retry of an append already applied: answered like the first, changing nothing.
      const h = tailHeaders(stream.tail, stream.closed);
      h.push('producer-epoch', String(producer.epoch), 'producer-seq', String(state.lastSeq));
      return reply(204, h);
    } else if (producer.seq > state.lastSeq + 1) {
      return problem(409, 'producer sequence gap', [
        'producer-expected-seq',
        String(state.lastSeq + 1),
        'producer-received-seq',
        String(producer.seq),
      ]);
    }
    extra = ['producer-epoch', String(producer.epoch), 'producer-seq', String(producer.seq)];
  }
  const last = stream.lastStreamSeq;
  if (a.streamSeq !== undefined && last !== undefined && a.streamSeq <= last)
    return problem(409, 'Stream-Seq regression');
  if (limits.maxStreamBytes !== undefined && stream.bytes + payload.bytes > limits.maxStreamBytes)
    return problem(413, 'the stream would exceed its size limit');
  const spec: AppendSpec = { payload, close: a.closing, producer, streamSeq: a.streamSeq };
  const ok =
    producer && payload.count > 0
      ? reply(200, extra)
      : extra === NO_HEADERS
        ? PLAIN_204
        : reply(204, extra);
  return { kind: 'append', spec, reply: ok };
}

/** Where the reads of a fork come from. */
export interface ForkSources {
  /** The live stream at `key` (after expiry), if any. */
  live(key: string): Stream | undefined;
  /** The end of the append containing a position of `stream`. */
  nextBoundary(stream: Stream, position: number): number;
}

export type CreateDecision = Problem | Reply | { kind: 'create'; spec: CreateSpec };

export function decideCreate(
  key: string,
  c: CreateRequest,
  body: Buffer,
  basePath: string,
  sources: ForkSources,
  limits: Limits,
): CreateDecision {
  let contentType = c.contentType || 'application/octet-stream';
  let { ttlSeconds, expiresAt, expiresAtText } = c;
  let fork: CreateSpec['fork'];
  if (c.fork) {
    const resolved = resolveFork(c.fork, basePath, sources);
    if (resolved.kind === 'problem') return resolved;
    fork = resolved.fork;
    if (c.contentType && mediaType(c.contentType) !== mediaType(fork.source.contentType))
      return problem(409, 'a fork has its source content type');
    contentType = fork.source.contentType;
    if (ttlSeconds === undefined && expiresAt === undefined) {
      ttlSeconds = fork.source.config.ttlSeconds;
      expiresAt = fork.source.config.expiresAt;
      expiresAtText = fork.source.config.expiresAtText;
    }
  }
  const existing = sources.live(key);
  if (existing) {
    const same =
      !existing.softDeleted &&
      mediaType(existing.contentType) === mediaType(contentType) &&
      existing.config.ttlSeconds === ttlSeconds &&
      existing.config.expiresAt === expiresAt &&
      existing.closed === c.closed &&
      existing.fork?.source === fork?.source &&
      (fork === undefined ||
        (existing.fork?.offset === fork.offset && existing.fork.subOffset === fork.subOffset));
    if (!same) return problem(409, 'a stream with another configuration exists here');
    return reply(200, streamHeaders(existing));
  }
  const config: StreamConfig = { contentType, ttlSeconds, expiresAt, expiresAtText };
  const payload = payloadOf(mediaType(contentType) === 'application/json', body, true);
  if (isProblem(payload)) return payload;
  if (limits.maxStreamBytes !== undefined && payload.bytes > limits.maxStreamBytes)
    return problem(413, 'the stream would exceed its size limit');
  return { kind: 'create', spec: { key, config, closed: c.closed, fork, payload } };
}

/** The stream key a `Stream-Forked-From` value names. */
export function forkSourceKey(from: string, basePath: string): string {
  const path = from.split('?')[0]!;
  return path.startsWith(`${basePath}/`) ? path.slice(basePath.length) : path;
}

function resolveFork(
  f: NonNullable<CreateRequest['fork']>,
  basePath: string,
  sources: ForkSources,
): Problem | { kind: 'fork'; fork: NonNullable<CreateSpec['fork']> } {
  const key = forkSourceKey(f.from, basePath);
  let offset: number | undefined;
  if (f.offsetText !== undefined) {
    const parsed = parseOffset(f.offsetText);
    if (parsed === undefined || parsed === 'now' || f.offsetText === '-1')
      return problem(400, 'invalid Stream-Fork-Offset');
    offset = parsed;
  }
  const sub = f.subText === undefined ? 0 : parseUint(f.subText);
  if (sub === undefined) return problem(400, 'invalid Stream-Fork-Sub-Offset');
  const source = sources.live(key);
  if (!source) return problem(404, 'the fork source does not exist');
  if (source.softDeleted) return problem(409, 'the fork source was deleted');
  const anchor = offset ?? source.tail;
  if (anchor > source.tail) return problem(400, 'the fork offset is beyond the end of the source');
  if (sub > 0 && anchor + sub > sources.nextBoundary(source, anchor))
    return problem(400, 'the fork sub-offset leaves the append it starts in');
  return { kind: 'fork', fork: { source, position: anchor + sub, offset: anchor, subOffset: sub } };
}
