/**
 * @towerline/reconnect — the engine every long-lived thing in towerline shares: a connection
 * state machine with backoff and events (`Reconnector`, whose behaviour is the pure `step`
 * function), a `Service` over it that queues, resends idempotent requests within the request's
 * attempts and never loses one silently (`ReconnectLayer`), the `Connector` spec with its one
 * factory `fromConnector`, and the same machine for stream builders (`superviseStream`).
 *
 * @packageDocumentation
 */
export {
  type ConnectionOptions,
  type Connector,
  connectionOptionKeys,
  fromConnector,
  pickConnectionOptions,
} from './connector.js';
export { type HeartbeatOptions, heartbeat, type Watch, watchAll } from './heartbeat.js';
export {
  closedError,
  type Effect,
  initialState,
  type MachineEnv,
  type MachineEvent,
  type MachineState,
  type Notice,
  type Step,
  step,
} from './machine.js';
export { Reconnector } from './reconnector.js';
export {
  type ConnectContext,
  defaultReconnectPolicy,
  type ReconnectorEvents,
  type ReconnectorOptions,
  type ReconnectorStats,
} from './reconnector-options.js';
export {
  defaultSizeOf,
  ReconnectLayer,
  ReconnectService,
  type ReconnectServiceEvents,
  type ReconnectServiceOptions,
  type ReconnectServiceStats,
  type RejectionReason,
} from './service.js';
export { isSocketError } from './socket-errors.js';
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
