/**
 * The stream set and every change to it, without I/O. A change is applied twice: at once to
 * the state appends are checked against (so a group commit can take the next append of the
 * same stream before the previous one is on disk), and again when its batch is durable, to
 * what readers see. Recovery applies records both ways at once.
 */
import {
  type AppendRecord,
  type CopyRecord,
  type CreateRecord,
  type DeleteRecord,
  type LogRecord,
  type Payload,
  T_APPEND,
  T_COPY,
  T_CREATE,
  T_DELETE,
} from './codec.js';
import { type Fork, type Meter, Stream, type StreamConfig } from './stream.js';

export interface CreateSpec {
  key: string;
  config: StreamConfig;
  closed: boolean;
  fork: { source: Stream; position: number; offset: number; subOffset: number } | undefined;
  payload: Payload;
}

export interface AppendSpec {
  payload: Payload;
  close: boolean;
  producer: { id: string; epoch: number; seq: number } | undefined;
  streamSeq: string | undefined;
}

/** Data of a stream is referenced through its index only: a stream with none has no address. */
const hasData = (r: LogRecord): r is CreateRecord | AppendRecord | CopyRecord =>
  r.t !== T_DELETE && r.payload.count > 0;

export class StreamTable {
  readonly streams = new Map<string, Stream>();
  readonly byId = new Map<number, Stream>();
  nextId = 1;
  /** Bytes held by every stream's index. */
  readonly meter: Meter = { bytes: 0 };

  constructor(
    /** A stream was deleted for good (its data may go). */
    private readonly onDropped: (s: Stream) => void,
    /** Wall clock (ms), for the sliding TTL of recovered streams. */
    private readonly now: () => number,
  ) {}

  // ---- the checked state: applied when a request is accepted

  create(
    spec: CreateSpec,
    now: number,
    id = this.nextId,
  ): { stream: Stream; record: CreateRecord } {
    this.nextId = Math.max(this.nextId, id + 1);
    const fork: Fork | undefined = spec.fork && { ...spec.fork };
    const stream = new Stream(id, spec.key, spec.config, fork, now, this.meter);
    if (fork) fork.source.refs++;
    stream.closed = spec.closed;
    stream.tail += spec.payload.count;
    stream.bytes += spec.payload.bytes;
    this.streams.set(spec.key, stream);
    this.byId.set(id, stream);
    const record: CreateRecord = {
      t: T_CREATE,
      id,
      key: spec.key,
      contentType: spec.config.contentType,
      closed: spec.closed,
      ttlSeconds: spec.config.ttlSeconds,
      expiresAt: spec.config.expiresAt,
      expiresAtText: spec.config.expiresAtText,
      fork: fork && {
        source: fork.source.id,
        position: fork.position,
        offset: fork.offset,
        subOffset: fork.subOffset,
      },
      payload: spec.payload,
    };
    return { stream, record };
  }

  append(stream: Stream, spec: AppendSpec): AppendRecord {
    const record: AppendRecord = {
      t: T_APPEND,
      id: stream.id,
      start: stream.tail,
      close: spec.close,
      producer: spec.producer,
      streamSeq: spec.streamSeq,
      payload: spec.payload,
    };
    stream.tail += spec.payload.count;
    stream.bytes += spec.payload.bytes;
    if (spec.producer) {
      const { id, epoch, seq } = spec.producer;
      const state = stream.producers.get(id);
      if (state) {
        state.epoch = epoch;
        state.lastSeq = seq;
      } else stream.producers.set(id, { epoch, lastSeq: seq });
    }
    if (spec.streamSeq !== undefined) stream.lastStreamSeq = spec.streamSeq;
    if (spec.close) {
      stream.closed = true;
      stream.closedBy = spec.producer;
    }
    return record;
  }

  /** Deletes a stream: softly while forks read it, else for good (and sources left unread). */
  delete(stream: Stream): DeleteRecord {
    if (stream.refs > 0) {
      stream.softDeleted = true;
      stream.wake();
      return { t: T_DELETE, id: stream.id };
    }
    this.#remove(stream);
    let source = stream.fork?.source;
    while (source) {
      source.refs--;
      if (!source.softDeleted || source.refs > 0) break;
      this.#remove(source);
      source = source.fork?.source;
    }
    return { t: T_DELETE, id: stream.id };
  }

  #remove(s: Stream): void {
    if (s.removed) return;
    s.removed = true;
    if (this.streams.get(s.key) === s) this.streams.delete(s.key);
    this.byId.delete(s.id);
    s.index.release();
    this.onDropped(s);
    s.wake();
  }

  // ---- the visible state: applied when the record is durable

  /** Makes a durable record visible; `addr` is where its data went (NaN without data). */
  commit(record: LogRecord, stream: Stream, addr: number): void {
    switch (record.t) {
      case T_CREATE: {
        const start = stream.fork ? stream.fork.position : 0;
        if (record.payload.count > 0) stream.index.push(start, addr, record.payload.bytes);
        stream.created = true;
        stream.visibleTail = start + record.payload.count;
        stream.visibleClosed = record.closed;
        break;
      }
      case T_APPEND:
        if (record.payload.count > 0) stream.index.push(record.start, addr, record.payload.bytes);
        stream.visibleTail = record.start + record.payload.count;
        if (record.close) stream.visibleClosed = true;
        break;
      case T_COPY:
        if (!stream.removed) stream.index.set(record.start, addr, record.payload.bytes);
        return;
      case T_DELETE:
        return;
    }
    stream.wake();
  }

  // ---- recovery: a record from the log, applied both ways (idempotent over a snapshot)

  replay(record: LogRecord, addr: number): void {
    if (record.t === T_CREATE) {
      if (this.byId.has(record.id)) return;
      const source = record.fork ? this.byId.get(record.fork.source) : undefined;
      if (record.fork && !source)
        throw new RangeError(`fork of unknown stream ${record.fork.source}`);
      const { stream } = this.create(
        {
          key: record.key,
          config: {
            contentType: record.contentType,
            ttlSeconds: record.ttlSeconds,
            expiresAt: record.expiresAt,
            expiresAtText: record.expiresAtText,
          },
          closed: record.closed,
          fork: source && record.fork && { ...record.fork, source },
          payload: record.payload,
        },
        this.now(),
        record.id,
      );
      this.commit(record, stream, hasData(record) ? addr : Number.NaN);
      return;
    }
    const stream = this.byId.get(record.id);
    if (!stream) return;
    if (record.t === T_APPEND) {
      if (record.start < stream.tail) return; // in the snapshot already
      if (record.start > stream.tail)
        throw new RangeError(`append at ${record.start} past the tail ${stream.tail}`);
      this.append(stream, record);
      this.commit(record, stream, hasData(record) ? addr : Number.NaN);
    } else if (record.t === T_DELETE) this.delete(stream);
    else this.commit(record, stream, addr);
  }
}
