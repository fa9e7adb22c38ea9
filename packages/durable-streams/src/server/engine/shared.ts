/**
 * What the engine asks of a store that several server processes share (postgres mode): the
 * local stream objects are a cache of the database, refreshed before a request is served, and
 * every change is decided against the database's state under its lock, so two instances never
 * take the same offset or the same producer sequence number.
 */
import type { Stream } from './stream.js';
import type { AppendSpec, CreateSpec } from './table.js';

/** A protocol decision: a change for the engine, or an answer without one. */
export type Decision = { kind: string; spec?: unknown };

/** A decision that appends, and where the stream's tail ended after it. */
export type Decided<D> = { decision: D; tail: number };

/** `gone`: the stream was deleted (by another instance) before the change could be decided. */
export type SharedDone<D> = (error: Error | null, result?: Decided<D> | 'gone') => void;

export interface SharedStore {
  /** Brings the local copy of the stream at `key` (and the streams it forks) up to date. */
  sync(key: string): Promise<void>;
  /**
   * Decides an append under the stream row's lock (`decide` sees the database's state) and,
   * when the decision is `{ kind: 'append', spec }`, writes it in the same transaction.
   */
  append<D extends Decision>(stream: Stream, decide: () => D, done: SharedDone<D>): void;
  /** Decides a create under the key's lock (and the fork source's), then writes it. */
  create<D extends Decision>(
    key: string,
    sourceKey: string | undefined,
    decide: () => D,
    done: SharedDone<D>,
  ): void;
  /** Deletes a stream (softly while forks read it); `ifExpired`: only if it still is. */
  delete(stream: Stream, ifExpired: boolean, done: (error: Error | null) => void): void;
  /** Deletes the expired streams of the whole database, not only the ones this process holds. */
  sweep(): Promise<number>;
}

export const specOf = {
  append: (d: Decision): AppendSpec | undefined =>
    d.kind === 'append' ? (d.spec as AppendSpec) : undefined,
  create: (d: Decision): CreateSpec | undefined =>
    d.kind === 'create' ? (d.spec as CreateSpec) : undefined,
};
