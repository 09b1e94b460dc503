import { z } from 'zod';
import { ComicScript } from '../agents/script-schema.ts';
import { ComicMasterError, InputError } from '../errors.ts';
import { familyProfile } from './families.ts';
import { naturalPositive } from './prompts/natural.ts';
import {
  findCastMember,
  inferGender,
  isCountTag,
  stripQuotedSpeech,
  type Scene,
  type SceneCharacter,
} from './prompts/scene.ts';
import { tagNegative, tagPositive } from './prompts/tags.ts';
import { phrasePositive } from './prompts/phrases.ts';
import { ModelFamily, RenderRecipe, type DrawnText, type LoraRef } from './recipe.ts';
import { seedFor } from './seed.ts';

/**
 * Turns one panel of a ComicScript into a RenderRecipe. Deterministic code, not the LLM: the same
 * input always gives the same recipe, so a stored recipe is the whole truth about its image.
 */

/** SDXL's trained buckets (about one megapixel each); FLUX renders these sizes just as well. */
export const BUCKETS: ReadonlyArray<{ width: number; height: number }> = [
  { width: 1024, height: 1024 },
  { width: 1152, height: 896 },
  { width: 896, height: 1152 },
  { width: 1216, height: 832 },
  { width: 832, height: 1216 },
  { width: 1344, height: 768 },
  { width: 768, height: 1344 },
  { width: 1536, height: 640 },
  { width: 640, height: 1536 },
];

/**
 * The bucket whose aspect is nearest the frame's. Compared in log-aspect space, so 2:1 and 1:2 are
 * equally far from square; the frame is then filled by an attention crop.
 */
export function nearestBucket(width: number, height: number): { width: number; height: number } {
  if (!(width > 0 && height > 0) || !Number.isFinite(width) || !Number.isFinite(height)) {
    throw new InputError(`A panel frame needs a positive width and height (got ${width}×${height}).`);
  }
  const target = Math.log(width / height);
  let best = BUCKETS[0]!;
  let bestDistance = Infinity;
  for (const b of BUCKETS) {
    const d = Math.abs(Math.log(b.width / b.height) - target);
    if (d < bestDistance - 1e-12) {
      best = b;
      bestDistance = d;
    }
  }
  return { ...best };
}

