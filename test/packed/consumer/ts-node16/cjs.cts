// TypeScript, moduleResolution node16, a CommonJS module: the `require` types (.d.cts).

import { ConfigProvider } from '@towerline/config';
import { backoff, isTowerlineError, type Service } from '@towerline/core';
import { redisCommands, resilientRedis } from '@towerline/ioredis';
import { RetryLayer } from '@towerline/retry';

import otel = require('@towerline/otel');

const inner: Service<string, number> = { call: async (s) => s.length };
const svc = new RetryLayer({ maxAttempts: 3, backoff: backoff.fixed(5) }).wrap(inner);
const n: Promise<number> = svc.call('x');
const config = new ConfigProvider<{ port: number }>({ initial: { port: 1 } });
const value: Promise<string | null> = redisCommands(resilientRedis()).get('k');
export const all = [n, config.get().port, value, isTowerlineError(1), otel.instrument];
