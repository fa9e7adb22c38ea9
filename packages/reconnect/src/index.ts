/**
 * @towerline/reconnect — the engine every long-lived thing in towerline shares: a connection
 * state machine with backoff and events (`Reconnector`), a `Service` over it that queues,
 * retries idempotent requests and never loses one silently (`ReconnectLayer`), and the same
 * machine for stream builders (`superviseStream`).
 *
 * @packageDocumentation
 */
export { type HeartbeatOptions, heartbeat, type Watch, watchAll } from './heartbeat.js';
export {
  type ConnectContext,
  defaultReconnectPolicy,
  isSocketError,
  Reconnector,
  type ReconnectorEvents,
  type ReconnectorOptions,
  type ReconnectorStats,
} from './reconnector.js';
export {
  defaultSizeOf,
  ReconnectLayer,
  ReconnectService,
  type ReconnectServiceEvents,
  type ReconnectServiceOptions,
  type ReconnectServiceStats,
  type RejectionReason,
} from './service.js';
export {
  type ConnectionState,
  canTransition,
  IllegalTransitionError,
  TRANSITIONS,
} from './state.js';
export {
  type StreamBuilder,
  SupervisedStream,
  type SuperviseStreamOptions,
  superviseStream,
} from './stream.js';
