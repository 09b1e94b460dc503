import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.ts';
import { namesInStory, writeTemplateScript } from '../src/agents/template-writer.ts';
import { ComicScript, LIMITS, type ComicScript as Script } from '../src/agents/script-schema.ts';

const README_STORY = 'A retired robot opens a noodle bar on Mars and its first customer is a lost astronaut';

const lighthouse =
  'In the old lighthouse, Mara finds a map to a sunken city. Her rival Jonas wants it too. ' +
  'They fight on the cliffs during the storm at midnight. Mara wins and sails away at dawn.';

const STORIES = [
  README_STORY,
  lighthouse,
  'a cat eats soup',
  '!!!',
  'word '.repeat(700).trim(),
  'Detective Kim searches Tokyo for a missing dragon, but the dragon is hiding in her apartment.',
  'Le chat mange la soupe à Paris et le chien attend dehors.',
  '🚀🌕 a rocket to the moon 🌝',
  'The rain falls; the river rises; nobody comes.',
  'An old wizard and a young witch open a bakery in Paris, but a grumpy dragon wants all the bread, so they bake him a cake. ' +
    'The dragon cries. Then the dragon opens his own bakery until the whole town smells of cinnamon.',
  'Aiko, a shy student, finds a ghost in the school library when the lights go out.',
];

const panelsOf = (s: Script) => s.pages.flatMap((p) => p.panels);
const SMALL_ENDINGS =
  /\b(a|an|the|of|on|in|at|to|and|or|for|with|by|its|his|her|their|retired|old|lost|young)$/iu;

describe('writeTemplateScript: the README first impression', () => {
  const script = writeTemplateScript({ story: README_STORY });
  const panels = panelsOf(script);

  it('casts the robot and the astronaut, and keeps Mars a setting', () => {
    expect(script.cast).toHaveLength(2);
    const [robot, astronaut] = script.cast;
    expect(robot?.role).toBe('a retired robot');
    expect(robot?.appearance).toEqual(expect.arrayContaining(['robot', 'metal body', 'glowing blue eyes']));
    expect(astronaut?.name).toBe('The Astronaut');
    expect(astronaut?.role).toBe('a lost astronaut');
    expect(astronaut?.appearance).toContain('white spacesuit');
    expect(script.cast.map((c) => c.name.toLowerCase())).not.toContain('mars');
    expect(panels[0]?.setting).toBe('a small noodle bar on Mars');
  });

  it('tells the story in beats instead of repeating the prompt', () => {
    const captions = panels.map((p) => p.caption).filter((c): c is string => c !== null);
    expect(captions[0]).toBe('A retired robot opens a noodle bar on Mars.');
    expect(captions).toContain('Its first customer is a lost astronaut.');
    expect(new Set(captions).size).toBe(captions.length);
    for (const panel of panels) {
      expect(panel.action.toLowerCase()).not.toContain(README_STORY.toLowerCase());
      expect(panel.caption?.toLowerCase() ?? '').not.toContain(README_STORY.toLowerCase());
      expect(words(panel.caption ?? '')).toBeLessThanOrEqual(20);
    }
  });

  it('gives both characters lines, a surprise and a sound effect', () => {
    const balloons = panels.flatMap((p) => p.balloons);
    const speakers = new Set(balloons.map((b) => b.speaker));
    expect(speakers).toEqual(new Set(script.cast.map((c) => c.name)));
    expect(balloons.some((b) => b.kind === 'shout')).toBe(true);
    expect(new Set(balloons.map((b) => b.text)).size).toBe(balloons.length);
    expect(balloons.map((b) => b.text)).not.toContain('Call me Mars.');
    expect(panels.some((p) => p.sfx !== null)).toBe(true);
    // Everyone who speaks is on the panel they speak in.
    for (const panel of panels) {
      const present = new Set(panel.characters.map((c) => c.name));
      for (const b of panel.balloons)
        expect(present.has(b.speaker), `${b.speaker} in "${panel.action}"`).toBe(true);
    }
  });

  it('puts whoever speaks first on the left, where the first balloon is read', () => {
    for (const panel of panelsOf(writeTemplateScript({ story: README_STORY, pages: 2, panelsPerPage: 6 }))) {
      const first = panel.balloons[0];
      if (!first || panel.characters.length < 2) continue;
      expect(panel.characters.find((c) => c.name === first.speaker)?.position, panel.action).toBe('left');
    }
  });

  it('has a short title that does not end on a dangling word', () => {
    expect(script.title).toBe('The Noodle Bar on Mars');
  });

  it('lets time pass over the arc', () => {
    expect(new Set(panels.map((p) => p.lighting)).size).toBeGreaterThan(1);
  });

  it('is deterministic: the same request gives the same script', () => {
    expect(writeTemplateScript({ story: README_STORY })).toEqual(script);
    expect(writeTemplateScript({ story: `${README_STORY}.` })).not.toEqual(script);
  });
});

function words(text: string): number {
  return text.trim() === '' ? 0 : text.trim().split(/\s+/).length;
}

