import { describe, expect, it } from 'vitest';
import type { Shot } from '../src/agents/script-schema.ts';
import { DEFAULT_GEOMETRY, layoutPage, type Frame } from '../src/comic/layout.ts';

const MIXES: Shot[][] = [
  ['establishing'],
  ['wide', 'close-up'],
  ['establishing', 'medium', 'close-up'],
  ['close-up', 'close-up', 'wide', 'medium'],
  ['establishing', 'medium', 'medium', 'close-up', 'full'],
  ['wide', 'close-up', 'medium', 'extreme-close-up', 'cowboy', 'full'],
  ['medium', 'medium', 'medium', 'medium', 'medium', 'medium'],
];

const g = DEFAULT_GEOMETRY;
const overlaps = (a: Frame, b: Frame) =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('layoutPage', () => {
  for (const shots of MIXES) {
    for (const rtl of [false, true]) {
      it(`${shots.length} panels (${shots.join(', ')}) ${rtl ? 'RTL' : 'LTR'}`, () => {
        const frames = layoutPage(shots, { rtl });
        expect(frames).toHaveLength(shots.length);
        frames.forEach((f, i) => {
          expect(f.index).toBe(i);
          for (const v of [f.x, f.y, f.width, f.height]) expect(Number.isInteger(v)).toBe(true);
          expect(f.x).toBeGreaterThanOrEqual(g.margin);
          expect(f.y).toBeGreaterThanOrEqual(g.margin);
          expect(f.x + f.width).toBeLessThanOrEqual(g.width - g.margin);
          expect(f.y + f.height).toBeLessThanOrEqual(g.height - g.margin);
          expect(f.width).toBeGreaterThan(300);
          expect(f.height).toBeGreaterThan(300);
        });
        for (const a of frames) for (const b of frames) if (a !== b) expect(overlaps(a, b)).toBe(false);

        // Equal gutters: frames sharing a tier are one gutter apart, tiers are one gutter apart.
        const tiers = [...new Set(frames.map((f) => f.y))].sort((a, b) => a - b);
        for (let t = 0; t < tiers.length; t++) {
          const row = frames.filter((f) => f.y === tiers[t]).sort((a, b) => a.x - b.x);
          expect(new Set(row.map((f) => f.height)).size).toBe(1);
          for (let k = 1; k < row.length; k++)
            expect(row[k]!.x - (row[k - 1]!.x + row[k - 1]!.width)).toBe(g.gutter);
          // The panels fill the live area edge to edge.
          expect(row[0]!.x).toBe(g.margin);
          expect(row.at(-1)!.x + row.at(-1)!.width).toBe(g.width - g.margin);
          if (t > 0) {
            const above = frames.find((f) => f.y === tiers[t - 1])!;
            expect(tiers[t]! - (above.y + above.height)).toBe(g.gutter);
          }
        }

        // Reading order: top to bottom, then left-to-right (or right-to-left for manga) within a tier.
        for (let k = 1; k < frames.length; k++) {
          const prev = frames[k - 1]!;
          const cur = frames[k]!;
          if (cur.y === prev.y) expect(rtl ? cur.x < prev.x : cur.x > prev.x).toBe(true);
          else expect(cur.y).toBeGreaterThan(prev.y);
        }
      });
    }

    it(`${shots.length} panels: RTL is the mirror of LTR`, () => {
      const ltr = layoutPage(shots);
      const rtl = layoutPage(shots, { rtl: true });
      rtl.forEach((f, i) => {
        const m = ltr[i]!;
        expect(f).toEqual({ ...m, x: g.width - m.x - m.width });
      });
    });
  }

  it('gives an establishing shot a full-width frame and lets close-ups share a tier', () => {
    const frames = layoutPage(['establishing', 'close-up', 'close-up', 'medium']);
    expect(frames[0]!.width).toBe(g.width - 2 * g.margin);
    expect(frames[1]!.y).toBe(frames[2]!.y);
    expect(frames[1]!.width).toBeLessThan(g.width - 2 * g.margin);
  });

  it('honours a custom page size and rejects impossible geometry', () => {
    const frames = layoutPage(['medium', 'medium'], { width: 1200, height: 1800, margin: 60, gutter: 30 });
    for (const f of frames) expect(f.x + f.width).toBeLessThanOrEqual(1140);
    expect(() => layoutPage(['medium'], { width: 300, height: 300, margin: 140 })).toThrow(/too small/);
    expect(() => layoutPage([])).toThrow(/got 0 shots/);
  });
});
