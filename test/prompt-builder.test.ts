import { describe, expect, it } from 'vitest';
import { ComicScript } from '../src/agents/script-schema.ts';
import { FAMILIES } from '../src/comic/families.ts';
import { buildRecipe, nearestBucket } from '../src/comic/prompt-builder.ts';
import { isCountTag } from '../src/comic/prompts/scene.ts';
import { seedFor } from '../src/comic/seed.ts';
import { InputError } from '../src/errors.ts';
import { goldenInput, SCRIPT, STYLE } from './golden/golden.ts';

const tagsOf = (prompt: string) => prompt.split(',').map((t) => t.trim());

describe('nearestBucket', () => {
  it.each([
    [1000, 1000, 1024, 1024],
    [1300, 1000, 1152, 896], // 1.3 is nearer 1.286 than 1.462 in log space
    [1400, 1000, 1216, 832], // 1.4 is nearer 1.462 than 1.286
    [1000, 1500, 832, 1216],
    [1988, 1000, 1344, 768],
    [3000, 1000, 1536, 640],
    [500, 5000, 640, 1536], // beyond the widest bucket: the widest one
    [768, 1344, 768, 1344],
  ])('frame %i×%i → %i×%i', (w, h, bw, bh) => {
    expect(nearestBucket(w, h)).toEqual({ width: bw, height: bh });
  });

  it('treats portrait and landscape symmetrically', () => {
    const l = nearestBucket(1700, 1000);
    const p = nearestBucket(1000, 1700);
    expect(p).toEqual({ width: l.height, height: l.width });
  });

  it('refuses an empty frame', () => {
    expect(() => nearestBucket(0, 100)).toThrow(InputError);
  });
});

describe('seedFor', () => {
  it('is deterministic, 48-bit, and changes with every part of the tuple', () => {
    const s = seedFor('c1', 1, 2, 0);
    expect(seedFor('c1', 1, 2, 0)).toBe(s);
    expect(Number.isSafeInteger(s)).toBe(true);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(s).toBeLessThan(2 ** 48);
    const others = [
      seedFor('c2', 1, 2, 0),
      seedFor('c1', 2, 2, 0),
      seedFor('c1', 1, 3, 0),
      seedFor('c1', 1, 2, 1),
    ];
    expect(new Set([s, ...others]).size).toBe(5);
  });
});

