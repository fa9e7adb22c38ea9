/** The states of a {@link Reconnector}; a closed set. */
export type ConnectionState =
  | 'idle'
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'closed'
  | 'failed';

/**
 * Every legal transition, in one table. Anything not listed is a bug in the machine and throws.
 *
 * - `idle → connecting`: first `acquire()` or `start()`.
 * - `connecting → connected | reconnecting | failed`: the attempt succeeded, failed with
 *   attempts left (a backoff is scheduled), or failed with none left.
 * - `connected → reconnecting | failed`: the connection was lost; `failed` when it had not yet
 *   proved healthy and it came from the last allowed attempt.
 * - `reconnecting → connecting`: the backoff elapsed.
 * - any live state `→ closed`: `close()`. `failed → closed` too, so `close()` is always safe.
 */
export const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['connected', 'reconnecting', 'failed', 'closed'],
  connected: ['reconnecting', 'failed', 'closed'],
  reconnecting: ['connecting', 'closed'],
  failed: ['closed'],
  closed: [],
};

/** True when `from → to` is in {@link TRANSITIONS}. */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  // Not a state (a typo, a value from elsewhere): no transition from or to it.
  return Object.hasOwn(TRANSITIONS, from) && TRANSITIONS[from].includes(to);
}

/** Thrown on a transition the table does not allow: always a bug in towerline. */
export class IllegalTransitionError extends Error {
  override readonly name = 'IllegalTransitionError';
  constructor(
    readonly from: ConnectionState,
    readonly to: ConnectionState,
  ) {
    super(`illegal reconnector transition ${from} → ${to}`);
  }
}
