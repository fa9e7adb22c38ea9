// TypeScript, an ES module: the `import` types (.d.ts). Checked under moduleResolution node16
// (ts-node16/) and bundler with a "source" custom condition that must not reach src/ (ts-bundler/).

import { ConfigProvider, isConfigInvalid } from '@towerline/config';
import { backoff, isTowerlineError, type Service, TowerlineError } from '@towerline/core';
import { createProducer, followStream } from '@towerline/durable-streams';
import { GrpcConnectivity } from '@towerline/grpc';
import { isReadOnlyCommand, redisCommands, resilientRedis } from '@towerline/ioredis';
import { instrument } from '@towerline/otel';
import { resilientPg } from '@towerline/pg';
import { Reconnector } from '@towerline/reconnect';
import { RetryLayer } from '@towerline/retry';
import { FaultProxy } from '@towerline/testing';
import { loadTlsConfig } from '@towerline/tls';

const inner: Service<string, number> = { call: async (s) => s.length };
const svc = new RetryLayer({ maxAttempts: 3, backoff: backoff.fixed(5) }).wrap(inner);
const n: Promise<number> = svc.call('x');
const config = new ConfigProvider<{ port: number }>({ initial: { port: 1 } });
const port: number = config.get().port;
const e: unknown = new TowerlineError('ERR_CLOSED', 'closed');
const known: boolean = isTowerlineError(e, 'ERR_CLOSED') && isConfigInvalid(e);
const redis = resilientRedis({ port: 6379 });
const value: Promise<string | null> = redisCommands(redis).get('k');
const r = new Reconnector<number>({ connect: async () => 1 });
export const all = [
  n,
  port,
  known,
  value,
  r,
  isReadOnlyCommand('get'),
  instrument,
  resilientPg,
  GrpcConnectivity,
  FaultProxy,
  loadTlsConfig,
  createProducer,
  followStream,
];
