import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import {
  type RunningServer,
  type StorageMode,
  startDurableStreamsServer,
} from '@towerline/durable-streams';
import { afterAll, describe } from 'vitest';

// The same suite against every persistent storage mode (memory runs in memory-http.test.ts).
const modes: StorageMode[] = ['file-fast', 'file-durable', 'acid'];
const servers = new Map<StorageMode, RunningServer>();
const dirs: string[] = [];
for (const storage of modes) {
  const dataDir = mkdtempSync(join(tmpdir(), `towerline-ds-${storage}-`));
  dirs.push(dataDir);
  servers.set(
    storage,
    await startDurableStreamsServer({ storage, dataDir, longPollTimeoutMs: 1_000 }),
  );
}
afterAll(async () => {
  for (const s of servers.values()) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
for (const storage of modes) {
  describe(`conformance: ${storage} over http`, () => {
    runConformanceTests({ baseUrl: servers.get(storage)!.url, longPollTimeoutMs: 1_000 });
  });
}
