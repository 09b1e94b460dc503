import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { type Comic, styles } from '../../db/schema.ts';
import { InputError } from '../../errors.ts';
import type { ModelFamily } from '../recipe.ts';
import type { BuildRecipeInput } from '../prompt-builder.ts';

/** LoRA strength for a guild style (the evaluation grid's sweet spot for most style LoRAs). */
export const STYLE_LORA_STRENGTH = 0.8;

export interface ResolvedStyle {
  /** What buildRecipe takes as `style`; null for the base model's own look. */
  style: NonNullable<BuildRecipeInput['style']> | null;
  /** The model family to render with: a style's LoRA only works on the family it was trained for. */
  family: ModelFamily;
}

/**
 * The comic's style, looked up when the script is written (so a style retired since is noticed
 * before GPU time is spent). A guild comic names one of the guild's ready styles; a local comic
 * (no guild) names a LoRA by its trigger word, as `comicmaster comic --style` does.
 */
export async function resolveComicStyle(
  db: Db,
  comic: Comic,
  options: { style: string | null; modelFamily: ModelFamily },
): Promise<ResolvedStyle> {
  if (options.style === null) return { style: null, family: options.modelFamily };
  if (comic.guildId === null) {
    return {
      style: {
        trigger: options.style,
        lora: { name: `${options.style}.safetensors`, strength: STYLE_LORA_STRENGTH, artifactKey: null },
      },
      family: options.modelFamily,
    };
  }
  const [row] = await db
    .select()
    .from(styles)
    .where(
      and(
        eq(styles.guildId, comic.guildId),
        sql`lower(${styles.name}) = lower(${options.style})`,
        eq(styles.status, 'ready'),
      ),
    );
  if (!row || row.loraArtifactKey === null) {
    throw new InputError(
      `The style “${options.style}” is not available on this server (any more). Pick another one.`,
      {
        operatorMessage: `comic ${comic.id}: style ${options.style} of guild ${comic.guildId} not found or not ready`,
      },
    );
  }
  const fileName = row.loraArtifactKey.split('/').pop() ?? `${row.name}.safetensors`;
  return {
    style: {
      trigger: row.trigger,
      // The strength the evaluation recommended for the winning checkpoint (0.8 for a style added by hand).
      lora: { name: fileName, strength: row.defaultStrength, artifactKey: row.loraArtifactKey },
    },
    family: row.modelFamily,
  };
}
