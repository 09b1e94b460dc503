import {
  ComicScript,
  LIMITS,
  type Angle,
  type Balloon,
  type CastMember,
  type Panel,
  type PanelCharacter,
  type Shot,
} from './script-schema.ts';
import { parseScriptRequest, type ScriptRequestInput } from './script-request.ts';

/**
 * The script writer used when no LLM is configured. It is deterministic (same request, same script)
 * and follows a classic five-beat structure, reusing the story's own words so the comic is about
 * what the person asked for. It is plain, not clever: its job is to make the whole flow work offline.
 */

/** Panels per page when the request leaves it open. */
export const TEMPLATE_DEFAULT_PANELS = 4;

type Beat = 'establishing' | 'introduction' | 'conflict' | 'climax' | 'resolution';
const FIVE_BEATS: readonly Beat[] = ['establishing', 'introduction', 'conflict', 'climax', 'resolution'];

/** Which beats a comic of n panels gets, in order; short comics keep the beginning, peak and end. */
function beatsFor(n: number): Beat[] {
  if (n === 1) return ['establishing'];
  if (n === 2) return ['establishing', 'resolution'];
  if (n === 3) return ['establishing', 'climax', 'resolution'];
  if (n === 4) return ['establishing', 'conflict', 'climax', 'resolution'];
  return Array.from(
    { length: n },
    (_, i) => FIVE_BEATS[Math.floor((i * FIVE_BEATS.length) / n)] ?? 'resolution',
  );
}

const FRAMING: Record<Beat, { shots: Shot[]; angles: Angle[] }> = {
  establishing: { shots: ['establishing', 'wide'], angles: ['birds-eye', 'eye-level'] },
  introduction: { shots: ['medium', 'cowboy'], angles: ['eye-level', 'from-below'] },
  conflict: { shots: ['cowboy', 'medium'], angles: ['over-the-shoulder', 'dutch'] },
  climax: { shots: ['close-up', 'full', 'extreme-close-up'], angles: ['from-below', 'dutch', 'worms-eye'] },
  resolution: { shots: ['wide', 'full'], angles: ['eye-level', 'from-above'] },
};

/** Words that start sentences with a capital letter but are not names. */
const NOT_NAMES = new Set(
  (
    'a an the and but or so then when while after before as at by for from in into of on onto over to under with ' +
    'he she it they we you i his her its their our my your this that these those there here one two three ' +
    'once suddenly finally meanwhile later soon now today tonight tomorrow yesterday every all some no yes ' +
    'what who why how where which if because until although though monday tuesday wednesday thursday friday ' +
    'saturday sunday january february march april may june july august september october november december ' +
    'god mr mrs ms dr sir lady lord captain'
  ).split(' '),
);

const HAIR = [
  'short black hair',
  'long red hair',
  'messy brown hair',
  'silver ponytail',
  'blonde bob cut',
  'spiky blue hair',
];
const EYES = ['green eyes', 'brown eyes', 'grey eyes', 'amber eyes', 'blue eyes', 'violet eyes'];
const BUILD = [
  'slim build',
  'athletic build',
  'tall and lanky',
  'broad shoulders',
  'short and stocky',
  'wiry build',
];
const OUTFIT = [
  'leather jacket',
  'long trench coat',
  'school uniform',
  'armoured vest',
  'hooded cloak',
  'mechanic overalls',
];
const PALETTE = [
  'red and black palette',
  'teal and orange palette',
  'purple and gold palette',
  'green and white palette',
  'navy and silver palette',
  'yellow and grey palette',
];
const ROLES = ['protagonist', 'rival', 'ally'];

/** A small stable hash (FNV-1a), so choices depend on the text and never on chance. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function pick<T>(list: readonly T[], seed: number): T {
  const item = list[seed % list.length];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

function words(text: string): string[] {
  return text.trim() === '' ? [] : text.trim().split(/\s+/);
}

/** At most n words, and at most maxChars characters, cut at a word boundary. */
function clip(text: string, maxWords: number, maxChars: number): string {
  let out = words(text).slice(0, maxWords).join(' ');
  while (out.length > maxChars) {
    const cut = out.lastIndexOf(' ', maxChars);
    out = cut > 0 ? out.slice(0, cut) : out.slice(0, maxChars);
  }
  return out.trim();
}

function sentencesOf(story: string): string[] {
  const found = story
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?…])\s+/)
    .map((s) => s.trim())
    .filter((s) => /[\p{L}\p{N}]/u.test(s));
  return found.length > 0 ? found : [story.trim()];
}

