import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// No Docker engine runs here: `docker-compose config` (Debian's docker-compose 1.29) validates the file
// and resolves variables exactly as `docker compose up` would on a GPU box; we then read the result.
const dir = mkdtempSync(join(tmpdir(), 'cm-compose-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function composeConfig(envFile: string) {
  copyFileSync('docker-compose.yml', join(dir, 'docker-compose.yml'));
  writeFileSync(join(dir, '.env'), envFile);
  const result = spawnSync('docker-compose', ['config'], { cwd: dir, encoding: 'utf8' });
  if (result.error)
    throw new Error(
      `docker-compose is not installed (apt-get install docker-compose): ${result.error.message}`,
    );
  return result;
}

interface Service {
  ports?: string[];
  command?: string[];
  healthcheck?: { test: string[] };
  volumes?: string[];
  deploy?: { resources?: { reservations?: { devices?: { driver: string; capabilities: string[] }[] } } };
  environment?: Record<string, string>;
}

describe('docker-compose.yml', () => {
  const example = readFileSync('.env.example', 'utf8')
    .replace(/^POSTGRES_PASSWORD=$/m, 'POSTGRES_PASSWORD=pg-secret')
    .replace(/^REDIS_PASSWORD=$/m, 'REDIS_PASSWORD=redis-secret');
  const result = composeConfig(example);
  const config = parse(result.stdout) as { services: Record<string, Service> };
  const services = config.services;

  it('is valid and defines the services a GPU box runs', () => {
    expect(result.status).toBe(0);
    expect(Object.keys(services).sort()).toEqual(['bot', 'comfyui', 'minio', 'postgres', 'redis', 'runner']);
    // MinIO (ARTIFACT_STORE=s3): health-checked, nothing published on the host.
    expect(services.minio?.healthcheck?.test.join(' ')).toContain('mc ready local');
    expect(services.minio?.ports ?? []).toEqual([]);
  });

  it('publishes nothing on public interfaces', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) {
        expect(port, `${name} publishes ${port}`).toMatch(/^127\.0\.0\.1:/);
      }
    }
  });

  it('keeps Redis durable and password-protected, and health-checks PostgreSQL and Redis', () => {
    expect(services.redis?.command).toEqual([
      'redis-server',
      '--appendonly',
      'yes',
      '--requirepass',
      'redis-secret',
    ]);
    expect(services.postgres?.healthcheck?.test.join(' ')).toContain('pg_isready');
    expect(services.redis?.healthcheck).toBeDefined();
    expect(services.postgres?.volumes?.some((v) => v.startsWith('pgdata:'))).toBe(true);
  });

  it('reserves the NVIDIA GPU for the runner and shares the models volume with ComfyUI', () => {
    const gpu = services.runner?.deploy?.resources?.reservations?.devices?.[0];
    expect(gpu?.driver).toBe('nvidia');
    expect(gpu?.capabilities).toContain('gpu');
    expect(services.runner?.volumes).toContain('comfyui-models:/comfyui/models:rw');
    expect(services.comfyui?.volumes?.some((v) => v.startsWith('comfyui-models:'))).toBe(true);
    expect(services.runner?.environment?.COMFYUI_URL).toBe('http://comfyui:8188');
    expect(services.bot?.environment?.DATABASE_URL).toBe(
      'postgres://comicmaster:pg-secret@postgres:5432/comicmaster',
    );
  });

  it('refuses to start without database and Redis passwords', () => {
    const bare = composeConfig('');
    expect(bare.status).not.toBe(0);
    expect(bare.stderr).toMatch(/POSTGRES_PASSWORD|REDIS_PASSWORD/);
  });
});