describe('buildRecipe', () => {
  it('a re-roll changes only the seed and attempt, and is itself reproducible', () => {
    const first = buildRecipe(goldenInput('illustrious'));
    const reroll = buildRecipe({ ...goldenInput('illustrious'), attempt: 1 });
    expect(reroll.seed).not.toBe(first.seed);
    expect(buildRecipe({ ...goldenInput('illustrious'), attempt: 1 })).toEqual(reroll);
    expect({ ...reroll, seed: first.seed, panel: { ...reroll.panel, attempt: 0 } }).toEqual(first);
  });

  it.each(['illustrious', 'noobai', 'flux'] as const)('%s: the style trigger comes first', (family) => {
    const r = buildRecipe(goldenInput(family));
    expect(r.positive.startsWith(STYLE.trigger)).toBe(true);
  });

  it.each(['illustrious', 'noobai', 'flux'] as const)(
    '%s: each present character appearance is in the prompt verbatim',
    (family) => {
      const r = buildRecipe(goldenInput(family));
      for (const name of ['Mira', 'Oskar']) {
        const member = SCRIPT.cast.find((c) => c.name === name)!;
        // Count tags ("1girl") describe the whole picture and are recomputed per panel.
        for (const tag of member.appearance.filter((t) => !isCountTag(t))) expect(r.positive).toContain(tag);
      }
      // Pip is not in this panel.
      expect(r.positive).not.toContain('blue lens');
    },
  );

  it.each(['illustrious', 'noobai', 'flux'] as const)(
    '%s: no dialogue, caption or sfx reaches the image prompt',
    (family) => {
      const r = buildRecipe(goldenInput(family));
      const panel = SCRIPT.pages[0]!.panels[1]!;
      for (const b of panel.balloons) expect(r.positive).not.toContain(b.text.replace(/[!.]$/, ''));
      expect(r.positive).not.toContain('never make it');
      expect(r.positive).not.toContain('WHOOSH');
      expect(r.positive).not.toContain('Midnight');
    },
  );

  it('SDXL families: tags with quality, counts, shot and angle; lettering words in the negative', () => {
    const r = buildRecipe(goldenInput('illustrious'));
    const tags = tagsOf(r.positive);
    expect(tags.slice(0, 5)).toEqual([
      'inkpunk_style',
      'masterpiece',
      'best quality',
      'amazing quality',
      'absurdres',
    ]);
    expect(tags).toEqual(expect.arrayContaining(['1girl', '1boy', 'cowboy shot', 'from below', 'mira_rr']));
    for (const word of ['speech bubble', 'text', 'watermark', 'signature'])
      expect(tagsOf(r.negative)).toContain(word);
    expect(r.vPrediction).toBe(false);
    expect(r.models).toEqual({ kind: 'checkpoint', checkpoint: 'illustriousXL_v01.safetensors' });
    expect([r.sampler, r.scheduler, r.steps, r.cfg, r.guidance]).toEqual([
      'euler_ancestral',
      'normal',
      28,
      5.5,
      null,
    ]);
  });

  it('NoobAI is flagged v-pred and uses its own quality tags and sampler', () => {
    const r = buildRecipe(goldenInput('noobai'));
    expect(r.vPrediction).toBe(true);
    expect(tagsOf(r.positive)).toEqual(expect.arrayContaining(['very aesthetic', 'newest']));
    expect([r.sampler, r.scheduler, r.steps, r.cfg]).toEqual(['euler', 'normal', 28, 4.5]);
  });

  it('FLUX: natural language, no negative, guidance 3.5 at cfg 1', () => {
    const r = buildRecipe(goldenInput('flux'));
    expect(r.positive).toMatch(
      /^inkpunk_style\. A comic book panel, medium-long \(cowboy\) shot from below: /,
    );
    expect(r.positive).toContain(
      'On the left, Mira (mira_rr, short red hair, green eyes, yellow raincoat, messenger bag), jumping',
    );
    expect(r.negative).toBe('');
    expect([r.sampler, r.scheduler, r.steps, r.cfg, r.guidance]).toEqual(['euler', 'simple', 20, 1, 3.5]);
    expect(r.models.kind).toBe('flux');
  });

  it('safe mode adds rating tags and the NSFW negative; age-restricted channels do without', () => {
    const safe = buildRecipe(goldenInput('illustrious'));
    const open = buildRecipe({ ...goldenInput('illustrious'), safe: false });
    expect(tagsOf(safe.positive)).toEqual(expect.arrayContaining(['general', 'safe']));
    expect(tagsOf(safe.negative)).toEqual(expect.arrayContaining(['nsfw', 'nude']));
    expect(tagsOf(open.positive)).not.toContain('general');
    expect(tagsOf(open.negative)).not.toContain('nsfw');
    expect(tagsOf(open.negative)).toContain('speech bubble');
  });

  it('counts people the Danbooru way, and says "no humans" for an empty establishing shot', () => {
    const empty = buildRecipe({ ...goldenInput('illustrious'), panel: 1 });
    expect(tagsOf(empty.positive)).toEqual(
      expect.arrayContaining(['no humans', 'scenery', 'wide shot', 'from above']),
    );
    const withRobot = buildRecipe({ ...goldenInput('noobai'), page: 2, panel: 1 });
    expect(tagsOf(withRobot.positive)).toEqual(
      expect.arrayContaining(['1girl', '1other', 'close-up', 'portrait']),
    );
    const twoWomen = ComicScript.parse({
      ...SCRIPT,
      cast: [...SCRIPT.cast, { name: 'Lena', role: 'dispatcher', appearance: ['woman', 'glasses'] }],
      pages: [
        {
          panels: [
            {
              ...SCRIPT.pages[0]!.panels[1]!,
              characters: [
                { name: 'Mira', pose: '', expression: '', position: 'left' },
                { name: 'Lena', pose: '', expression: '', position: 'right' },
              ],
            },
          ],
        },
      ],
    });
    const r = buildRecipe({ ...goldenInput('illustrious'), script: twoWomen, page: 1, panel: 1 });
    expect(tagsOf(r.positive)).toContain('2girls');
    expect(tagsOf(r.positive)).not.toContain('1girl');
  });

  it('stacks the style LoRA and the LoRAs of present characters only, with strengths and triggers', () => {
    const r = buildRecipe(goldenInput('illustrious'));
    expect(r.loras.map((l) => [l.name, l.strength, l.trigger])).toEqual([
      ['style/ink.safetensors', 0.8, 'inkpunk_style'],
      ['chars/hero.safetensors', 0.9, 'mira_rr'],
    ]);
    const noMira = buildRecipe({ ...goldenInput('illustrious'), panel: 1 });
    expect(noMira.loras.map((l) => l.name)).toEqual(['style/ink.safetensors']);
    expect(noMira.positive).not.toContain('mira_rr');
  });

  it('fills the panel brief for the storyboard renderer and sizes from the frame', () => {
    const r = buildRecipe(goldenInput('flux'));
    expect(r.panel).toEqual({
      comicId: 'cm_golden_0001',
      page: 1,
      panel: 2,
      attempt: 0,
      shot: 'cowboy',
      angle: 'from-below',
      setting: 'edge of a rooftop',
      action: 'Mira leaps the gap between two buildings. Oskar yells',
      characters: [
        { name: 'Mira', position: 'left' },
        { name: 'Oskar', position: 'right' },
      ],
    });
    expect([r.width, r.height, r.candidates]).toEqual([832, 1216, 2]);
  });

  it('refuses a page or panel that does not exist, with a clear message', () => {
    expect(() => buildRecipe({ ...goldenInput('flux'), page: 3 })).toThrow(/there is no page 3/);
    expect(() => buildRecipe({ ...goldenInput('flux'), panel: 7 })).toThrow(/there is no panel 7/);
    expect(() => buildRecipe({ ...goldenInput('flux'), attempt: -1 })).toThrow(InputError);
  });

  it('every family profile names its default models', () => {
    expect(FAMILIES.flux.models).toEqual({
      kind: 'flux',
      unet: 'flux1-dev.safetensors',
      weightDtype: 'fp8_e4m3fn',
      clipT5: 't5xxl_fp8_e4m3fn.safetensors',
      clipL: 'clip_l.safetensors',
      vae: 'ae.safetensors',
    });
    expect(FAMILIES.noobai.models).toEqual({
      kind: 'checkpoint',
      checkpoint: 'noobaiXLVpred_v10.safetensors',
    });
  });
});
