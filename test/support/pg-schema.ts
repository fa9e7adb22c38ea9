/** A PostgreSQL schema of its own for one test file, dropped afterwards (the server is shared). */
import pg from 'pg';

export const PG_URL = process.env.TOWERLINE_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function schemaName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
