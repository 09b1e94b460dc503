/**
 * `comicmaster register-commands`: bulk-overwrites the slash commands, in DISCORD_GUILD_ID when set
 * (instant, for development) or globally. Uses only REST; no gateway connection is opened.
 */
import {
  REST,
  Routes,
  type RESTGetCurrentApplicationResult,
  type RESTPutAPIApplicationCommandsResult,
} from 'discord.js';
import type { Logger } from 'pino';
import type { AppConfig } from '../config/env.ts';
import { ComicMasterError, UpstreamError } from '../errors.ts';
import { log } from '../log.ts';
import { commandBodies } from '../commands/index.ts';

export interface RegisteredCommands {
  scope: 'guild' | 'global';
  guildId: string | undefined;
  applicationId: string;
  names: string[];
}

export async function registerCommands(
  config: Pick<AppConfig, 'DISCORD_TOKEN' | 'DISCORD_API_URL' | 'DISCORD_GUILD_ID'>,
  logger: Logger = log(),
): Promise<RegisteredCommands> {
  if (!config.DISCORD_TOKEN) {
    throw new ComicMasterError(
      'discord_token_missing',
      'DISCORD_TOKEN is not set: commands cannot be registered.',
    );
  }
  const rest = new REST({ api: config.DISCORD_API_URL }).setToken(config.DISCORD_TOKEN);
  const guildId = config.DISCORD_GUILD_ID;
  try {
    const application = (await rest.get(Routes.currentApplication())) as RESTGetCurrentApplicationResult;
    const route = guildId
      ? Routes.applicationGuildCommands(application.id, guildId)
      : Routes.applicationCommands(application.id);
    const registered = (await rest.put(route, {
      body: commandBodies(),
    })) as RESTPutAPIApplicationCommandsResult;
    const result: RegisteredCommands = {
      scope: guildId ? 'guild' : 'global',
      guildId,
      applicationId: application.id,
      names: registered.map((c) => c.name),
    };
    logger.info(result, 'slash commands registered');
    return result;
  } catch (error) {
    throw new UpstreamError(
      'discord',
      `Discord refused the command registration${guildId ? ` for guild ${guildId}` : ''}.`,
      {
        cause: error,
        operatorMessage: `registering commands failed: ${error instanceof Error ? error.message : String(error)}`,
        retryable: false,
      },
    );
  } finally {
    rest.clearHashSweeper();
    rest.clearHandlerSweeper();
  }
}
