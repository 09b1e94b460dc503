import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { config as loadDotenv } from 'dotenv';
import { z } from 'zod';
import { EXPERIMENTAL_FAMILY_NAMES } from '../comic/families.ts';

/**
 * The whole environment the product reads, in one zod schema. Every name here is part of the
 * operator's interface (documented in README.md and .env.example); do not rename them.
 */
const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const optionalUrl = (what: string) =>
  z
    .string()
    .trim()
    .transform((v) => (v === '' ? undefined : v))
    .optional()
    .refine((v) => v === undefined || URL.canParse(v), { message: `expected ${what}` });

export const envSchema = z.object({
  DISCORD_TOKEN: optionalString,
  DISCORD_API_URL: z
    .string()
    .trim()
    .default('https://discord.com/api')
    .refine((v) => URL.canParse(v), { message: 'expected a URL such as https://discord.com/api' }),
  DISCORD_GUILD_ID: z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .refine((v) => v === undefined || /^\d{15,22}$/.test(v), {
      message: 'expected a Discord guild id (a snowflake: 15–22 digits)',
    }),
  DATABASE_URL: optionalUrl('a PostgreSQL URL such as postgres://user:pass@host:5432/comicmaster').refine(
    (v) => v === undefined || /^postgres(ql)?:\/\//.test(v),
    { message: 'expected a postgres:// or postgresql:// URL' },
  ),
  REDIS_URL: z
    .string()
    .trim()
    .default('redis://127.0.0.1:6379')
    .refine((v) => /^rediss?:\/\//.test(v) && URL.canParse(v), {
      message: 'expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379',
    }),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: optionalUrl('a URL such as http://127.0.0.1:11434/v1'),
  LLM_MODEL: z.string().trim().min(1).default('gpt-4o-mini'),
  LLM_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
  COMFYUI_URL: optionalUrl('a URL such as http://127.0.0.1:8188'),
  COMFYUI_LORA_DIR: optionalString,
  RUNNER_ID: optionalString,
  SD_SCRIPTS_DIR: optionalString,
  AI_TOOLKIT_DIR: optionalString,
  TRAINER_PYTHON: z.string().trim().min(1).default('python3'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where artifacts live: a folder under DATA_DIR (one box) or an S3-compatible bucket (several boxes). */
  ARTIFACT_STORE: z.enum(['local', 's3']).default('local'),
  S3_ENDPOINT: optionalUrl('a URL such as http://minio:9000'),
  S3_BUCKET: optionalString,
  S3_REGION: z.string().trim().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: optionalString,
  S3_SECRET_ACCESS_KEY: optionalString,
  /** Comma-separated experimental model families to allow (ponyv7, hunyuan3); empty: none. */
  ENABLE_EXPERIMENTAL_FAMILIES: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter((s) => s !== ''),
    )
    .pipe(
      z.array(z.enum(EXPERIMENTAL_FAMILY_NAMES), {
        message: `expected a comma-separated list of ${EXPERIMENTAL_FAMILY_NAMES.join(', ')}`,
      }),
    ),
});

export type Env = z.infer<typeof envSchema>;

export interface AppConfig extends Env {
  /** Absolute form of DATA_DIR. */
  dataDir: string;
  /** True when an LLM is configured (a key or a base URL); otherwise the template writer is used. */
  llmConfigured: boolean;
}

/** A configuration error names every bad variable and what it expects. */
export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; expected: string }[]) {
    super(
      'Invalid configuration:\n' +
        problems.map((p) => `  ${p.variable}: ${p.expected}`).join('\n') +
        '\nSee .env.example for every variable and its meaning.',
    );
    this.name = 'ConfigError';
  }
}

/** Parse an environment object (process.env by default). Throws ConfigError naming each bad variable. */
export function parseConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? '(environment)'),
        expected: issue.message,
      })),
    );
  }
  const parsed = result.data;
  return {
    ...parsed,
    dataDir: resolve(parsed.DATA_DIR),
    llmConfigured: Boolean(parsed.OPENAI_API_KEY || parsed.OPENAI_BASE_URL),
  };
}

let cached: AppConfig | undefined;

/** Load `.env` when present, then parse once for the life of the process. */
export function loadConfig(): AppConfig {
  if (cached) return cached;
  if (existsSync('.env')) loadDotenv({ path: '.env', quiet: true });
  cached = parseConfig(process.env);
  return cached;
}
