/** Storage failures, with a stable `code` to match on (the message names files, never data). */
export type StorageErrorCode =
  /** A record or index on disk fails its checksum or does not follow from the ones before. */
  | 'ERR_STORAGE_CORRUPT'
  /** Another live process has the data directory open. */
  | 'ERR_STORAGE_LOCKED'
  /** A write or fsync failed: the engine refuses further writes until restarted. */
  | 'ERR_STORAGE_FAILED';

export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