function titleCase(text: string): string {
  return text.replace(/[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu, (w) => w.charAt(0).toUpperCase() + w.slice(1));
}

function deriveTitle(sentences: string[]): string {
  const first = (sentences[0] ?? '').replace(/[^\p{L}\p{N}\s'’-]/gu, ' ');
  const title = clip(titleCase(first), 6, 80);
  return title === '' ? 'Untitled Story' : title;
}

/**
 * Capitalised words that look like names: those that appear mid-sentence, or that open a sentence
 * more than once. Ordered by first appearance, so the first named is the protagonist.
 */
export function namesInStory(story: string): string[] {
  const counts = new Map<string, { midSentence: boolean; seen: number; first: number }>();
  let position = 0;
  for (const sentence of sentencesOf(story)) {
    const tokens = sentence.split(/\s+/);
    tokens.forEach((token, index) => {
      const word = token.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '').replace(/['’]s$/u, '');
      position++;
      if (!/^\p{Lu}[\p{Ll}]+$/u.test(word) || word.length > 20 || NOT_NAMES.has(word.toLowerCase())) return;
      const entry = counts.get(word) ?? { midSentence: false, seen: 0, first: position };
      entry.seen++;
      if (index > 0) entry.midSentence = true;
      counts.set(word, entry);
    });
  }
  return [...counts.entries()]
    .filter(([, e]) => e.midSentence || e.seen > 1)
    .sort((a, b) => a[1].first - b[1].first)
    .map(([name]) => name);
}

function inventCastMember(name: string, index: number): CastMember {
  const h = hash(name);
  return {
    name,
    role: ROLES[index] ?? 'supporting character',
    appearance: [
      pick(HAIR, h),
      pick(EYES, h >>> 3),
      pick(BUILD, h >>> 6),
      pick(OUTFIT, h >>> 9),
      pick(PALETTE, h >>> 12),
    ],
  };
}

function buildCast(story: string, guildCast: CastMember[]): CastMember[] {
  const cast = guildCast.map((c) => ({ ...c, appearance: [...c.appearance] }));
  const taken = new Set(cast.map((c) => c.name.toLowerCase()));
  const derived = namesInStory(story).filter((n) => !taken.has(n.toLowerCase()));
  const invented = derived.length > 0 || cast.length > 0 ? derived.slice(0, 3) : ['The Hero', 'The Rival'];
  for (const name of invented) {
    if (cast.length >= LIMITS.castMax) break;
    cast.push(inventCastMember(name, cast.length));
  }
  return cast;
}

/** "in the old lighthouse" → "the old lighthouse": the first place the story names, if any. */
function deriveSetting(story: string, title: string): string {
  const match =
    /\b(?:in|at|on|inside|near|across|through)\s+((?:the|a|an)\s+[\p{L}'’-]+(?:\s+[\p{L}'’-]+){0,3})/iu.exec(
      story,
    );
  const place = match?.[1]?.replace(/[,.;:!?]+$/u, '');
  return clip(place ?? `the world of ${title}`, 12, 120);
}

function deriveTimeAndLight(story: string): { time: string; lighting: string } {
  const s = story.toLowerCase();
  if (/\b(night|midnight|moon|dark)\b/.test(s))
    return { time: 'night', lighting: 'cold moonlight, deep shadows' };
  if (/\b(dawn|sunrise|morning)\b/.test(s))
    return { time: 'early morning', lighting: 'soft golden sunrise light' };
  if (/\b(dusk|sunset|evening)\b/.test(s)) return { time: 'evening', lighting: 'warm orange sunset light' };
  if (/\b(storm|rain|thunder)\b/.test(s))
    return { time: 'stormy day', lighting: 'grey light, flashes of lightning' };
  return { time: 'day', lighting: 'clear daylight' };
}

interface StoryFacts {
  sentences: string[];
  title: string;
  setting: string;
  time: string;
  lighting: string;
  cast: CastMember[];
}

function balloon(speaker: string, text: string, kind: Balloon['kind']): Balloon {
  return { speaker, text: clip(text, Math.min(12, LIMITS.wordsPerBalloon), 120) || '...', kind };
}

/** The first few words of a sentence as a shout, without a dangling "the" or "at" at the end. */
function shoutFrom(sentence: string): string {
  const ws = words(sentence.replace(/[^\p{L}\p{N}\s'’-]/gu, ' ')).slice(0, 6);
  while (ws.length > 1 && NOT_NAMES.has((ws[ws.length - 1] ?? '').toLowerCase())) ws.pop();
  return `${ws.join(' ').toUpperCase() || 'NOW'}!`;
}

function onStage(
  name: string,
  position: PanelCharacter['position'],
  pose: string,
  expression: string,
): PanelCharacter {
  return { name, position, pose, expression };
}

function writePanel(beat: Beat, index: number, total: number, facts: StoryFacts): Panel {
  const sentence =
    facts.sentences[Math.floor((index * facts.sentences.length) / total)] ??
    facts.sentences[0] ??
    facts.title;
  const framing = FRAMING[beat];
  const hero = facts.cast[0]?.name;
  const rival = facts.cast[1]?.name;
  const action = clip(sentence, 40, 240) || facts.title;
  const base = {
    shot: pick(framing.shots, index),
    angle: pick(framing.angles, index),
    setting: facts.setting,
    time: facts.time,
    lighting: facts.lighting,
    action,
    sfx: null as string | null,
  };

  switch (beat) {
    case 'establishing':
      return {
        ...base,
        characters: hero ? [onStage(hero, 'centre', 'standing small in the distance', 'curious')] : [],
        balloons: [],
        caption: clip(sentence, LIMITS.wordsPerCaption - 5, 200) || null,
      };
    case 'introduction':
      return {
        ...base,
        characters: hero ? [onStage(hero, 'centre', 'stepping forward', 'determined')] : [],
        balloons: hero ? [balloon(hero, `Call me ${hero}.`, 'speech')] : [],
        caption: clip(sentence, LIMITS.wordsPerCaption - 5, 200) || null,
      };
    case 'conflict':
      return {
        ...base,
        characters: [
          ...(hero ? [onStage(hero, 'left', 'bracing', 'worried')] : []),
          ...(rival ? [onStage(rival, 'right', 'advancing', 'scowling')] : []),
        ],
        balloons: [
          ...(rival ? [balloon(rival, sentence, 'speech')] : []),
          ...(hero ? [balloon(hero, 'This ends now.', 'thought')] : []),
        ],
        caption: hero ? null : clip(sentence, LIMITS.wordsPerCaption - 5, 200) || null,
      };
    case 'climax':
      return {
        ...base,
        characters: [
          ...(hero ? [onStage(hero, rival ? 'left' : 'centre', 'lunging forward', 'fierce')] : []),
          ...(rival ? [onStage(rival, 'right', 'recoiling', 'shocked')] : []),
        ],
        balloons: hero ? [balloon(hero, shoutFrom(sentence), 'shout')] : [],
        caption: hero ? null : clip(sentence, LIMITS.wordsPerCaption - 5, 200) || null,
        sfx: 'WHAM!',
      };
    case 'resolution':
      return {
        ...base,
        characters: hero ? [onStage(hero, 'centre', 'standing tall', 'relieved smile')] : [],
        balloons: hero ? [balloon(hero, 'It is over. For now.', 'whisper')] : [],
        caption: clip(sentence, LIMITS.wordsPerCaption - 5, 200) || null,
      };
  }
}

/** Write a valid ComicScript from the request without any model. Same request → same script. */
export function writeTemplateScript(input: ScriptRequestInput): ComicScript {
  const request = parseScriptRequest(input);
  const pages = request.pages ?? 1;
  const panelsPerPage = request.panelsPerPage ?? TEMPLATE_DEFAULT_PANELS;
  const sentences = sentencesOf(request.story);
  const title = deriveTitle(sentences);
  const facts: StoryFacts = {
    sentences,
    title,
    setting: deriveSetting(request.story, title),
    ...deriveTimeAndLight(request.story),
    cast: buildCast(request.story, request.cast ?? []),
  };
  if (request.styleHint) facts.setting = clip(`${facts.setting}, ${request.styleHint}`, 30, 160);

  const total = pages * panelsPerPage;
  const beats = beatsFor(total);
  const script = {
    title,
    logline: clip(sentences.slice(0, 2).join(' '), 45, 300) || title,
    cast: facts.cast,
    pages: Array.from({ length: pages }, (_, p) => ({
      panels: Array.from({ length: panelsPerPage }, (_, q) => {
        const index = p * panelsPerPage + q;
        return writePanel(beats[index] ?? 'resolution', index, total, facts);
      }),
    })),
  };
  // The schema is the contract; a template bug must surface here, not three stages later.
  return ComicScript.parse(script);
}
