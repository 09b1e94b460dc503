import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/env.ts';
import { createLogger } from '../src/log.ts';

describe('configuration', () => {
  it('applies the documented defaults to an empty environment', () => {
    const config = parseConfig({});
    expect(config.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(config.DISCORD_API_URL).toBe('https://discord.com/api');
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.COMFYUI_URL).toBeUndefined();
    expect(config.llmConfigured).toBe(false);
    expect(config.dataDir.endsWith('data')).toBe(true);
  });

  it('treats either an OpenAI key or a base URL as a configured LLM', () => {
    expect(parseConfig({ OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' }).llmConfigured).toBe(true);
    expect(parseConfig({ OPENAI_API_KEY: 'sk-test-123456' }).llmConfigured).toBe(true);
  });

  it('names each malformed variable and what it expects', () => {
    let error: unknown;
    try {
      parseConfig({
        REDIS_URL: 'localhost:6379',
        DATABASE_URL: 'mysql://x@y/z',
        LOG_LEVEL: 'loud',
        COMFYUI_URL: 'not a url',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(/REDIS_URL: expected a redis:\/\//);
    expect(message).toMatch(/DATABASE_URL: expected a postgres/);
    expect(message).toMatch(/LOG_LEVEL/);
    expect(message).toMatch(/COMFYUI_URL: expected a URL/);
    expect((error as ConfigError).problems.map((p) => p.variable).sort()).toEqual([
      'COMFYUI_URL',
      'DATABASE_URL',
      'LOG_LEVEL',
      'REDIS_URL',
    ]);
  });

  it('rejects a guild id that is not a snowflake', () => {
    expect(() => parseConfig({ DISCORD_GUILD_ID: 'my-server' })).toThrow(
      /DISCORD_GUILD_ID: expected a Discord guild id/,
    );
  });
});

describe('logging', () => {
  function capture() {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    return { lines, destination };
  }

  it('never writes a secret from the environment, however it is logged', () => {
    const env = {
      DISCORD_TOKEN: 'MTIzNDU2Nzg5.discord-secret-token',
      OPENAI_API_KEY: 'sk-very-secret-openai-key',
      DATABASE_URL: 'postgres://cm:db-pass-word@127.0.0.1:5432/cm',
      REDIS_URL: 'redis://:redis-pass-word@127.0.0.1:6379',
    };
    const { lines, destination } = capture();
    const logger = createLogger({ destination, env, level: 'debug' });
    const config = parseConfig(env);
    logger.info({ config }, 'starting');
    logger.info({ token: env.DISCORD_TOKEN, nested: { apiKey: env.OPENAI_API_KEY } }, 'object fields');
    logger.warn(`message text with ${env.DISCORD_TOKEN} inside`);
    logger.error({ err: new Error(`connect failed for ${env.DATABASE_URL} / ${env.REDIS_URL}`) }, 'error');
    logger.debug({ headers: { authorization: `Bot ${env.DISCORD_TOKEN}` } }, 'request');
    const output = lines.join('');
    expect(lines.length).toBe(5);
    for (const secret of [env.DISCORD_TOKEN, env.OPENAI_API_KEY, 'db-pass-word', 'redis-pass-word']) {
      expect(output).not.toContain(secret);
    }
    expect(output).toContain('[Redacted]');
    expect(output).toContain('message text with');
  });
});
