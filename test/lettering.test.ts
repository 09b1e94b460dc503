import { describe, expect, it } from 'vitest';
import type { Panel } from '../src/agents/script-schema.ts';
import { FONTS, renderText, verifyFonts } from '../src/comic/fonts.ts';
import type { Frame } from '../src/comic/layout.ts';
import {
  coverage,
  DEFAULT_MAX_COVERAGE,
  letterFrame,
  LetteringError,
  splitText,
  type LetterablePanel,
  type PlacedBalloon,
  type Rect,
} from '../src/comic/lettering.ts';

const BORDER = 7;
const cast: Panel['characters'] = [
  { name: 'Mina', pose: 'pointing', expression: 'alarmed', position: 'left' },
  { name: 'Oskar', pose: 'crouching', expression: 'wary', position: 'right' },
];

function panel(p: Partial<LetterablePanel>): LetterablePanel {
  return { characters: cast, balloons: [], caption: null, sfx: null, ...p };
}

const inside = (a: Rect, b: Rect) =>
  a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height;

function expectWellFormed(frame: Frame, balloons: PlacedBalloon[]) {
  const live: Rect = {
    x: frame.x + BORDER,
    y: frame.y + BORDER,
    width: frame.width - 2 * BORDER,
    height: frame.height - 2 * BORDER,
  };
  for (const b of balloons) {
    expect(inside(b.box, live), `${b.kind} "${b.text}" inside its frame`).toBe(true);
    expect(inside(b.textBox, b.box), `text of "${b.text}" inside its balloon`).toBe(true);
    if (b.ellipse) {
      // Every corner of the text block lies inside the balloon's oval.
      const { cx, cy, rx, ry } = b.ellipse;
      for (const [x, y] of [
        [b.textBox.x, b.textBox.y],
        [b.textBox.x + b.textBox.width, b.textBox.y],
        [b.textBox.x, b.textBox.y + b.textBox.height],
        [b.textBox.x + b.textBox.width, b.textBox.y + b.textBox.height],
      ] as const) {
        expect(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2).toBeLessThanOrEqual(1.0001);
      }
    }
    if (b.tail) {
      expect(b.tail.x).toBeGreaterThanOrEqual(live.x);
      expect(b.tail.x).toBeLessThanOrEqual(live.x + live.width);
      expect(b.tail.y).toBeGreaterThanOrEqual(live.y);
      expect(b.tail.y).toBeLessThanOrEqual(live.y + live.height);
    }
  }
  const shapes = balloons.filter((b) => b.kind !== 'sfx');
  for (const a of shapes)
    for (const b of shapes)
      if (a !== b) expect(overlap(a.box, b.box), `"${a.text}" / "${b.text}"`).toBe(false);
  expect(coverage(frame, balloons)).toBeLessThanOrEqual(DEFAULT_MAX_COVERAGE);
}

