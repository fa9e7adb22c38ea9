import { POLICY_SOURCES } from './policy-sources.js';
import type { InstrumentSpec, SourceSpec } from './spec.js';

const counter = (name: string, unit: string, description: string): InstrumentSpec => ({
  kind: 'counter',
  name,
  unit,
  description,
});
const histogram = (name: string, description: string): InstrumentSpec => ({
  kind: 'histogram',
  name,
  unit: 's',
  description,
});
const gauge = (name: string, description: string): InstrumentSpec => ({
  kind: 'gauge',
  name,
  unit: '1',
  description,
});
const stateOf = (target: object) => {
  const state = (target as { state?: unknown }).state;
  return typeof state === 'string' ? state : undefined;
};

/** `Reconnector`, `ReconnectService` and `SupervisedStream` (channel `towerline:reconnect`). */
export const reconnectSource: SourceSpec = {
  component: 'reconnect',
  instruments: {
    attempts: counter('towerline.reconnect.attempts', '{attempt}', 'Connect attempts started'),
    failures: counter(
      'towerline.reconnect.connect_failures',
      '{attempt}',
      'Connect attempts that failed',
    ),
    connections: counter(
      'towerline.reconnect.connections',
      '{connection}',
      'Connections established, the first included',
    ),
    reconnects: counter(
      'towerline.reconnect.reconnects',
      '{reconnect}',
      'Connections re-established after a loss or a failed start',
    ),
    disconnects: counter(
      'towerline.reconnect.disconnects',
      '{disconnect}',
      'Live connections lost',
    ),
    giveUps: counter(
      'towerline.reconnect.give_ups',
      '{reconnector}',
      'Reconnectors that used up maxAttempts',
    ),
    rejections: counter(
      'towerline.reconnect.rejections',
      '{request}',
      'Requests refused: queue full, queue timeout, or lost in flight',
    ),
    resends: counter(
      'towerline.reconnect.resends',
      '{request}',
      'Idempotent requests resent on the next connection',
    ),
    downtime: histogram(
      'towerline.reconnect.downtime',
      'Time without a connection before it came back',
    ),
    delay: histogram(
      'towerline.reconnect.delay',
      'Backoff scheduled before the next connect attempt',
    ),
    duration: histogram(
      'towerline.reconnect.call.duration',
      'Duration of calls through a reconnect service, queueing included',
    ),
    state: gauge(
      'towerline.reconnect.state',
      '1 for the state a reconnector is in, 0 for the others',
    ),
  },
  events: {
    connecting: (_p, r) => r.add('attempts'),
    connectFailed: ({ error }, r) => r.add('failures', 1, { 'error.type': r.errorType(error) }),
    connected: ({ generation, downtimeMs }, r) => {
      r.add('connections');
      if (generation > 1 || downtimeMs > 0) {
        r.add('reconnects');
        r.record('downtime', downtimeMs / 1000);
      }
    },
    disconnected: ({ error }, r) => r.add('disconnects', 1, { 'error.type': r.errorType(error) }),
    reconnectScheduled: ({ delayMs, error }, r) =>
      r.record('delay', delayMs / 1000, { 'error.type': r.errorType(error) }),
    gaveUp: ({ error }, r) => r.add('giveUps', 1, { 'error.type': r.errorType(error) }),
    rejected: ({ reason }, r) => r.add('rejections', 1, { 'towerline.rejection.reason': reason }),
    retriedOnReconnect: (_p, r) => r.add('resends'),
  },
  state: {
    instrument: 'state',
    states: ['idle', 'connecting', 'connected', 'reconnecting', 'closed', 'failed'],
    initial: stateOf,
  },
  call: { channel: 'towerline:reconnect:call', instrument: 'duration' },
};

/** `RetryLayer` (channel `towerline:retry`). */
export const retrySource: SourceSpec = {
  component: 'retry',
  instruments: {
    retries: counter('towerline.retry.retries', '{retry}', 'Retries scheduled'),
    exhausted: counter(
      'towerline.retry.exhausted',
      '{call}',
      'Calls that failed after every attempt',
    ),
    budgetExhausted: counter(
      'towerline.retry.budget_exhausted',
      '{retry}',
      'Retries refused by the retry budget',
    ),
    delay: histogram('towerline.retry.delay', 'Wait before a retry'),
    duration: histogram(
      'towerline.retry.call.duration',
      'Duration of calls through a retry layer, every attempt and wait included',
    ),
  },
  events: {
    // No attempt number as an attribute: with maxAttempts: Infinity it is a series per attempt.
    retry: ({ delayMs, error }, r) => {
      const attributes = { 'error.type': r.errorType(error) };
      r.add('retries', 1, attributes);
      r.record('delay', delayMs / 1000, attributes);
    },
    exhausted: ({ error }, r) => r.add('exhausted', 1, { 'error.type': r.errorType(error) }),
    budgetExhausted: ({ error }, r) =>
      r.add('budgetExhausted', 1, { 'error.type': r.errorType(error) }),
  },
  call: { channel: 'towerline:retry:call', instrument: 'duration' },
};

