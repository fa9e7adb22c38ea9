import { TypedEmitter } from '@towerline/core';

/** Why the server shed a request under overload (each answered 503 with `Retry-After`). */
export type ShedReason = 'event_loop_lag' | 'memory' | 'live_connections';

/** The Durable Streams handler's events, published on `towerline:durable-streams:<event>`. */
export type StreamServerEvents = {
  /** A protocol request was answered (or its connection closed first: `completed: false`). */
  request: { method: string; status: number; durationMs: number; completed: boolean };
  /** A request was refused under overload. */
  shed: { reason: ShedReason; status: number };
  /** An internal or storage error answered 500/503; `errorType` is its code or name. */
  failed: { errorType: string };
};

export const streamServerEvents = () =>
  new TypedEmitter<StreamServerEvents>({
    channel: 'towerline:durable-streams',
    source: 'durable-streams',
  });
