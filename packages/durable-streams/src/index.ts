/**
 * @towerline/durable-streams — Durable Streams clients on towerline's engine: `followStream`
 * reads a stream and keeps reading through drops, restarts and 5xx/429 (resuming from the last
 * `Stream-Next-Offset`, nothing lost, nothing twice); `createProducer` appends as an
 * idempotent producer so a retried append is never duplicated.
 *
 * @packageDocumentation
 */
export { checkResponse, isTransient, StreamHttpError } from './http-error.js';
export {
  type AppendResult,
  createProducer,
  type Producer,
  type ProducerOptions,
} from './producer.js';
export {
  type FollowedStream,
  type FollowOptions,
  followStream,
  type StreamBatch,
} from './reader.js';
export { clientOrigin, type RunningApp, startApp } from './server/app.js';
export {
  CONFIG_KEYS,
  checkConfig,
  defaults as defaultServerConfig,
  type HttpVersion,
  type LoadOptions,
  loadConfig,
  PROFILES,
  type Profile,
  type ServerConfig,
  type ServerConfigInput,
  STARTUP_CODES,
  StartupError,
  type StartupErrorCode,
  type StartupPhase,
  serverConfigSchema,
  type TransportMode,
  validateConfig,
} from './server/config.js';
export type { CompactionReport } from './server/engine/compaction.js';
export {
  Engine,
  type EngineOptions,
  type OpenReport,
  STORAGE_MODES,
  type StorageMode,
} from './server/engine/engine.js';
export { StorageError, type StorageErrorCode } from './server/engine/errors.js';
export {
  type Mutation,
  openPersistence,
  type Persistence,
} from './server/engine/legacy.js';
export {
  createLogger,
  jsonLogger,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type StreamsLogger,
} from './server/logging.js';
export { MAX_JSON_DEPTH } from './server/protocol/json.js';
export {
  type DurableStreamsServerOptions,
  type RunningServer,
  startDurableStreamsServer,
} from './server/server.js';
export type { ShedReason, StreamServerEvents } from './server/transport/events.js';
export {
  type HandlerLogger,
  StreamHandler,
  type StreamHandlerOptions,
} from './server/transport/handler.js';
export type { LiveStats } from './server/transport/live.js';
export { tlsFetch } from './tls-fetch.js';