/** `ConfigProvider` and the TLS config providers built on it (channel `towerline:config`). */
export const configSource: SourceSpec = {
  component: 'config',
  instruments: {
    updates: counter('towerline.config.updates', '{update}', 'Configuration values accepted'),
    rejections: counter(
      'towerline.config.rejections',
      '{update}',
      'Configuration values refused by validation',
    ),
    staticChanges: counter(
      'towerline.config.static_changes',
      '{update}',
      'Changes to static keys, ignored until restart',
    ),
    sourceFailures: counter(
      'towerline.config.source_failures',
      '{failure}',
      'Times the source failed and was rebuilt',
    ),
  },
  events: {
    updated: (_p, r) => r.add('updates'),
    rejected: ({ error }, r) => r.add('rejections', 1, { 'error.type': r.errorType(error) }),
    staticChange: (_p, r) => r.add('staticChanges'),
    unhealthy: ({ error }, r) => r.add('sourceFailures', 1, { 'error.type': r.errorType(error) }),
  },
};

/** `ServerTlsProvider` (channel `towerline:tls`); a `ClientTlsProvider` reports through its config. */
export const tlsSource: SourceSpec = {
  component: 'tls',
  instruments: {
    rotations: counter('towerline.tls.rotations', '{rotation}', 'Certificate sets put in force'),
    rejections: counter(
      'towerline.tls.rejections',
      '{update}',
      'Certificate sets refused; the old ones stay',
    ),
  },
  events: {
    rotated: (_p, r) => r.add('rotations'),
    rejected: ({ error }, r) => r.add('rejections', 1, { 'error.type': r.errorType(error) }),
  },
};

/** `GrpcConnectivity` (channel `towerline:grpc`). */
export const grpcSource: SourceSpec = {
  component: 'grpc',
  instruments: {
    transitions: counter(
      'towerline.grpc.state_changes',
      '{transition}',
      'Channel connectivity state changes',
    ),
    connections: counter(
      'towerline.grpc.connections',
      '{connection}',
      'Times the channel became READY',
    ),
    disconnects: counter(
      'towerline.grpc.disconnects',
      '{disconnect}',
      'Times the channel left READY',
    ),
    downtime: histogram(
      'towerline.grpc.downtime',
      'Time the channel was not READY before it was again',
    ),
    state: gauge(
      'towerline.grpc.state',
      '1 for the connectivity state a channel is in, 0 for the others',
    ),
  },
  events: {
    stateChange: ({ to }, r) => r.add('transitions', 1, { 'rpc.grpc.connectivity_state': to }),
    connected: ({ downtimeMs }, r) => {
      r.add('connections');
      if (downtimeMs > 0) r.record('downtime', downtimeMs / 1000);
    },
    disconnected: ({ to }, r) => r.add('disconnects', 1, { 'rpc.grpc.connectivity_state': to }),
  },
  state: {
    instrument: 'state',
    states: ['IDLE', 'CONNECTING', 'READY', 'TRANSIENT_FAILURE', 'SHUTDOWN'],
    initial: stateOf,
  },
};

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

/** The Durable Streams `StreamHandler` and server (channel `towerline:durable-streams`). */
export const durableStreamsSource: SourceSpec = {
  component: 'durable-streams',
  instruments: {
    // The HTTP semantic conventions' own histogram and attributes.
    requests: histogram(
      'http.server.request.duration',
      'Duration of Durable Streams protocol requests',
    ),
    shed: counter(
      'towerline.durable_streams.shed',
      '{request}',
      'Requests refused under overload (503 with Retry-After)',
    ),
    errors: counter(
      'towerline.durable_streams.errors',
      '{error}',
      'Internal and storage errors answered 500/503',
    ),
  },
  events: {
    request: ({ method, status, durationMs, completed }, r) =>
      r.record('requests', durationMs / 1000, {
        // An unknown method is `_OTHER`, as the conventions say: a client cannot mint series.
        'http.request.method': METHODS.has(method) ? method : '_OTHER',
        'http.response.status_code': status,
        ...(completed ? {} : { 'error.type': 'aborted' }),
      }),
    shed: ({ reason, status }, r) =>
      r.add('shed', 1, { 'towerline.shed.reason': reason, 'http.response.status_code': status }),
    failed: ({ errorType }, r) => r.add('errors', 1, { 'error.type': errorType }),
  },
};

/**
 * Every source `instrument()` accepts. A new towerline emitter is one more entry (or pass it
 * as `sources` to `instrument()`).
 */
export const SOURCES: readonly SourceSpec[] = [
  reconnectSource,
  retrySource,
  configSource,
  tlsSource,
  grpcSource,
  durableStreamsSource,
  ...POLICY_SOURCES,
];
