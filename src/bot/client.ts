/**
 * The bot's discord.js client: only the intents it needs, partials so reactions on messages from
 * before a restart still arrive, and REST pointed at DISCORD_API_URL. The gateway URL is not
 * configured: discord.js asks GET /gateway/bot through that same REST base, so a local Discord
 * (the test fake) is reached end to end. zlib-sync is not a dependency, so the gateway is plain JSON.
 */
import {
  Client,
  DiscordjsErrorCodes,
  Events,
  GatewayIntentBits,
  Partials,
  type ClientOptions,
} from 'discord.js';
import type { Logger } from 'pino';
import type { AppConfig } from '../config/env.ts';
import { ComicMasterError, UpstreamError } from '../errors.ts';
import { log } from '../log.ts';

/**
 * Guilds: the channel, role and member cache used for permission checks.
 * GuildMessageReactions: 🔁 re-rolls. Interactions need no intent; message content is not read.
 */
export const BOT_INTENTS = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions] as const;

/** A reaction on a message not in cache arrives as a partial; handlers fetch what they need. */
export const BOT_PARTIALS = [Partials.Message, Partials.Reaction, Partials.User, Partials.Channel] as const;

export type DiscordClientConfig = Pick<AppConfig, 'DISCORD_API_URL'>;

export function discordClientOptions(config: DiscordClientConfig): ClientOptions {
  return {
    intents: [...BOT_INTENTS],
    partials: [...BOT_PARTIALS],
    rest: { api: config.DISCORD_API_URL },
    // Comics quote user prompts: never let one ping @everyone or a role.
    allowedMentions: { parse: ['users'], repliedUser: false },
  };
}

/** A client ready to log in; it does not connect until `connectDiscordClient`. */
export function createDiscordClient(config: DiscordClientConfig, logger: Logger = log()): Client {
  const client = new Client(discordClientOptions(config));
  const discordLog = logger.child({ component: 'discord' });
  // The debug stream is not forwarded: it is noisy, and REST debug lines can echo request details.
  client.on(Events.Warn, (message) => discordLog.warn({ message }, 'discord.js warning'));
  client.on(Events.Error, (error) => discordLog.error({ err: error }, 'discord.js error'));
  client.on(Events.ShardDisconnect, (event, shardId) =>
    discordLog.warn({ shardId, code: event.code }, 'gateway disconnected'),
  );
  client.on(Events.ShardReconnecting, (shardId) => discordLog.info({ shardId }, 'gateway reconnecting'));
  client.on(Events.ShardResume, (shardId, replayed) =>
    discordLog.info({ shardId, replayed }, 'gateway resumed'),
  );
  client.rest.on('rateLimited', (info) =>
    discordLog.info(
      { route: info.route, method: info.method, retryAfterMs: info.retryAfter, global: info.global },
      'discord rate limit, waiting',
    ),
  );
  return client;
}

/**
 * Logs in with DISCORD_TOKEN and resolves once the client is ready (guilds cached).
 * Failures become typed errors naming what the operator must fix; the token is never logged.
 */
export async function connectDiscordClient(
  client: Client,
  config: Pick<AppConfig, 'DISCORD_TOKEN'>,
): Promise<Client<true>> {
  const token = config.DISCORD_TOKEN;
  if (!token) {
    throw new ComicMasterError(
      'discord_token_missing',
      'DISCORD_TOKEN is not set: the bot cannot log in to Discord.',
    );
  }
  const ready = new Promise<Client<true>>((resolve) => client.once(Events.ClientReady, resolve));
  try {
    await client.login(token);
  } catch (error) {
    throw loginError(error);
  }
  return ready;
}

function loginError(error: unknown): ComicMasterError {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === DiscordjsErrorCodes.TokenInvalid) {
    return new UpstreamError(
      'discord',
      'Discord rejected DISCORD_TOKEN. Copy the bot token again from the developer portal.',
      {
        cause: error,
        retryable: false,
      },
    );
  }
  if (code === DiscordjsErrorCodes.DisallowedIntents) {
    return new UpstreamError('discord', 'Discord refused the gateway intents this bot asked for.', {
      cause: error,
      retryable: false,
    });
  }
  return new UpstreamError('discord', 'Could not connect to Discord.', { cause: error });
}
