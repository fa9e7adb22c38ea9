import { startDurableStreamsServer } from '@towerline/durable-streams';
import { dropSchema, PG_URL, schemaName } from './pg-schema.js';
const schema = schemaName('ds_smoke');
const opts = { storage: 'postgres' as const, postgresUrl: PG_URL, postgresSchema: schema, longPollTimeoutMs: 1000 };
const a = await startDurableStreamsServer(opts);
const b = await startDurableStreamsServer(opts);
const srv = [a, b];
for (let round = 0; round < 20; round++) {
  const u = (s: { url: string }) => `${s.url}/v1/stream/x${round}`;
  const pick = () => srv[Math.random() < 0.5 ? 0 : 1]!;
  await fetch(u(pick()), { method: 'PUT', headers: { 'content-type': 'text/plain' } });
  await fetch(u(pick()), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'initial' });
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => i % 2 === 0 ? fetch(u(pick()), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `w${i}.` }) : fetch(u(pick()))));
  const ta = await (await fetch(u(a) + '?offset=-1')).text();
  const tb = await (await fetch(u(b) + '?offset=-1')).text();
  const n = (t: string) => t.split('.').length - 1;
  if (n(ta) !== 10 || n(tb) !== 10) console.log(round, 'A', ta, 'B', tb, rs.map((r) => r.status).join(','));
}
console.log('done');
await a.close(); await b.close(); await dropSchema(schema);
