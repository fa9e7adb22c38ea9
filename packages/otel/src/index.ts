/**
 * @towerline/otel — OpenTelemetry metrics for every towerline event source.
 *
 * `instrument(x, { meter })` subscribes to the events of a `Reconnector`, a `ReconnectService`,
 * a `SupervisedStream`, a `RetryLayer`, a `ConfigProvider`, a `ServerTlsProvider` or
 * `ClientTlsProvider`, a `GrpcConnectivity`, a Durable Streams `StreamHandler` or a layer of
 * `@towerline/policies` (timeout, breaker, concurrency, hedge, fallback, rate limit, load shed),
 * and records
 * counters (with OpenTelemetry units), histograms in seconds, a call-duration histogram per
 * layer and a state gauge, with bounded attribute values. Each source is one declarative
 * {@link SourceSpec} ({@link SOURCES}); a new one is one more entry.
 *
 * Every towerline event is also published on `node:diagnostics_channel` as
 * `towerline:<package>:<event>` by the emitter itself, and every call through a retry or
 * reconnect service on the `TracingChannel` `towerline:<layer>:call` (start / end / asyncStart
 * / asyncEnd / error), so an APM can open spans without OpenTelemetry; {@link channelName} and
 * {@link callChannelName} spell those names.
 *
 * @packageDocumentation
 */
export { type Instrumentable, type InstrumentOptions, instrument } from './instrument.js';
export {
  breakerSource,
  concurrencySource,
  fallbackSource,
  hedgeSource,
  loadShedSource,
  POLICY_SOURCES,
  rateLimitSource,
  timeoutSource,
} from './policy-sources.js';
export {
  configSource,
  durableStreamsSource,
  grpcSource,
  reconnectSource,
  retrySource,
  SOURCES,
  tlsSource,
} from './sources.js';
export type { InstrumentSpec, Recorder, SourceSpec } from './spec.js';

/** The towerline packages that publish events. */
export type EventPackage =
  | 'reconnect'
  | 'retry'
  | 'config'
  | 'tls'
  | 'grpc'
  | 'durable-streams'
  | 'timeout'
  | 'breaker'
  | 'concurrency'
  | 'hedge'
  | 'fallback'
  | 'rate-limit'
  | 'load-shed';

/** The diagnostics channel an event is published on: `towerline:<package>:<event>`. */
export function channelName(pkg: EventPackage, event: string): string {
  return `towerline:${pkg}:${event}`;
}

/** The `TracingChannel` a layer publishes its calls on: `towerline:<layer>:call`. */
export function callChannelName(layer: 'retry' | 'reconnect'): string {
  return `towerline:${layer}:call`;
}
