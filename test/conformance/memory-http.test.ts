import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { startDurableStreamsServer } from '@towerline/durable-streams';
import { afterAll, beforeAll, describe } from 'vitest';

const server = await startDurableStreamsServer({ longPollTimeoutMs: 1_000 });
afterAll(() => server.close());
describe('conformance: memory over http', () => {
  beforeAll(() => {});
  runConformanceTests({ baseUrl: server.url, longPollTimeoutMs: 1_000 });
});
