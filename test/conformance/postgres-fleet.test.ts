import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { type RunningServer, startDurableStreamsServer } from '@towerline/durable-streams';
import { afterAll, describe } from 'vitest';
import { dropSchema, PG_URL, schemaName } from '../support/pg-schema.js';
import { roundRobin } from '../support/round-robin.js';

// Two instances on one PostgreSQL schema behind a proxy that alternates them on every request:
// a stream created on one is appended on the other and read back on the first.
const schema = schemaName('ds_conf');
const options = {
  storage: 'postgres' as const,
  postgresUrl: PG_URL,
  postgresSchema: schema,
  longPollTimeoutMs: 1_000,
};
const servers: RunningServer[] = [
  await startDurableStreamsServer(options),
  await startDurableStreamsServer(options),
];
const proxy = await roundRobin(servers.map((s) => s.url));
afterAll(async () => {
  await proxy.close();
  for (const s of servers) await s.close();
  await dropSchema(schema);
});
describe('conformance: postgres, two instances behind a round-robin proxy', () => {
  runConformanceTests({ baseUrl: proxy.url, longPollTimeoutMs: 1_000 });
});
