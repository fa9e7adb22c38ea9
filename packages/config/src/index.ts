/**
 * @towerline/config — hot-reloadable values. `ConfigProvider` holds an immutable snapshot that
 * `get()` reads in one property access, fed by a supervised stream, a serialised `reload()`
 * handle or watched files (`fileSource`); `RateLimitLayer` reads its limits on every call.
 *
 * @packageDocumentation
 */
export { type FileSourceOptions, fileSource } from './file-source.js';
export { describeParseError, lineColumn } from './parse-error.js';
export {
  type ConfigEvents,
  ConfigProvider,
  type ConfigProviderOptions,
  type ConfigSource,
  isConfigInvalid,
  type StartOptions,
  type ValidationResult,
} from './provider.js';
export {
  type RateLimitConfig,
  RateLimitLayer,
  rateLimitProblems,
  rateLimitSource,
  readBodyLimited,
} from './rate-limit.js';
export type {
  StandardSchemaIssue,
  StandardSchemaProps,
  StandardSchemaResult,
  StandardSchemaV1,
} from './standard-schema.js';
