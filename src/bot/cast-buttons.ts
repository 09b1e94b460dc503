/**
 * "Save to cast" buttons on a comic's storyboard message: one per character the script agent invented
 * (cast members that are not guild characters). The custom id carries the comic id and the cast
 * index, so a button posted before a restart still works. A click creates the guild character with
 * the script's appearance tags, owned by the member who clicked; a second click says it exists.
 */
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  MessageFlags,
  type ButtonInteraction,
} from 'discord.js';
import { z } from 'zod';
import type { ComicScript } from '../agents/script-schema.ts';
import { unsavedCastMembers, saveCastMember } from '../characters/save-from-comic.ts';
import { listCharacters } from '../characters/repository.ts';
import type { Db } from '../db/client.ts';
import { getComic } from '../db/comics.ts';
import type { Comic } from '../db/schema.ts';
import { ComicMasterError, InputError, userMessageOf } from '../errors.ts';
import type { BotDeps } from './deps.ts';

export const CAST_BUTTON_PREFIX = 'cast';
/** Discord: at most 5 buttons in a row and 5 rows (25 buttons) in a message. */
const BUTTONS_PER_ROW = 5;
const MAX_BUTTONS = 25;
/** Discord's limit on a button label. */
const LABEL_MAX = 80;

/** `cast:<comic uuid>:<index>`: 43–45 characters, well under Discord's 100. */
export function castButtonId(comicId: string, index: number): string {
  return `${CAST_BUTTON_PREFIX}:${comicId}:${index}`;
}

const CastButtonId = z
  .string()
  .max(100)
  .transform((id) => id.split(':'))
  .pipe(
    z.tuple([
      z.literal(CAST_BUTTON_PREFIX),
      z.uuid(),
      z
        .string()
        .regex(/^\d{1,2}$/)
        .transform(Number),
    ]),
  );

export function isCastButton(customId: string): boolean {
  return customId.startsWith(`${CAST_BUTTON_PREFIX}:`);
}

/** The storyboard's button rows: empty when every cast member is already a guild character. */
export async function castButtonRows(
  db: Db,
  comic: Pick<Comic, 'id' | 'guildId'> & { script: ComicScript | null },
): Promise<ActionRowBuilder<ButtonBuilder>[]> {
  if (!comic.guildId || !comic.script) return [];
  const unsaved = unsavedCastMembers(comic.script, await listCharacters(db, comic.guildId)).slice(
    0,
    MAX_BUTTONS,
  );
  const rows: ActionRowBuilder<ButtonBuilder>[] = [];
  unsaved.forEach(({ index, member }, i) => {
    if (i % BUTTONS_PER_ROW === 0) rows.push(new ActionRowBuilder<ButtonBuilder>());
    rows
      .at(-1)!
      .addComponents(
        new ButtonBuilder()
          .setCustomId(castButtonId(comic.id, index))
          .setStyle(ButtonStyle.Secondary)
          .setEmoji('➕')
          .setLabel(`Save ${member.name} to cast`.slice(0, LABEL_MAX)),
      );
  });
  return rows;
}

export async function handleCastButton(interaction: ButtonInteraction, deps: BotDeps): Promise<void> {
  const logger = deps.logger.child({ component: 'cast-buttons', interactionId: interaction.id });
  try {
    const parsed = CastButtonId.safeParse(interaction.customId);
    if (!parsed.success) throw new InputError('That button is not one of mine any more.');
    const [, comicId, index] = parsed.data;
    const comic = await getComic(deps.db, comicId);
    if (!comic || comic.guildId !== interaction.guildId)
      throw new InputError('That comic is gone, so its characters cannot be saved from it.');
    const result = await saveCastMember(deps.db, comic, index, interaction.user.id);
    const { character } = result;
    const content = result.created
      ? `✅ **${character.name}** is in the cast now (${character.appearance.join(', ')}). Stories that name ${character.name} will draw them the same way; \`/character edit\` changes the look.`
      : `**${character.name}** is already in this server's cast (owned by <@${character.ownerId}>); nothing changed.`;
    await interaction.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } });
    if (result.created)
      logger.info(
        { comicId, characterId: character.id, userId: interaction.user.id },
        'cast member saved from a comic',
      );
  } catch (error) {
    const expected = error instanceof ComicMasterError;
    logger[expected ? 'info' : 'error'](
      { err: error, customId: interaction.customId },
      'save-to-cast button failed',
    );
    if (!interaction.replied && !interaction.deferred) {
      await interaction
        .reply({ content: `⚠️ ${userMessageOf(error)}`, flags: MessageFlags.Ephemeral })
        .catch(() => undefined);
    }
  }
}