const overlap = (a: Rect, b: Rect) =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('lettering', () => {
  it('uses the comic fonts, not the DejaVu fallback', async () => {
    await expect(verifyFonts()).resolves.toBeUndefined();
    expect(FONTS.dialogue.file).toMatch(/ComicNeue_700Bold\.ttf$/);
    expect(FONTS.shout.file).toMatch(/Bangers_400Regular\.ttf$/);
    const comic = await renderText('HELLO THERE', { role: 'dialogue', size: 40 });
    const bangers = await renderText('HELLO THERE', { role: 'shout', size: 40 });
    expect(comic.width).not.toBe(bangers.width);
  });

  it('letters every kind of balloon, caption and sfx inside the frame', async () => {
    const frame: Frame = { index: 2, x: 100, y: 1067, width: 872, height: 923 };
    const { balloons, svg, overlays } = await letterFrame(
      frame,
      panel({
        caption: 'Meanwhile, below deck.',
        balloons: [
          { speaker: 'Mina', text: 'Did you hear that?', kind: 'speech' },
          { speaker: 'Oskar', text: 'Quiet. They are listening.', kind: 'whisper' },
          { speaker: 'Mina', text: 'GET DOWN!', kind: 'shout' },
        ],
        sfx: 'Bang',
      }),
      { border: BORDER },
    );
    expect(balloons.map((b) => b.kind)).toEqual(['caption', 'speech', 'whisper', 'shout', 'sfx']);
    expectWellFormed(frame, balloons);
    expect(overlays.length).toBe(5);
    expect(svg).toContain('stroke-dasharray'); // the whisper's dashed outline
    expect(svg).toContain('<polygon'); // the shout's spikes
    expect(svg).toContain('fill="#fff4b8"'); // the caption box
    // Tails point toward the speaker's side: Mina stands left, Oskar right.
    const [, speech, whisper] = balloons;
    expect(speech!.tail!.x).toBeLessThan(speech!.ellipse!.cx);
    expect(whisper!.tail!.x).toBeGreaterThan(whisper!.ellipse!.cx);
  });

  it('draws thought balloons as clouds with a trail of bubbles instead of a tail', async () => {
    const frame: Frame = { index: 0, x: 0, y: 0, width: 900, height: 900 };
    const { balloons, svg } = await letterFrame(
      frame,
      panel({
        balloons: [{ speaker: 'Oskar', text: 'Something is out there on the water...', kind: 'thought' }],
      }),
      { border: BORDER },
    );
    expectWellFormed(frame, balloons);
    expect((svg.match(/<circle/g) ?? []).length).toBeGreaterThan(12);
    expect(svg).not.toContain('<path');
  });

  it('places balloons in reading order: first at the top left, or the top right for manga', async () => {
    const frame: Frame = { index: 0, x: 0, y: 0, width: 1788, height: 900 };
    const p = panel({
      characters: [
        { name: 'Mina', pose: '', expression: '', position: 'centre' },
        { name: 'Oskar', pose: '', expression: '', position: 'centre' },
      ],
      balloons: [
        { speaker: 'Mina', text: 'Who goes there?', kind: 'speech' },
        { speaker: 'Oskar', text: 'Only me.', kind: 'speech' },
      ],
    });
    const ltr = (await letterFrame(frame, p, { border: BORDER })).balloons;
    const rtl = (await letterFrame(frame, p, { border: BORDER, rtl: true })).balloons;
    expectWellFormed(frame, ltr);
    expectWellFormed(frame, rtl);
    expect(ltr[0]!.box.x).toBeLessThan(ltr[1]!.box.x);
    expect(ltr[0]!.box.y).toBeLessThanOrEqual(ltr[1]!.box.y);
    expect(rtl[0]!.box.x).toBeGreaterThan(rtl[1]!.box.x);
    expect(rtl[0]!.box.y).toBeLessThanOrEqual(rtl[1]!.box.y);
  });

  it('shrinks long dialogue, then splits it, and never overflows or covers too much', async () => {
    const words =
      'we never should have come back here after dark because the old keeper always said the sea remembers'.split(
        ' ',
      );
    const text = (k: number) =>
      Array.from({ length: 25 }, (_, i) => words[(i * 7 + k) % words.length]).join(' ') + '.';
    const p = panel({
      balloons: [
        { speaker: 'Mina', text: text(1), kind: 'speech' },
        { speaker: 'Oskar', text: text(2), kind: 'speech' },
        { speaker: 'Mina', text: text(3), kind: 'speech' },
      ],
    });
    const roomy = await letterFrame(
      { index: 0, x: 0, y: 0, width: 1788, height: 1000 },
      panel({ balloons: [p.balloons[0]!] }),
    );
    // A short full-width tier: three 25-word balloons do not fit side by side or stacked.
    const frame: Frame = { index: 1, x: 100, y: 100, width: 1788, height: 700 };
    const { balloons } = await letterFrame(frame, p, { border: BORDER });
    expectWellFormed(frame, balloons);
    // Smaller than the comfortable size a single balloon gets...
    expect(balloons[0]!.fontSize).toBeLessThan(roomy.balloons[0]!.fontSize);
    // ...and split into more balloons, with every word still there, in order.
    expect(balloons.length).toBeGreaterThan(3);
    expect(balloons.some((b) => b.continued)).toBe(true);
    expect(balloons.map((b) => b.text).join(' ')).toBe(p.balloons.map((b) => b.text.toUpperCase()).join(' '));
  });

  it('refuses with a clear message when the words cannot fit legibly', async () => {
    const frame: Frame = { index: 3, x: 0, y: 0, width: 500, height: 500 };
    const long =
      'this is far too much dialogue for such a tiny frame and it keeps going on and on without end';
    const err = await letterFrame(
      frame,
      panel({
        balloons: [
          { speaker: 'Mina', text: long, kind: 'speech' },
          { speaker: 'Oskar', text: long, kind: 'speech' },
        ],
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LetteringError);
    expect((err as LetteringError).userMessage).toMatch(/Panel 4 has more words than its frame can hold/);
  });

  it('splits text at a sentence end near the middle', () => {
    expect(splitText('Run to the boat. I will hold them off here!')).toEqual([
      'Run to the boat.',
      'I will hold them off here!',
    ]);
    expect(splitText('one two three four')).toEqual(['one two', 'three four']);
  });
});
