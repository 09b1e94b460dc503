import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { namesInStory, writeTemplateScript } from '../src/agents/template-writer.ts';
import { ComicScript, LIMITS } from '../src/agents/script-schema.ts';

const story =
  'In the old lighthouse, Mara finds a map to a sunken city. Her rival Jonas wants it too. ' +
  'They fight on the cliffs during the storm at midnight. Mara wins and sails away at dawn.';

describe('writeTemplateScript', () => {
  it('writes a valid script for every pages × panels combination', () => {
    for (let pages = LIMITS.pages.min; pages <= LIMITS.pages.max; pages++) {
      for (let panels = LIMITS.panelsPerPage.min; panels <= LIMITS.panelsPerPage.max; panels++) {
        for (const text of [story, 'a cat eats soup', '!!!', 'word '.repeat(700).trim()]) {
          const script = writeTemplateScript({ story: text, pages, panelsPerPage: panels });
          const parsed = ComicScript.safeParse(script);
          expect(parsed.success, `${pages}×${panels} for "${text.slice(0, 20)}"`).toBe(true);
          expect(script.pages).toHaveLength(pages);
          expect(script.pages.every((p) => p.panels.length === panels)).toBe(true);
        }
      }
    }
  });

  it('is deterministic: the same request gives the same script', () => {
    const a = writeTemplateScript({ story, pages: 3, panelsPerPage: 5 });
    const b = writeTemplateScript({ story, pages: 3, panelsPerPage: 5 });
    expect(b).toEqual(a);
    expect(writeTemplateScript({ story: 'Another tale of Kim.', pages: 3, panelsPerPage: 5 })).not.toEqual(a);
  });

  it("casts the story's named characters and uses the story's own words", () => {
    const script = writeTemplateScript({ story, pages: 1, panelsPerPage: 5 });
    expect(script.cast.map((c) => c.name)).toEqual(['Mara', 'Jonas']);
    expect(script.cast[0]?.appearance.length).toBeGreaterThanOrEqual(3);
    expect(script.title).toMatch(/Lighthouse/);
    const panels = script.pages.flatMap((p) => p.panels);
    expect(panels[0]?.shot).toBe('establishing');
    expect(panels[0]?.setting).toBe('the old lighthouse');
    expect(panels[0]?.caption).toContain('Mara finds a map');
    expect(panels.some((p) => p.balloons.some((b) => b.kind === 'shout' && b.speaker === 'Mara'))).toBe(true);
    expect(panels.map((p) => p.action).join(' ')).toContain('They fight on the cliffs');
    expect(panels[0]?.time).toBe('night');
  });

  it('falls back to a hero and a rival when the story names nobody', () => {
    const script = writeTemplateScript({
      story: 'a robot learns to paint in a quiet city',
      pages: 1,
      panelsPerPage: 4,
    });
    expect(script.cast.map((c) => c.name)).toEqual(['The Hero', 'The Rival']);
  });

  it('keeps a given cast verbatim and puts it first', () => {
    const cast = [
      { name: 'Captain Zed', role: 'pilot', appearance: ['buzz cut', 'eyepatch', 'orange flight suit'] },
    ];
    const script = writeTemplateScript({
      story: 'a robot learns to paint',
      pages: 1,
      panelsPerPage: 3,
      cast,
    });
    expect(script.cast).toEqual(cast);
    expect(script.pages[0]?.panels.flatMap((p) => p.characters.map((c) => c.name))).toContain('Captain Zed');
  });

  it('finds names mid-sentence and repeated, not sentence-opening words', () => {
    expect(namesInStory('Then the dog barked. Suddenly Rex ran to Paris. Rex slept.')).toEqual([
      'Rex',
      'Paris',
    ]);
  });

  it('rejects an empty story with a clear message', () => {
    expect(() => writeTemplateScript({ story: '' })).toThrow(InputError);
  });
});
