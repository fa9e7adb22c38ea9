// The ESM consumer: import for every package, require() for the other copy.
import { createRequire } from 'node:module';
import smoke from './body.cjs';

const require = createRequire(import.meta.url);
const m = {
  core: await import('@towerline/core'),
  retry: await import('@towerline/retry'),
  reconnect: await import('@towerline/reconnect'),
  config: await import('@towerline/config'),
  tls: await import('@towerline/tls'),
  ioredis: await import('@towerline/ioredis'),
  pg: await import('@towerline/pg'),
  grpc: await import('@towerline/grpc'),
  otel: await import('@towerline/otel'),
  testing: await import('@towerline/testing'),
  'durable-streams': await import('@towerline/durable-streams'),
};
const other = { core: require('@towerline/core'), config: require('@towerline/config') };
await smoke(m, other, 'esm');
