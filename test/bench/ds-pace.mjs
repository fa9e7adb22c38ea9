// Paced appender for the fan-out bench, in its own process: `rate` appends per second for `ms`
// over one keep-alive connection (so the stream order is the send order), each a 100-byte body
// stamped `T<epoch ms>S<seq>;` for the readers (ds-readers.mjs) to measure delivery latency.
// Prints { sent, errors, p50, p99 } (append latency, ms): node ds-pace.mjs <url> <rate> <ms>
import { Agent, request } from 'node:http';

const [url, rate, ms] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const wall = () => performance.timeOrigin + performance.now();
const every = 1000 / Number(rate);
const total = Math.round((Number(ms) / 1000) * Number(rate));
const latencies = [];
let errors = 0;

function append(seq) {
  const stamp = `T${wall().toFixed(3)}S${seq};`;
  const body = stamp.padEnd(100, 'x');
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'text/plain', 'content-length': 100 } },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 204 && res.statusCode !== 200) errors++;
          latencies.push(performance.now() - started);
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end(body);
  });
}

const t0 = performance.now();
for (let seq = 0; seq < total; seq++) {
  const due = t0 + seq * every;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await append(seq);
}
agent.destroy();
latencies.sort((a, b) => a - b);
const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
console.log(
  JSON.stringify({
    sent: total,
    errors,
    p50: at(0.5),
    p99: at(0.99),
    seconds: (performance.now() - t0) / 1000,
  }),
);
