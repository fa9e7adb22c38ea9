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
export { clientOrigin, jsonLogger, type Logger, type RunningApp, startApp } from './server/app.js';
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
export { StreamHandler, type StreamHandlerOptions } from './server/handler.js';
export {
  type Mutation,
  openPersistence,
  type Persistence,
  STORAGE_MODES,
  type StorageMode,
} from './server/persistence.js';
export {
  type DurableStreamsServerOptions,
  type RunningServer,
  startDurableStreamsServer,
} from './server/server.js';
export { tlsFetch } from './tls-fetch.js';
