import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { ComicScript } from '../../src/agents/script-schema.ts';
import type { BuildRecipeInput } from '../../src/comic/prompt-builder.ts';

/**
 * Golden files: the exact recipe / graph we expect, committed and reviewed by a person. A change in
 * output fails the test; when the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff.
 */
export function expectGolden(name: string, actual: unknown): void {
  const path = fileURLToPath(new URL(`./${name}.json`, import.meta.url));
  const text = `${JSON.stringify(actual, null, 2)}\n`;
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(path, text);
    return;
  }
  if (!existsSync(path))
    throw new Error(`golden file ${name}.json is missing; run with UPDATE_GOLDEN=1 and review it`);
  expect(JSON.parse(text)).toEqual(JSON.parse(readFileSync(path, 'utf8')));
}

export function loadObjectInfoFixture(): unknown {
  return JSON.parse(readFileSync(fileURLToPath(new URL('./object_info.json', import.meta.url)), 'utf8'));
}

/** A two-page script exercising counts, cast, shots, angles, dialogue and an empty establishing shot. */
export const SCRIPT: ComicScript = {
  title: 'Rooftop Run',
  logline: 'A courier races a storm across the rooftops, chased by her old rival.',
  cast: [
    {
      name: 'Mira',
      role: 'courier',
      appearance: ['1girl', 'short red hair', 'green eyes', 'yellow raincoat', 'messenger bag'],
    },
    {
      name: 'Oskar',
      role: 'rival courier',
      appearance: ['old man', 'grey beard', 'black trench coat', 'goggles'],
    },
    { name: 'Pip', role: 'delivery drone', appearance: ['small round robot', 'blue lens', 'propellers'] },
  ],
  pages: [
    {
      panels: [
        {
          shot: 'establishing',
          angle: 'birds-eye',
          setting: 'rain-soaked neon city rooftops',
          time: 'night',
          lighting: 'neon glow, heavy rain',
          action: 'Storm clouds roll over the skyline.',
          characters: [],
          balloons: [],
          caption: 'Midnight. The last delivery.',
          sfx: 'KRAKOOM',
        },
        {
          shot: 'cowboy',
          angle: 'from-below',
          setting: 'edge of a rooftop',
          time: 'night',
          lighting: 'rim light',
          action: 'Mira leaps the gap between two buildings. Oskar yells "You will never make it!"',
          characters: [
            { name: 'Mira', pose: 'jumping, arms outstretched', expression: 'determined', position: 'left' },
            { name: 'oskar', pose: 'pointing', expression: 'angry', position: 'right' },
          ],
          balloons: [
            { speaker: 'Oskar', text: 'You will never make it!', kind: 'shout' },
            { speaker: 'Mira', text: 'Watch me, old man.', kind: 'speech' },
          ],
          caption: null,
          sfx: 'WHOOSH',
        },
      ],
    },
    {
      panels: [
        {
          shot: 'close-up',
          angle: 'eye-level',
          setting: 'stairwell door',
          time: 'night',
          lighting: 'flickering fluorescent light',
          action: 'Mira grins at Pip.',
          characters: [
            { name: 'Mira', pose: 'leaning on the door', expression: 'grin', position: 'centre' },
            { name: 'Pip', pose: 'hovering', expression: 'blinking', position: 'right' },
          ],
          balloons: [{ speaker: 'Pip', text: 'Package secured. Beep.', kind: 'speech' }],
          caption: null,
          sfx: null,
        },
      ],
    },
  ],
};

export const STYLE = {
  trigger: 'inkpunk_style',
  lora: {
    name: 'style/ink.safetensors',
    strength: 0.8,
    artifactKey: 'loras/guild-1/ink-v3.safetensors',
    sha256: '9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a',
  },
};

export const CHARACTER_LORAS = {
  Mira: {
    name: 'chars/hero.safetensors',
    strength: 0.9,
    trigger: 'mira_rr',
    artifactKey: 'loras/guild-1/mira.safetensors',
  },
};

/** Page 1 panel 2: two people, dialogue, a style and a character LoRA, in a tall frame. */
export function goldenInput(family: BuildRecipeInput['family']): BuildRecipeInput {
  return {
    comicId: 'cm_golden_0001',
    script: SCRIPT,
    page: 1,
    panel: 2,
    attempt: 0,
    frame: { width: 930, height: 1400 },
    family,
    style: STYLE,
    characterLoras: CHARACTER_LORAS,
    safe: true,
    candidates: 2,
  };
}
