// SSE readers for the fan-out bench, in their own process (forked, driven over IPC), with the
// lightest parser that can check delivery: a raw socket per reader, no HTTP client library.
// In `count` mode a reader only adds up bytes; in `latency` mode it scans the bytes for the
// stamps the pacer (ds-pace.mjs) puts in each append — `T<epoch ms, 3 decimals>S<seq>;` — and
// records now − stamp, and checks every reader saw every seq exactly once, in order.
//
// Messages in: { open: { host, port, path, n } } → { opened, failed, error? };
// { mode: 'count' | 'latency' }; 'report' → { bytes, events, closed, latency, cpu, missing,
// outOfOrder }; 'close' → { closed }. A socket that fails to open (EMFILE, ECONNRESET, a
// refused connection) is counted, never thrown.
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const readers = [];
// The readers' own event loop delay, reported with each measurement: a reader process that
// falls behind would show here (and in its CPU time) before it showed as server latency.
let loop = monitorEventLoopDelay({ resolution: 1 });
let mode = 'count';
let closedByServer = 0;
let samples = new Float64Array(1 << 16);
let nSamples = 0;
const wall = () => performance.timeOrigin + performance.now();
const STAMP = /T(\d+\.\d{3})S(\d+);/g;

function record(ms) {
  if (nSamples === samples.length) {
    const next = new Float64Array(samples.length * 2);
    next.set(samples);
    samples = next;
  }
  samples[nSamples++] = ms;
}

function openOne(host, port, path) {
  return new Promise((resolve) => {
    const r = {
      socket: undefined,
      bytes: 0,
      events: 0,
      seq: -1,
      outOfOrder: 0,
      carry: '',
      head: true,
    };
    const s = connect({ host, port });
    r.socket = s;
    let settled = false;
    const settle = (ok, error) => {
      if (settled) return;
      settled = true;
      resolve({ ok, error, r });
    };
    s.setNoDelay(true);
    s.on('connect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    s.on('data', (chunk) => {
      if (r.head) {
        const text = chunk.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        if (end === -1) return;
        r.head = false;
        if (!text.startsWith('HTTP/1.1 200')) {
          s.destroy();
          settle(false, text.slice(0, 40));
          return;
        }
        settle(true);
        chunk = chunk.subarray(end + 4);
      }
      r.bytes += chunk.length;
      if (mode !== 'latency') return;
      const text = r.carry + chunk.toString('latin1');
      const now = wall();
      STAMP.lastIndex = 0;
      let last = 0;
      for (let m = STAMP.exec(text); m; m = STAMP.exec(text)) {
        record(now - Number(m[1]));
        const seq = Number(m[2]);
        if (seq !== r.seq + 1) r.outOfOrder++;
        r.seq = seq;
        r.events++;
        last = STAMP.lastIndex;
      }
      // Keep a stamp cut by a read boundary for the next chunk (stamps are < 40 bytes).
      const rest = text.slice(last);
      const t = rest.lastIndexOf('T');
      r.carry = t === -1 ? '' : rest.slice(t).slice(0, 40);
    });
    s.on('error', (e) => settle(false, e.code ?? e.message));
    s.on('close', () => {
      if (settled && !r.head) closedByServer++;
      settle(false, 'closed');
    });
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

process.on('message', async (m) => {
  if (m.open) {
    const { host, port, path, n } = m.open;
    let opened = 0;
    let failed = 0;
    let error;
    // In batches, so the server's accept backlog is never the limit.
    for (let i = 0; i < n; i += 250) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(250, n - i) }, () => openOne(host, port, path)),
      );
      for (const b of batch) {
        if (b.ok) {
          opened++;
          readers.push(b.r);
        } else {
          failed++;
          error ??= b.error;
          b.r.socket.destroy();
        }
      }
    }
    process.send({ opened, failed, error });
  } else if (m.mode) {
    mode = m.mode;
    nSamples = 0;
    loop.disable();
    loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    closedByServer = 0;
    for (const r of readers) {
      r.bytes = 0;
      r.events = 0;
      r.seq = -1;
      r.outOfOrder = 0;
      r.carry = '';
    }
    process.send({ ok: true, cpu: process.cpuUsage() });
  } else if (m === 'report') {
    const sorted = samples.slice(0, nSamples).sort();
    const events = readers.map((r) => r.events);
    process.send({
      readers: readers.length,
      bytes: readers.reduce((a, r) => a + r.bytes, 0),
      minEvents: events.length ? Math.min(...events) : 0,
      maxEvents: events.length ? Math.max(...events) : 0,
      outOfOrder: readers.reduce((a, r) => a + r.outOfOrder, 0),
      closed: closedByServer,
      latency: {
        n: nSamples,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        max: percentile(sorted, 1),
      },
      cpu: process.cpuUsage(),
      loopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    });
  } else if (m === 'close') {
    for (const r of readers.splice(0)) r.socket.destroy();
    process.send({ closed: true });
  }
});
process.send({ ready: true });
