/**
 * `/comic new | show | cancel | export` — the definition Discord shows, and the option schemas the handlers
 * parse with. The handlers that run the comic flow live elsewhere.
 */
import { InteractionContextType, SlashCommandBuilder } from 'discord.js';
import { z } from 'zod';
import { LIMITS } from '../agents/script-schema.ts';
import { MODEL_FAMILIES } from '../comic/recipe.ts';

export const PROMPT_MAX_LENGTH = 2000;
export const STYLE_MAX_LENGTH = 100;
export const COMIC_ID_MAX_LENGTH = 64;

const MODEL_LABELS: Record<(typeof MODEL_FAMILIES)[number], string> = {
  illustrious: 'Illustrious (anime, tag prompts)',
  noobai: 'NoobAI (anime, tag prompts)',
  flux: 'FLUX (natural-language prompts)',
  'flux-schnell': 'FLUX.1 schnell (fast drafts)',
  flux2: 'FLUX.2 dev (best prompt following, drawn lettering)',
  sdxl: 'SDXL 1.0 base (general illustration)',
  pony: 'Pony Diffusion V6 XL (cartoon/anime, tag prompts)',
  playground: 'Playground v2.5 (vivid, painterly)',
  'sd35-large': 'SD 3.5 Large (render only)',
  'sd35-medium': 'SD 3.5 Medium (render only)',
  ponyv7: 'Pony V7 / AuraFlow (experimental)',
};

export const comicCommand = new SlashCommandBuilder()
  .setName('comic')
  .setDescription('Make a comic together')
  .setContexts(InteractionContextType.Guild)
  .addSubcommand((sub) =>
    sub
      .setName('new')
      .setDescription('Write and draw a new comic from a story prompt')
      .addStringOption((o) =>
        o
          .setName('prompt')
          .setDescription('What the story is about')
          .setRequired(true)
          .setMinLength(1)
          .setMaxLength(PROMPT_MAX_LENGTH),
      )
      .addIntegerOption((o) =>
        o
          .setName('pages')
          .setDescription('Number of pages')
          .setMinValue(LIMITS.pages.min)
          .setMaxValue(LIMITS.pages.max),
      )
      .addIntegerOption((o) =>
        o
          .setName('panels')
          .setDescription('Panels per page')
          .setMinValue(LIMITS.panelsPerPage.min)
          .setMaxValue(LIMITS.panelsPerPage.max),
      )
      .addStringOption((o) =>
        o
          .setName('style')
          .setDescription("One of this server's styles")
          .setAutocomplete(true)
          .setMaxLength(STYLE_MAX_LENGTH),
      )
      .addStringOption((o) =>
        o
          .setName('model')
          .setDescription('Image model family')
          .addChoices(...MODEL_FAMILIES.map((family) => ({ name: MODEL_LABELS[family], value: family }))),
      )
      .addBooleanOption((o) => o.setName('rtl').setDescription('Read right to left (manga order)'))
      .addStringOption((o) =>
        o
          .setName('lettering')
          .setDescription(
            'Who letters the balloons: overlaid on the art (default), or drawn by the model (FLUX.2 only)',
          )
          .addChoices(
            { name: 'Overlay (lettered on the page)', value: 'overlay' },
            { name: 'Drawn by the model (FLUX.2 only)', value: 'model' },
          ),
      ),
  )
  .addSubcommand((sub) =>
    sub
      .setName('show')
      .setDescription('Show a comic and where it is')
      .addStringOption((o) =>
        o.setName('id').setDescription('The comic id').setRequired(true).setMaxLength(COMIC_ID_MAX_LENGTH),
      ),
  )
  .addSubcommand((sub) =>
    sub
      .setName('cancel')
      .setDescription('Stop a comic that is still being made (yours, or any with Manage Messages)')
      .addStringOption((o) =>
        o.setName('id').setDescription('The comic id').setRequired(true).setMaxLength(COMIC_ID_MAX_LENGTH),
      ),
  )
  .addSubcommand((sub) =>
    sub
      .setName('export')
      .setDescription('Get a finished comic as one file: a print PDF or a CBZ for comic readers')
      .addStringOption((o) =>
        o.setName('id').setDescription('The comic id').setRequired(true).setMaxLength(COMIC_ID_MAX_LENGTH),
      )
      .addStringOption((o) =>
        o
          .setName('format')
          .setDescription('The file format')
          .setRequired(true)
          .addChoices(
            { name: 'PDF (print, 300 dpi)', value: 'pdf' },
            { name: 'CBZ (comic reader apps, with ComicInfo.xml)', value: 'cbz' },
          ),
      ),
  );

export const ComicNewOptions = z.object({
  prompt: z.string().trim().min(1, 'write a story prompt').max(PROMPT_MAX_LENGTH),
  pages: z.number().int().min(LIMITS.pages.min).max(LIMITS.pages.max).optional(),
  panels: z.number().int().min(LIMITS.panelsPerPage.min).max(LIMITS.panelsPerPage.max).optional(),
  style: z
    .string()
    .trim()
    .max(STYLE_MAX_LENGTH)
    .optional()
    .transform((v) => (v === '' ? undefined : v)),
  model: z.enum(MODEL_FAMILIES).optional(),
  rtl: z.boolean().optional(),
  lettering: z.enum(['overlay', 'model']).optional(),
});
export type ComicNewOptions = z.infer<typeof ComicNewOptions>;

const comicId = z.string().trim().min(1, 'give the comic id').max(COMIC_ID_MAX_LENGTH);
export const ComicShowOptions = z.object({ id: comicId });
export type ComicShowOptions = z.infer<typeof ComicShowOptions>;
export const ComicCancelOptions = z.object({ id: comicId });
export type ComicCancelOptions = z.infer<typeof ComicCancelOptions>;
export const ComicExportOptions = z.object({ id: comicId, format: z.enum(['pdf', 'cbz']) });
export type ComicExportOptions = z.infer<typeof ComicExportOptions>;

/** Autocomplete of `style`: the text typed so far (may be empty). */
export const StyleAutocompleteQuery = z.string().max(STYLE_MAX_LENGTH).catch('');
