import { z } from 'zod';

/**
 * The comic script the script agent writes and everything downstream reads. Limits live here, in the
 * schema, so that no story prompt (and no LLM answer) can change them.
 *
 * Every field is required (optional values are `null`): OpenAI's strict json_schema mode needs that,
 * and it keeps the shape identical whichever server wrote it.
 */
export const LIMITS = {
  pages: { min: 1, max: 8 },
  panelsPerPage: { min: 1, max: 6 },
  castMax: 8,
  charactersPerPanel: 4,
  balloonsPerPanel: 3,
  wordsPerBalloon: 25,
  wordsPerCaption: 30,
  /** Balloons + caption together, so that lettering fits the frame. */
  wordsPerPanel: 50,
  appearanceTags: 12,
} as const;

export const SHOTS = [
  'extreme-close-up',
  'close-up',
  'medium',
  'cowboy',
  'full',
  'wide',
  'establishing',
] as const;
export const ANGLES = [
  'eye-level',
  'from-above',
  'from-below',
  'birds-eye',
  'worms-eye',
  'dutch',
  'over-the-shoulder',
] as const;
export const POSITIONS = ['left', 'centre', 'right'] as const;
export const BALLOON_KINDS = ['speech', 'thought', 'shout', 'whisper'] as const;

export const Shot = z.enum(SHOTS);
export const Angle = z.enum(ANGLES);
export const FramePosition = z.enum(POSITIONS);
export const BalloonKind = z.enum(BALLOON_KINDS);
export type Shot = z.infer<typeof Shot>;
export type Angle = z.infer<typeof Angle>;
export type FramePosition = z.infer<typeof FramePosition>;
export type BalloonKind = z.infer<typeof BalloonKind>;

export function countWords(text: string): number {
  const t = text.trim();
  return t === '' ? 0 : t.split(/\s+/).length;
}

const maxWords = (n: number) => (s: string) => countWords(s) <= n;

export const CastMember = z.object({
  name: z.string().trim().min(1).max(40),
  role: z.string().trim().min(1).max(80),
  /** Fixed visual appearance as short tags (hair, eyes, build, outfit, colours), reused verbatim per panel. */
  appearance: z.array(z.string().trim().min(1).max(40)).min(1).max(LIMITS.appearanceTags),
});
export type CastMember = z.infer<typeof CastMember>;

export const PanelCharacter = z.object({
  name: z.string().trim().min(1).max(40),
  pose: z.string().trim().max(80),
  expression: z.string().trim().max(60),
  position: FramePosition,
});
export type PanelCharacter = z.infer<typeof PanelCharacter>;

export const Balloon = z.object({
  speaker: z.string().trim().min(1).max(40),
  text: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .refine(maxWords(LIMITS.wordsPerBalloon), {
      message: `a balloon holds at most ${LIMITS.wordsPerBalloon} words`,
    }),
  kind: BalloonKind,
});
export type Balloon = z.infer<typeof Balloon>;

export const Panel = z
  .object({
    shot: Shot,
    angle: Angle,
    setting: z.string().trim().min(1).max(160),
    time: z.string().trim().max(60),
    lighting: z.string().trim().max(80),
    action: z.string().trim().min(1).max(240),
    characters: z.array(PanelCharacter).max(LIMITS.charactersPerPanel),
    balloons: z.array(Balloon).max(LIMITS.balloonsPerPanel),
    caption: z
      .string()
      .trim()
      .max(240)
      .refine(maxWords(LIMITS.wordsPerCaption), {
        message: `a caption holds at most ${LIMITS.wordsPerCaption} words`,
      })
      .nullable(),
    sfx: z.string().trim().max(24).nullable(),
  })
  .refine(
    (p) =>
      p.balloons.reduce((n, b) => n + countWords(b.text), 0) + countWords(p.caption ?? '') <=
      LIMITS.wordsPerPanel,
    { message: `a panel holds at most ${LIMITS.wordsPerPanel} words of dialogue and caption together` },
  );
export type Panel = z.infer<typeof Panel>;

export const Page = z.object({
  panels: z.array(Panel).min(LIMITS.panelsPerPage.min).max(LIMITS.panelsPerPage.max),
});
export type Page = z.infer<typeof Page>;

export const ComicScript = z
  .object({
    title: z.string().trim().min(1).max(80),
    logline: z.string().trim().min(1).max(300),
    cast: z.array(CastMember).max(LIMITS.castMax),
    pages: z.array(Page).min(LIMITS.pages.min).max(LIMITS.pages.max),
  })
  .superRefine((script, ctx) => {
    // Every character on a panel must be in the cast bible, so their appearance can be reused verbatim.
    const names = new Set(script.cast.map((c) => c.name.toLowerCase()));
    script.pages.forEach((page, pi) =>
      page.panels.forEach((panel, qi) =>
        panel.characters.forEach((ch, ci) => {
          if (!names.has(ch.name.toLowerCase())) {
            ctx.addIssue({
              code: 'custom',
              path: ['pages', pi, 'panels', qi, 'characters', ci, 'name'],
              message: `character "${ch.name}" is not in the cast`,
            });
          }
        }),
      ),
    );
  });
export type ComicScript = z.infer<typeof ComicScript>;
