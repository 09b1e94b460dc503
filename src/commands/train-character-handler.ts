/**
 * `/train character name:<cast member> base images… | zip | from_channel`: a character LoRA, trained
 * the way `/train style` trains a style (src/commands/train-handler.ts trainFromImages: download,
 * dataset checks, trainings row, `train` job, status message, then the same evaluation and vote),
 * with the seed research's character presets:
 * - at least 8 pictures (fewer is refused with how many more), 20–40 recommended (a warning below 20);
 * - the trigger is the character's token (src/characters/token.ts), not a word the member picks;
 * - captions describe everything except the character's constant features: its appearance tags are
 *   stripped, so the LoRA ties them to the token instead of to words prompts would have to repeat.
 * When the vote closes, the winner becomes the character's LoRA (src/characters/trained-lora.ts).
 */
import type { ChatInputCommandInteraction } from 'discord.js';
import type { BotDeps } from '../bot/deps.ts';
import { requireCharacter } from '../characters/repository.ts';
import { characterToken } from '../characters/token.ts';
import { InputError } from '../errors.ts';
import { optionValues, parseOptions } from './options.ts';
import { TrainCharacterOptions } from './train.ts';
import { trainFromImages } from './train-handler.ts';

/** The seed research: 8–15 pictures is the floor for a recognisable character, 20–40 is steadier. */
export const MIN_CHARACTER_IMAGES = 8;
export const RECOMMENDED_CHARACTER_IMAGES = 20;

export async function trainCharacter(interaction: ChatInputCommandInteraction, deps: BotDeps): Promise<void> {
  const options = parseOptions(TrainCharacterOptions, optionValues(interaction), 'train character');
  if (!interaction.guildId)
    throw new InputError('Characters are trained in a server channel, not in direct messages.');
  // Read before deferring: an unknown name is answered privately, with nothing downloaded.
  const character = await requireCharacter(deps.db, interaction.guildId, options.name);
  await trainFromImages(interaction, deps, {
    kind: 'character',
    name: character.name,
    trigger: characterToken(character),
    base: options.base,
    fromChannel: options.from_channel,
    noun: 'character',
    // The character was found above; one deleted in the meantime is caught when the vote closes.
    checkName: async () => undefined,
    minImages: MIN_CHARACTER_IMAGES,
    recommendedImages: RECOMMENDED_CHARACTER_IMAGES,
    stripFromCaptions: character.appearance,
    extraConfig: { characterId: character.id, appearance: character.appearance },
  });
}
