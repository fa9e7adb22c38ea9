/**
 * @towerline/ioredis — an ioredis client under a towerline `Reconnector`: the ioredis
 * `Connector` (idempotency per command from Redis's own flags, connection setup — AUTH with
 * fresh credentials, SELECT, CLIENT SETNAME, subscriptions — replayed before queued requests,
 * never-written commands told apart from ones that may have executed), typed commands over any
 * stack (`redisCommands`), pipelines and transactions that fail as a whole, and nothing lost
 * silently.
 *
 * @packageDocumentation
 */
export {
  isIdempotentRequest,
  isReadOnlyCommand,
  type RedisArg,
  type RedisBatch,
  type RedisCommand,
  type RedisRequest,
} from './commands.js';
export {
  isDefinitiveRedisReply,
  isRedisConnectionError,
  type RedisConnectorOptions,
  type RedisCredentials,
  redisConnector,
  type Subscriptions,
} from './connector.js';
export { type RedisCommands, RedisFacade, redisCommands } from './facade.js';
export {
  ResilientRedis,
  type ResilientRedisOptions,
  resilientRedis,
} from './resilient-redis.js';
