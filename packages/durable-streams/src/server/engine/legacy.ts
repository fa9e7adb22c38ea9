/** The names of the journal-replay persistence this engine replaced, kept for old imports. */
import type { LogRecord } from './codec.js';
import { Engine, type StorageMode } from './engine.js';

/** @deprecated The storage is an {@link Engine} now. */
export type Persistence = Engine;

/** @deprecated Changes are the engine's records now. */
export type Mutation = LogRecord;

/**
 * @deprecated Use `Engine.open({ mode, dataDir })`. Resolves undefined for `memory`, as before.
 */
export async function openPersistence(
  mode: StorageMode,
  dataDir: string | undefined,
): Promise<Engine | undefined> {
  if (mode === 'memory') return undefined;
  return Engine.open({ mode, ...(dataDir !== undefined ? { dataDir } : {}) });
}
