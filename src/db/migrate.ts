import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { ComicMasterError } from '../errors.ts';
import { log } from '../log.ts';
import type { Database, Db } from './client.ts';

/** migrations/ at the repository root, found from this file so the working directory does not matter. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Where drizzle records applied migrations (its defaults, written out so counting them is explicit). */
const MIGRATIONS_SCHEMA = 'drizzle';
const MIGRATIONS_TABLE = '__drizzle_migrations';

/** Key of the session advisory lock that serialises migrations across processes (bot, runner, CLI). */
const LOCK_NAME = 'comicmaster.migrations';

/**
 * Applies every migration in migrations/ that the database has not seen, and says how many it applied.
 * A second run applies nothing. On PostgreSQL, a bot and a runner starting together take turns: the
 * second waits on an advisory lock, then finds nothing left to do.
 */
export async function runMigrations(database: Database): Promise<{ applied: number }> {
  const config = {
    migrationsFolder: MIGRATIONS_FOLDER,
    migrationsSchema: MIGRATIONS_SCHEMA,
    migrationsTable: MIGRATIONS_TABLE,
  };
  try {
    let applied: number;
    if (database.kind === 'postgres') {
      // drizzle reads the last applied migration before its transaction starts, so two processes
      // could both decide to apply the same file. A session lock held on its own connection closes
      // that window; the migration itself runs on another pooled connection (the pool has at least 2).
      const lock = await database.client.reserve();
      try {
        await lock`select pg_advisory_lock(hashtext(${LOCK_NAME}))`;
        const before = await countApplied(database.db);
        await migratePostgres(database.db as PostgresJsDatabase<Record<string, unknown>>, config);
        applied = (await countApplied(database.db)) - before;
      } finally {
        await lock`select pg_advisory_unlock(hashtext(${LOCK_NAME}))`.catch(() => undefined);
        lock.release();
      }
    } else {
      // PGlite lives inside this one process: nothing else can migrate it at the same time.
      const before = await countApplied(database.db);
      await migratePglite(database.db as PgliteDatabase<Record<string, unknown>>, config);
      applied = (await countApplied(database.db)) - before;
    }
    if (applied > 0) log().info({ applied, database: database.kind }, 'database migrations applied');
    return { applied };
  } catch (cause) {
    throw new ComicMasterError('migration_failed', 'The database could not be brought up to date.', {
      cause,
      operatorMessage: `applying migrations from ${MIGRATIONS_FOLDER} failed on ${database.kind}: ${String(cause)}`,
    });
  }
}

/** Number of migrations recorded as applied (0 on a database that was never migrated). */
export async function countApplied(db: Db): Promise<number> {
  const table = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`;
  const exists = await db.execute(sql`select to_regclass(${table}) is not null as present`);
  if (!rowsOf<{ present: boolean }>(exists)[0]?.present) return 0;
  const counted = await db.execute(
    sql`select count(*)::int as n from ${sql.identifier(MIGRATIONS_SCHEMA)}.${sql.identifier(MIGRATIONS_TABLE)}`,
  );
  return rowsOf<{ n: number }>(counted)[0]?.n ?? 0;
}

/** postgres-js returns the rows as the result itself; PGlite returns `{ rows }`. */
function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
