import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { ComicMasterError } from '../errors.ts';
import * as schema from './schema.ts';

/**
 * The drizzle handle every query is written against. It is the common base of the postgres-js and
 * PGlite drivers, so a query helper works the same on a deployed PostgreSQL and on the embedded one.
 */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type Database =
  | { kind: 'postgres'; db: Db; client: postgres.Sql; close(): Promise<void> }
  | { kind: 'pglite'; db: Db; client: PGlite; close(): Promise<void> };

export interface OpenDatabaseOptions {
  /** A postgres:// URL; when absent, an embedded PGlite database is used. */
  databaseUrl?: string | undefined;
  /** DATA_DIR: the PGlite files live under `<dataDir>/pglite`. */
  dataDir: string;
  /** Pool size for PostgreSQL (default 10, at least 2: migrations hold one connection for their lock). */
  maxConnections?: number;
}

/**
 * Opens the database the configuration names: PostgreSQL when DATABASE_URL is set, else PGlite
 * persisted on disk. Connections to PostgreSQL are made lazily, on the first query.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    const client = postgres(options.databaseUrl, {
      max: Math.max(2, options.maxConnections ?? 10),
      // NOTICEs ("already exists, skipping") are normal during migrations; they are not news.
      onnotice: () => {},
    });
    const db: Db = drizzlePostgres({ client, schema });
    return {
      kind: 'postgres',
      db,
      client,
      close: () => client.end({ timeout: 5 }),
    };
  }

  const dir = join(resolve(options.dataDir), 'pglite');
  let client: PGlite;
  try {
    await mkdir(dir, { recursive: true });
    client = await PGlite.create(dir);
  } catch (cause) {
    throw new ComicMasterError('database_unavailable', 'The database could not be opened.', {
      cause,
      operatorMessage: `could not open the embedded PGlite database in ${dir} (is another process using it?)`,
    });
  }
  const db: Db = drizzlePglite({ client, schema });
  return {
    kind: 'pglite',
    db,
    client,
    close: () => client.close(),
  };
}
