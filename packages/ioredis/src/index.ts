/**
 * @towerline/ioredis — an ioredis client under a towerline `Reconnector`: idempotency per
 * command from Redis's own flags, connection setup (AUTH with fresh credentials, SELECT,
 * CLIENT SETNAME, subscriptions) replayed before queued requests, pipelines and transactions
 * that fail as a whole, and nothing lost silently.
 *
 * @packageDocumentation
 */
export {
  isIdempotentRequest,
  isReadOnlyCommand,
  isRedisConnectionError,
  type RedisBatch,
  type RedisCommand,
  type RedisCredentials,
  type RedisRequest,
  ResilientRedis,
  type ResilientRedisOptions,
  resilientRedis,
} from './resilient-redis.js';