const StyleInput = z.object({
  trigger: z.string().trim().min(1).max(80),
  lora: z.object({
    name: z.string().min(1),
    strength: z.number(),
    artifactKey: z.string().min(1).nullable(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .nullable()
      .optional(),
  }),
});

const CharacterLoraInput = z.object({
  name: z.string().min(1),
  strength: z.number(),
  trigger: z.string().trim().min(1).max(80),
  artifactKey: z.string().min(1).nullable(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable()
    .optional(),
});

export const BuildRecipeInput = z.object({
  comicId: z.string().min(1).max(64),
  script: ComicScript,
  /** 1-based. */
  page: z.number().int().min(1),
  /** 1-based, within the page. */
  panel: z.number().int().min(1),
  /** 0 for the first render; each re-roll adds one. */
  attempt: z.number().int().min(0),
  /** The panel's frame on the page, for the aspect. */
  frame: z.object({ width: z.number().positive(), height: z.number().positive() }),
  family: ModelFamily,
  style: StyleInput.nullable().optional(),
  /** Keyed by cast name (case-insensitive). */
  characterLoras: z.record(z.string(), CharacterLoraInput).optional(),
  /** True outside age-restricted channels: adds rating tags and the NSFW negative. */
  safe: z.boolean(),
  candidates: z.number().int().min(1).max(4).optional(),
  /**
   * The panel's balloons, caption and sound effect are "drawn by the model": on a family that paints
   * legible text (FLUX.2) they go into the prompt and the recipe's drawnText; elsewhere this is
   * ignored and the page assembler letters the panel as usual.
   */
  drawnText: z.boolean().optional(),
});
export type BuildRecipeInput = z.input<typeof BuildRecipeInput>;

function lookupCharacterLora(
  loras: Record<string, z.infer<typeof CharacterLoraInput>> | undefined,
  name: string,
): z.infer<typeof CharacterLoraInput> | undefined {
  if (!loras) return undefined;
  const key = name.trim().toLowerCase();
  const hit = Object.entries(loras).find(([k]) => k.trim().toLowerCase() === key);
  return hit?.[1];
}

/** A panel's lettering in reading order: balloons, then the caption, then the sound effect. */
function drawnTextOf(panel: ComicScript['pages'][number]['panels'][number]): DrawnText[] {
  const out: DrawnText[] = panel.balloons.map((b) => ({ kind: b.kind, speaker: b.speaker, text: b.text }));
  if (panel.caption) out.push({ kind: 'caption', speaker: null, text: panel.caption });
  if (panel.sfx) out.push({ kind: 'sfx', speaker: null, text: panel.sfx });
  return out;
}

export function buildRecipe(raw: BuildRecipeInput): RenderRecipe {
  const parsed = BuildRecipeInput.safeParse(raw);
  if (!parsed.success) {
    throw new InputError('The panel could not be turned into a render recipe: its input is invalid.', {
      cause: parsed.error,
      operatorMessage: `buildRecipe input invalid: ${z.prettifyError(parsed.error)}`,
    });
  }
  const input = parsed.data;
  const { script } = input;

  const page = script.pages[input.page - 1];
  if (!page)
    throw new InputError(`The comic has ${script.pages.length} page(s); there is no page ${input.page}.`);
  const panel = page.panels[input.panel - 1];
  if (!panel) {
    throw new InputError(
      `Page ${input.page} has ${page.panels.length} panel(s); there is no panel ${input.panel}.`,
    );
  }

  const profile = familyProfile(input.family);
  const loras: LoraRef[] = [];
  const addLora = (
    l: { name: string; strength: number; artifactKey: string | null; sha256?: string | null | undefined },
    trigger: string,
  ) => {
    // One file once: two characters sharing a LoRA must not patch the model twice.
    if (loras.some((x) => x.name === l.name)) return;
    loras.push({
      name: l.name,
      strength: l.strength,
      artifactKey: l.artifactKey,
      trigger,
      sha256: l.sha256 ?? null,
    });
  };
  if (input.style) addLora(input.style.lora, input.style.trigger);

  const characters: SceneCharacter[] = panel.characters.map((pc) => {
    // The script schema guarantees every panel character is in the cast.
    const member = findCastMember(script.cast, pc.name);
    const appearance = member?.appearance ?? [];
    const lora = lookupCharacterLora(input.characterLoras, pc.name);
    if (lora) addLora(lora, lora.trigger);
    return {
      name: member?.name ?? pc.name,
      appearance: appearance.filter((tag) => !isCountTag(tag)),
      trigger: lora?.trigger ?? null,
      pose: pc.pose,
      expression: pc.expression,
      position: pc.position,
      gender: inferGender(appearance),
    };
  });

  const scene: Scene = {
    styleTrigger: input.style?.trigger ?? null,
    characters,
    shot: panel.shot,
    angle: panel.angle,
    setting: panel.setting,
    time: panel.time,
    lighting: panel.lighting,
    action: panel.action,
    safe: input.safe,
  };

  const drawn = input.drawnText && profile.drawsText ? drawnTextOf(panel) : undefined;
  const size = nearestBucket(input.frame.width, input.frame.height);
  const recipe = {
    version: 1 as const,
    family: input.family,
    vPrediction: profile.vPrediction,
    models: profile.models,
    positive:
      profile.promptStyle === 'tags'
        ? tagPositive(scene, profile)
        : profile.promptStyle === 'phrases'
          ? phrasePositive(scene, profile)
          : naturalPositive(scene, drawn ?? []),
    // Families sampled without CFG (FLUX) have an empty negative list, so this gives ''.
    negative: tagNegative(scene, profile),
    loras,
    width: size.width,
    height: size.height,
    sampler: profile.sampler,
    scheduler: profile.scheduler,
    steps: profile.steps,
    cfg: profile.cfg,
    guidance: profile.guidance,
    seed: seedFor(input.comicId, input.page, input.panel, input.attempt),
    candidates: input.candidates ?? 1,
    controlNet: null,
    ...(drawn ? { drawnText: drawn } : {}),
    panel: {
      comicId: input.comicId,
      page: input.page,
      panel: input.panel,
      attempt: input.attempt,
      shot: panel.shot,
      angle: panel.angle,
      setting: panel.setting,
      // The storyboard draws this; quoted speech is the balloons' job.
      action: stripQuotedSpeech(panel.action),
      characters: characters.map((c) => ({ name: c.name, position: c.position })),
    },
  };

  const checked = RenderRecipe.safeParse(recipe);
  if (!checked.success) {
    throw new ComicMasterError(
      'recipe_invalid',
      'This panel could not be prepared for rendering (its prompt or settings are out of bounds).',
      {
        cause: checked.error,
        operatorMessage: `buildRecipe produced an invalid recipe for ${input.comicId} p${input.page} #${input.panel}: ${z.prettifyError(checked.error)}`,
      },
    );
  }
  return checked.data;
}
