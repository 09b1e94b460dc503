import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Paths pino censors wherever they appear in a log object. Secrets also never get logged on purpose,
 * this is the net under that rule.
 */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'DISCORD_TOKEN',
  '*.DISCORD_TOKEN',
  'OPENAI_API_KEY',
  '*.OPENAI_API_KEY',
  'S3_SECRET_ACCESS_KEY',
  '*.S3_SECRET_ACCESS_KEY',
  'secretAccessKey',
  '*.secretAccessKey',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'password',
  '*.password',
  'DATABASE_URL',
  '*.DATABASE_URL',
  'REDIS_URL',
  '*.REDIS_URL',
  'config',
  'env',
];

/** Secret values from the environment, scrubbed from every message string as a second line of defence. */
function secretValues(env: NodeJS.ProcessEnv): string[] {
  const values: string[] = [];
  for (const name of ['DISCORD_TOKEN', 'OPENAI_API_KEY', 'S3_SECRET_ACCESS_KEY']) {
    const v = env[name];
    if (v && v.length >= 6) values.push(v);
  }
  for (const name of ['DATABASE_URL', 'REDIS_URL']) {
    const v = env[name];
    if (!v || !URL.canParse(v)) continue;
    const password = new URL(v).password;
    if (password && password.length >= 4) values.push(decodeURIComponent(password));
  }
  return values;
}

function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[Redacted]');
  return out;
}

export interface LoggerOptions {
  level?: string;
  destination?: DestinationStream;
  env?: NodeJS.ProcessEnv;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const secrets = secretValues(env);
  return pino(
    {
      level: options.level ?? env.LOG_LEVEL ?? 'info',
      base: { app: 'comicmaster' },
      redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
      hooks: {
        // Scrub secret values that slipped into a message or an error string.
        logMethod(args, method) {
          const cleaned = args.map((a) => (typeof a === 'string' ? scrub(a, secrets) : a));
          method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
      formatters: {
        log(object) {
          if (secrets.length === 0) return object;
          return JSON.parse(scrub(JSON.stringify(object), secrets)) as Record<string, unknown>;
        },
      },
    },
    options.destination ?? pino.destination(2),
  );
}

let root: Logger | undefined;

/** The process-wide logger (stderr, so stdout stays free for command output). */
export function log(): Logger {
  root ??= createLogger();
  return root;
}
