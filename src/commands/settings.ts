/**
 * `/settings show | set | test-prompts` — the definition Discord shows and the option schemas the
 * handler (src/commands/settings-handler.ts) parses with. Every member may look; only Manage Server
 * may change (checked by the handler, because `show` is for everyone).
 */
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { z } from 'zod';
import { FAMILIES } from '../comic/families.ts';
import { MODEL_FAMILIES, type ModelFamily } from '../comic/recipe.ts';
import { MAX_TEST_PROMPTS, TEST_PROMPT_MAX_LENGTH } from '../evaluation/plan.ts';

export const SETTING_LIMITS = {
  comicsPerMember: { min: 1, max: 10 },
  comicsPerServer: { min: 1, max: 50 },
  voteHours: { min: 1, max: 168 },
} as const;

/**
 * The families a server may pick as its default: experimental ones are left out (they are refused
 * unless an operator enables them, and a server default should never be refused).
 */
export const DEFAULT_MODEL_CHOICES: readonly ModelFamily[] = MODEL_FAMILIES.filter(
  (family) => !FAMILIES[family].experimental,
);

export const MATURE_CONTENT_CHOICES = ['block', 'nsfw_channels_only'] as const;

/** Test prompt option names: prompt1 … prompt6. */
export const TEST_PROMPT_OPTION_NAMES = Array.from({ length: MAX_TEST_PROMPTS }, (_, i) => `prompt${i + 1}`);

export const settingsCommand = new SlashCommandBuilder()
  .setName('settings')
  .setDescription("This server's comic and training settings")
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) => sub.setName('show').setDescription("This server's settings"))
  .addSubcommand((sub) =>
    sub
      .setName('set')
      .setDescription('Change settings (Manage Server); give one or more')
      .addIntegerOption((o) =>
        o
          .setName('comics_per_member')
          .setDescription('Comics one member may have in the making at once')
          .setMinValue(SETTING_LIMITS.comicsPerMember.min)
          .setMaxValue(SETTING_LIMITS.comicsPerMember.max),
      )
      .addIntegerOption((o) =>
        o
          .setName('comics_per_server')
          .setDescription('Comics the whole server may have in the making at once')
          .setMinValue(SETTING_LIMITS.comicsPerServer.min)
          .setMaxValue(SETTING_LIMITS.comicsPerServer.max),
      )
      .addStringOption((o) =>
        o
          .setName('default_model')
          .setDescription('Model family /comic new uses when no model is given')
          .addChoices(
            ...DEFAULT_MODEL_CHOICES.map((family) => ({ name: FAMILIES[family].label, value: family })),
          ),
      )
      .addStringOption((o) =>
        o
          .setName('mature_content')
          .setDescription('Where unrestricted (not safe for work) renders may appear')
          .addChoices(
            { name: 'Nowhere: every render is kept safe for work', value: 'block' },
            { name: 'Only in age-restricted channels', value: 'nsfw_channels_only' },
          ),
      )
      .addIntegerOption((o) =>
        o
          .setName('vote_hours')
          .setDescription('How long a vote on trained checkpoints stays open')
          .setMinValue(SETTING_LIMITS.voteHours.min)
          .setMaxValue(SETTING_LIMITS.voteHours.max),
      )
      .addBooleanOption((o) =>
        o
          .setName('blind_votes')
          .setDescription('Label checkpoints A, B, C… in a random order instead of by epoch'),
      ),
  )
  .addSubcommand((sub) => {
    sub
      .setName('test-prompts')
      .setDescription('The scenes trainings are evaluated on (Manage Server); the trigger goes in front');
    for (const name of TEST_PROMPT_OPTION_NAMES) {
      sub.addStringOption((o) =>
        o
          .setName(name)
          .setDescription(`Test scene ${name.slice(6)}, without the trigger word`)
          .setMinLength(1)
          .setMaxLength(TEST_PROMPT_MAX_LENGTH),
      );
    }
    return sub.addBooleanOption((o) =>
      o.setName('reset').setDescription('Go back to the four built-in comic scenes'),
    );
  });

const count = (limits: { min: number; max: number }) => z.number().int().min(limits.min).max(limits.max);

export const SettingsSetOptions = z
  .object({
    comics_per_member: count(SETTING_LIMITS.comicsPerMember).optional(),
    comics_per_server: count(SETTING_LIMITS.comicsPerServer).optional(),
    default_model: z.enum(DEFAULT_MODEL_CHOICES as [ModelFamily, ...ModelFamily[]]).optional(),
    mature_content: z.enum(MATURE_CONTENT_CHOICES).optional(),
    vote_hours: count(SETTING_LIMITS.voteHours).optional(),
    blind_votes: z.boolean().optional(),
  })
  .strict()
  .refine((o) => Object.keys(o).length > 0, { message: 'give at least one setting to change' });
export type SettingsSetOptions = z.infer<typeof SettingsSetOptions>;

const testPrompt = z.string().trim().min(1, 'a test prompt cannot be empty').max(TEST_PROMPT_MAX_LENGTH);

export const SettingsTestPromptsOptions = z
  .object({
    ...Object.fromEntries(TEST_PROMPT_OPTION_NAMES.map((name) => [name, testPrompt.optional()])),
    reset: z.boolean().optional(),
  })
  .strict()
  .transform((o) => ({
    prompts: TEST_PROMPT_OPTION_NAMES.map((name) => (o as Record<string, string | undefined>)[name]).filter(
      (p): p is string => p !== undefined,
    ),
    reset: o.reset === true,
  }))
  .refine((o) => !(o.reset && o.prompts.length > 0), { message: 'either give prompts or reset, not both' })
  .refine((o) => o.reset || o.prompts.length > 0, { message: 'give at least one prompt, or reset:True' });
export type SettingsTestPromptsOptions = z.output<typeof SettingsTestPromptsOptions>;
