// Load generator for the durable-streams bench (autocannon), in its own process so the servers
// under test keep their CPU: node ds-load.mjs <url> <method> <connections> <ms>
import autocannon from 'autocannon';

const [url, method, connections, ms] = process.argv.slice(2);
const result = await autocannon({
  url,
  method,
  connections: Number(connections),
  pipelining: 1,
  duration: Number(ms) / 1000,
  ...(method === 'POST'
    ? { headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(100) }
    : {}),
});
console.log(
  JSON.stringify({
    opsPerSecond: result.requests.average,
    total: result.requests.total,
    errors: result.errors,
    non2xx: result.non2xx,
  }),
);