describe('writeTemplateScript: any story, any size', () => {
  it('writes a valid script for every pages × panels combination and every story', () => {
    for (let pages = LIMITS.pages.min; pages <= LIMITS.pages.max; pages++) {
      for (let panels = LIMITS.panelsPerPage.min; panels <= LIMITS.panelsPerPage.max; panels++) {
        for (const text of STORIES) {
          const label = `${pages}×${panels} for "${text.slice(0, 24)}"`;
          const script = writeTemplateScript({ story: text, pages, panelsPerPage: panels });
          expect(ComicScript.safeParse(script).success, label).toBe(true);
          expect(script.pages).toHaveLength(pages);
          expect(script.pages.every((p) => p.panels.length === panels)).toBe(true);
          expect(script.cast.length, label).toBeLessThanOrEqual(3);
          expect(script.title, label).not.toMatch(SMALL_ENDINGS);
          const all = panelsOf(script);
          const captions = all.map((p) => p.caption).filter((c): c is string => c !== null);
          expect(new Set(captions).size, `${label}: ${captions.join(' | ')}`).toBe(captions.length);
          const lines = all.flatMap((p) => p.balloons.map((b) => b.text));
          expect(new Set(lines).size, label).toBe(lines.length);
          expect(all[0]?.caption, label).not.toBe(text.trim().length > 120 ? text.trim() : '\u0000');
        }
      }
    }
  });

  it('splits sentences and clauses into separate beats', () => {
    const script = writeTemplateScript({ story: STORIES[9] ?? '', pages: 2, panelsPerPage: 6 });
    const captions = panelsOf(script).flatMap((p) => (p.caption ? [p.caption] : []));
    expect(captions[0]).toBe('An old wizard and a young witch open a bakery in Paris.');
    expect(captions).toContain('But a grumpy dragon wants all the bread.');
    expect(captions).toContain('So they bake him a cake.');
    expect(script.cast.map((c) => c.role)).toEqual(['an old wizard', 'a young witch', 'a grumpy dragon']);
    expect(panelsOf(script)[0]?.setting).toBe('a small bakery in Paris');
  });

  it("casts the story's named characters, with their nouns, and tells its ending last", () => {
    const script = writeTemplateScript({ story: lighthouse, pages: 1, panelsPerPage: 5 });
    expect(script.cast.map((c) => c.name)).toEqual(['Mara', 'Jonas']);
    expect(script.cast[1]?.role).toBe('a rival');
    expect(script.cast[0]?.appearance.length).toBeGreaterThanOrEqual(3);
    expect(script.title).toBe('The Old Lighthouse');
    const panels = panelsOf(script);
    expect(panels[0]?.shot).toBe('establishing');
    expect(panels[0]?.setting).toBe('the old lighthouse');
    expect(panels[0]?.caption).toContain('Mara finds a map');
    expect(panels.at(-1)?.caption).toBe('Mara wins and sails away at dawn.');
    expect(panels.some((p) => p.balloons.some((b) => b.kind === 'shout' && b.speaker === 'Mara'))).toBe(true);
    expect(panels.map((p) => p.action).join(' ')).not.toContain('Jonas Jonas');
  });

  it('reads an apposition and a name after a noun as one character', () => {
    const aiko = writeTemplateScript({ story: STORIES[10] ?? '', pages: 1, panelsPerPage: 4 });
    expect(aiko.cast.map((c) => [c.name, c.role])).toEqual([
      ['Aiko', 'a shy student'],
      ['The Ghost', 'a ghost'],
    ]);
    const kim = writeTemplateScript({ story: STORIES[5] ?? '', pages: 1, panelsPerPage: 4 });
    expect(kim.cast.map((c) => c.role)).toEqual(['a detective', 'a missing dragon']);
    expect(kim.cast[0]?.name).toBe('Kim');
    expect(panelsOf(kim)[0]?.setting).toBe('Tokyo');
  });

  it('invents one neutral hero when the story names nobody', () => {
    const script = writeTemplateScript({
      story: 'The rain falls; the river rises; nobody comes.',
      pages: 1,
      panelsPerPage: 4,
    });
    expect(script.cast.map((c) => c.name)).toEqual(['The Hero']);
    expect(script.cast[0]?.appearance.length).toBeGreaterThanOrEqual(4);
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
    expect(script.cast[0]).toEqual(cast[0]);
    expect(script.cast.map((c) => c.role)).toEqual(['pilot', 'a robot']);
    expect(panelsOf(script).flatMap((p) => p.characters.map((c) => c.name))).toContain('Captain Zed');
  });

  it('finds names mid-sentence and repeated, but not places', () => {
    expect(namesInStory('Then the dog barked. Suddenly Rex ran to Paris. Rex slept.')).toEqual(['Rex']);
    expect(namesInStory('A robot lands on Mars and meets Zara near Olympus Mons.')).toEqual(['Zara']);
  });

  it('rejects an empty story with a clear message', () => {
    expect(() => writeTemplateScript({ story: '' })).toThrow(InputError);
  });
});
