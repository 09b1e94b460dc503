import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

/**
 * A fresh, empty PostgreSQL database for one test file, on the shared server (127.0.0.1:5432, trust
 * auth). The base URL comes from TEST_DATABASE_URL when set; the new database is created from it and
 * dropped afterwards, connections and all.
 *
 *   const testDb = await createTestDatabase();
 *   const database = await openDatabase({ databaseUrl: testDb.url, dataDir });
 *   ...
 *   await database.close();
 *   await testDb.drop();
 */
export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const base = process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
  // Lower-case letters, digits and underscores only, so the name never needs quoting care.
  const name = `cm_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }

  const url = new URL(base);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      const conn = postgres(base, { max: 1, onnotice: () => {} });
      try {
        // WITH (FORCE) terminates connections a test forgot to close (PostgreSQL 13+).
        await conn.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await conn.end({ timeout: 5 });
      }
    },
  };
}
