/**
 * Why a file could not be read, in words for an error message: `does not exist`, `is a
 * directory, not a file`, `is not readable`, or the system code.
 */
export function describeFileError(error: unknown): string {
  const code = (error as { code?: string } | undefined)?.code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'is not readable';
  return `cannot be read (${code ?? 'error'})`;
}
