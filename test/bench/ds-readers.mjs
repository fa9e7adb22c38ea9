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
//
// Every socket reads into one shared buffer (`onread`): no Buffer is made per read and no
// stream machinery runs, so a thousand readers cost this process little more than the parse.
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
/** The one read buffer of every socket: each read is parsed before the next one comes. */
const shared = Buffer.allocUnsafe(64 * 1024);

function record(ms) {
  if (nSamples === samples.length) {
    const next = new Float64Array(samples.length * 2);
    next.set(samples);
    samples = next;
  }
  samples[nSamples++] = ms;
}

/**
 * Finds the stamps in `buf[start, end)` byte by byte — no string is made — with the parse state
 * kept on the reader, so a stamp cut by a read boundary is finished by the next read.
 * States: 0 looking for `T`; 1 the integer ms; 2 the three decimals; 3 the seq after `S`.
 */
function scan(r, buf, start, end) {
  let now = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    const digit = b >= 48 && b <= 57;
    switch (r.st) {
      case 0:
        if (b === 84) {
          r.st = 1;
          r.acc = 0;
          r.nd = 0;
        }
        break;
      case 1:
        if (digit) {
          r.acc = r.acc * 10 + (b - 48);
          r.nd++;
        } else if (b === 46 && r.nd > 0) {
          r.st = 2;
          r.nd = 0;
        } else r.st = b === 84 ? 1 : 0;
        if (r.st === 1 && !digit) {
          r.acc = 0;
          r.nd = 0;
        }
        break;
      case 2:
        if (digit && r.nd < 3) {
          r.acc = r.acc * 10 + (b - 48);
          r.nd++;
        } else if (b === 83 && r.nd === 3) {
          r.st = 3;
          r.seqAcc = 0;
          r.nd = 0;
        } else r.st = 0;
        break;
      case 3:
        if (digit) {
          r.seqAcc = r.seqAcc * 10 + (b - 48);
          r.nd++;
        } else {
          if (b === 59 && r.nd > 0) {
            if (now === 0) now = wall();
            record(now - r.acc / 1000);
            if (r.seqAcc !== r.seq + 1) r.outOfOrder++;
            r.seq = r.seqAcc;
            r.events++;
          }
          r.st = 0;
        }
        break;
    }
  }
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
      // The stamp parser's state (see `scan`).
      st: 0,
      acc: 0,
      nd: 0,
      seqAcc: 0,
    };
    const onBytes = (n, buf) => {
      let start = 0;
      if (r.head) {
        r.carry += buf.toString('latin1', 0, n);
        const end = r.carry.indexOf('\r\n\r\n');
        if (end === -1) return;
        r.head = false;
        const head = r.carry;
        r.carry = '';
        if (!head.startsWith('HTTP/1.1 200')) {
          s.destroy();
          settle(false, head.slice(0, 40));
          return;
        }
        settle(true);
        // The bytes after the head are still in `buf`: where they start there.
        start = n - (head.length - (end + 4));
      }
      r.bytes += n - start;
      if (mode === 'latency' && start < n) scan(r, buf, start, n);
    };
    const s = connect({ host, port, onread: { buffer: shared, callback: onBytes } });
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
      r.st = 0;
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
