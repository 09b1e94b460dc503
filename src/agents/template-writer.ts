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
import {
  ARCHETYPES,
  BUILD,
  EYES,
  FALLBACK_SETTINGS,
  HAIR,
  OUTFIT,
  PALETTE,
  type Archetype,
} from './template/lexicon.ts';
import {
  beatsOf,
  bare,
  clip,
  endOnAWord,
  hash,
  lookTags,
  mentionsIn,
  pick,
  placeOf,
  titleCase,
  withArticle,
  words,
  type Beat,
  type Mention,
  type Place,
} from './template/story.ts';

export { namesInStory } from './template/story.ts';

/**
 * The script writer used when no LLM is configured — the newcomer's first comic. It is deterministic
 * (same request, same script; the only "chance" is a hash of the story) and rule-based: it splits the
 * story into beats, casts the noun phrases and names that are people (a planet is a setting), and lays
 * the beats over a classic arc — establishing shot, introductions, the turn, a moment of surprise, a
 * resolution — filling extra panels with reactions, details and conversation, never repeating a line.
 */

/** Panels per page when the request leaves it open. */
export const TEMPLATE_DEFAULT_PANELS = 4;

/** Derived characters per comic: more than three strangers on a short page is a crowd, not a cast. */
const DERIVED_CAST_MAX = 3;
const CAPTION_MAX_WORDS = 20;

interface Character {
  member: CastMember;
  /** How narration names them mid-sentence: "Robo", "the astronaut". */
  ref: string;
  noun: string | null;
  archetype: Archetype | null;
  /** The beat that first mentions them, or -1 when the story never does (a guild character). */
  beat: number;
}

function nounTitle(noun: string): string {
  return titleCase(noun);
}

function neutralLook(seed: number, noun: string | null): string[] {
  return [
    ...(noun ? [noun] : []),
    pick(HAIR, seed),
    pick(EYES, seed >>> 3),
    pick(BUILD, seed >>> 6),
    pick(OUTFIT, seed >>> 9),
    pick(PALETTE, seed >>> 12),
  ];
}

function characterFromMention(
  mention: Mention,
  index: number,
  storySeed: number,
  taken: Set<string>,
): Character {
  const { archetype, noun } = mention;
  let name = mention.name;
  if (!name && archetype?.nicknames) {
    const start = (storySeed >>> 4) % archetype.nicknames.length;
    name =
      archetype.nicknames
        .map((_, k) => archetype.nicknames?.[(start + k) % archetype.nicknames.length] ?? '')
        .find((n) => n !== '' && !taken.has(n.toLowerCase())) ?? null;
  }
  if (!name && noun) name = `The ${nounTitle(noun)}`;
  name ??= index === 0 ? 'The Hero' : `Stranger ${index + 1}`;
  const role = noun
    ? withArticle([...mention.adjectives, noun].join(' '))
    : index === 0
      ? 'protagonist'
      : 'supporting character';
  const appearance = [
    ...(archetype ? archetype.appearance : neutralLook(hash(name) ^ storySeed, noun)),
    ...lookTags(mention.adjectives),
  ].slice(0, LIMITS.appearanceTags);
  return {
    member: { name, role: clip(role, 10, 80), appearance },
    ref: name.startsWith('The ') ? `the ${name.slice(4).toLowerCase()}` : name,
    noun,
    archetype,
    beat: mention.beat,
  };
}

function buildCast(beats: readonly Beat[], guildCast: readonly CastMember[], storySeed: number): Character[] {
  const cast: Character[] = guildCast.map((c) => {
    const archetype = ARCHETYPES.find((a) => c.role.toLowerCase().includes(a.noun)) ?? null;
    return {
      member: { ...c, appearance: [...c.appearance] },
      ref: c.name,
      noun: archetype?.noun ?? null,
      archetype,
      beat: -1,
    };
  });
  const taken = new Set(cast.map((c) => c.member.name.toLowerCase()));
  for (const mention of mentionsIn(beats)) {
    if (cast.length >= Math.max(DERIVED_CAST_MAX, guildCast.length) || cast.length >= LIMITS.castMax) break;
    if (mention.name && taken.has(mention.name.toLowerCase())) {
      const guild = cast.find((c) => c.member.name.toLowerCase() === mention.name?.toLowerCase());
      if (guild && guild.beat < 0) guild.beat = mention.beat;
      continue;
    }
    const character = characterFromMention(mention, cast.length, storySeed, taken);
    if (taken.has(character.member.name.toLowerCase())) continue;
    taken.add(character.member.name.toLowerCase());
    cast.push(character);
  }
  if (cast.length === 0) {
    const hero = characterFromMention(
      { name: 'The Hero', archetype: null, noun: null, adjectives: [], beat: 0, order: 0 },
      0,
      storySeed,
      taken,
    );
    cast.push(hero);
  }
  return cast;
}

// ---------------------------------------------------------------------------------------------
// Plain language helpers

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function sentence(text: string, end = '.'): string {
  const t = text.trim();
  if (t === '') return t;
  return /[.!?…]$/u.test(t) ? capitalise(t) : `${capitalise(t)}${end}`;
}

/** Narration, at most CAPTION_MAX_WORDS words, cut so it never ends on a dangling word. */
function narration(text: string): string {
  if (!/[\p{L}\p{N}]/u.test(text)) return '';
  const ws = words(text);
  if (ws.length <= CAPTION_MAX_WORDS) return sentence(text);
  return `${capitalise(
    endOnAWord(ws.slice(0, CAPTION_MAX_WORDS))
      .join(' ')
      .replace(/[,;:]+$/u, ''),
  )}…`;
}

/** The beat with its characters called by name ("a retired robot" → "Robo", "its" → "Robo's"). */
function beatWithNames(
  beat: Beat,
  index: number,
  beats: readonly Beat[],
  cast: readonly Character[],
): string {
  let text = beat.text;
  for (const c of cast) {
    if (!c.noun) continue;
    const noun = c.noun.replace(/\s+/g, '\\s+');
    // "her rival Jonas" → "Jonas", not "Jonas Jonas".
    const name = c.member.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    text = text.replace(
      new RegExp(
        `\\b(?:(?:a|an|the|one|my|his|her|its|their)\\s+(?:[\\p{Ll}-]+\\s+){0,2}?)?${noun}(?:\\s+${name})?\\b`,
        'iu',
      ),
      c.ref,
    );
  }
  const previousSubject =
    cast.find((c) => c.beat >= 0 && c.beat === index - 1) ?? cast.find((c) => c.beat === 0);
  if (index > 0 && previousSubject && beats[index - 1]) {
    text = text
      .replace(/^(?:its|his|her)\s+/iu, `${previousSubject.ref}'s `)
      .replace(/^(?:it|he|she)\s+/iu, `${previousSubject.ref} `);
  }
  return text;
}

/** A beat told as narration, with its link word made into a storyteller's one. Narration keeps the story's own nouns. */
function beatCaption(beat: Beat, index: number, beats: readonly Beat[], cast: readonly Character[]): string {
  const opener: Record<string, string> = {
    but: 'But ',
    so: 'So ',
    then: 'Then ',
    'and then': 'Then ',
    when: 'Then ',
    until: 'Then, one day, ',
    while: 'Meanwhile, ',
    because: 'All because ',
  };
  // ("Its first customer is…" follows "A retired robot opens…" as a reader expects; a nickname would not.)
  void beats;
  void cast;
  const text = beat.text;
  const lead = beat.link ? (opener[beat.link] ?? '') : '';
  // "But The old map…" reads wrong: a little first word goes lower case after the opener.
  const firstWord = /^(?:a|an|the|its|his|her|their|it|he|she|they|one|every|some)\b/iu.test(text);
  return narration(lead ? `${lead}${firstWord ? text.charAt(0).toLowerCase() + text.slice(1) : text}` : text);
}

// ---------------------------------------------------------------------------------------------
// The arc

type SlotKind =
  'establish' | 'intro' | 'beat' | 'tension' | 'resolution' | 'reaction' | 'detail' | 'conversation';

interface Slot {
  kind: SlotKind;
  /** Lower is more important: kept when panels are few. */
  priority: number;
  beat?: number;
  character?: Character;
}

/** The core of the story in reading order, trimmed to the panels available by priority. */
function coreSlots(beats: readonly Beat[], cast: readonly Character[], total: number): Slot[] {
  const slots: Slot[] = [{ kind: 'establish', priority: 0, beat: 0 }];
  const introPriority = (i: number) => 4 + i * 2;
  const introsFor = (beat: number) =>
    cast.forEach((c, i) => {
      if (c.beat === beat || (beat === 0 && c.beat < 0))
        slots.push({ kind: 'intro', priority: introPriority(i), character: c });
    });
  introsFor(0);
  // With three beats or more, the last one is the ending: the resolution panel tells it.
  const ending = beats.length >= 3 ? beats.length - 1 : null;
  const middle = ending ?? beats.length;
  for (let b = 1; b < middle; b++) {
    // The story's own beats come before invented moments: the turn first, then the rest in order.
    slots.push({ kind: 'beat', priority: b === 1 ? 2 : 2 + b / 100, beat: b });
    introsFor(b);
  }
  slots.push({ kind: 'tension', priority: 3 });
  if (ending !== null) introsFor(ending);
  slots.push({ kind: 'resolution', priority: 1, ...(ending !== null ? { beat: ending } : {}) });
  if (slots.length <= total) return slots;
  const kept = new Set([...slots].sort((a, b) => a.priority - b.priority).slice(0, total));
  return slots.filter((s) => kept.has(s));
}

/** Fill the panels left over with connective ones, spread evenly between the core beats. */
function arrange(core: readonly Slot[], total: number): Slot[] {
  const fillers = total - core.length;
  if (fillers <= 0) return [...core];
  // Fillers go between core panels, but never after the resolution, and never between a beat and
  // the introduction of the character it brings in (they are one moment).
  const gapAfter = core.map((slot, i) => i < core.length - 1 && core[i + 1]?.kind !== 'intro');
  const gapIndexes = gapAfter.flatMap((open, i) => (open ? [i] : []));
  const gaps = Math.max(1, gapIndexes.length);
  const kinds: SlotKind[] = ['reaction', 'conversation', 'detail', 'conversation'];
  const out: Slot[] = [];
  let made = 0;
  core.forEach((slot, i) => {
    out.push(slot);
    const g = gapIndexes.indexOf(i);
    if (g < 0) return;
    const count = Math.floor((fillers * (g + 1)) / gaps) - Math.floor((fillers * g) / gaps);
    for (let k = 0; k < count; k++)
      out.push({ kind: kinds[made++ % kinds.length] ?? 'reaction', priority: 99 });
  });
  // A one-slot core (a single panel story) takes its fillers after it.
  while (out.length < total) out.push({ kind: kinds[made++ % kinds.length] ?? 'reaction', priority: 99 });
  return out;
}

/** Time and light move through the arc: the story's own time of day, as it passes. */
function timeline(story: string): [string, string][] {
  const s = story.toLowerCase();
  if (/\b(storm|rain|thunder|lightning)\b/u.test(s))
    return [
      ['stormy afternoon', 'grey overcast light'],
      ['storm', 'driving rain, flashes of lightning'],
      ['storm', 'lightning flash, hard shadows'],
      ['after the storm', 'clearing sky, wet reflections'],
    ];
  if (/\b(night|midnight|moon|dark)\b/u.test(s))
    return [
      ['night', 'cold moonlight'],
      ['night', 'flickering lamplight'],
      ['midnight', 'deep shadows, a single lamp'],
      ['before dawn', 'first pale light on the horizon'],
    ];
  if (/\b(dawn|sunrise|morning|breakfast)\b/u.test(s))
    return [
      ['early morning', 'soft golden sunrise light'],
      ['morning', 'bright clean light'],
      ['midday', 'harsh overhead sun'],
      ['afternoon', 'warm hazy light'],
    ];
  return [
    ['late afternoon', 'warm low sunlight'],
    ['dusk', 'orange sunset glow'],
    ['dusk', 'long shadows, first lanterns lit'],
    ['evening', 'warm lantern light'],
  ];
}

// ---------------------------------------------------------------------------------------------
// Dialogue

interface Voice {
  place: Place;
  /** A story about a fight ends on a challenge, not a thank-you. */
  conflict: boolean;
  /** Every balloon and caption already used, so nothing is said twice. */
  used: Set<string>;
}

/** The first line of the candidates not yet said, or null when all have been. */
function fresh(voice: Voice, candidates: readonly (string | null | undefined)[]): string | null {
  for (const c of candidates) {
    if (!c) continue;
    const line = clip(c, Math.min(16, LIMITS.wordsPerBalloon), 120);
    if (line !== '' && !voice.used.has(line.toLowerCase())) {
      voice.used.add(line.toLowerCase());
      return line;
    }
  }
  return null;
}

/** Characters whose verbal tic ("Beep.") has been heard: once is charming, every line is not. */
const ticHeard = new WeakSet<Character>();

function say(c: Character, text: string | null, kind: Balloon['kind'] = 'speech'): Balloon[] {
  if (!text) return [];
  const tic = c.archetype?.tic;
  const useTic = tic !== undefined && kind === 'speech' && !text.startsWith(tic) && !ticHeard.has(c);
  if (useTic) ticHeard.add(c);
  const line = useTic ? `${tic} ${text}` : text;
  return [{ speaker: c.member.name, text: clip(line, LIMITS.wordsPerBalloon, 120), kind }];
}

function placeWords(place: Place): string | null {
  return place.where && place.preposition ? `${place.preposition} ${place.where}` : null;
}

function foodWord(place: Place): string | null {
  return place.serving ? (place.serving.split(' ').pop() ?? null) : null;
}

const lines = {
  soloIntro: (c: Character, v: Voice) =>
    fresh(v, [
      v.place.venue ? 'Open for business!' : null,
      placeWords(v.place) ? `Another quiet day ${placeWords(v.place)}.` : null,
      'Today feels different somehow.',
      'Right. Let’s get to work.',
      c.archetype?.greeting,
    ]),
  hostGreets: (c: Character, v: Voice) =>
    fresh(v, [
      c.archetype?.greeting && c.archetype.tic ? c.archetype.greeting : null,
      v.place.venue ? 'Welcome! Take any seat you like.' : null,
      'Hello there, stranger.',
      'You look like you’ve come a long way.',
    ]),
  introduce: (c: Character, v: Voice) =>
    fresh(v, [
      c.member.name.startsWith('The ')
        ? c.noun
          ? `Just ${c.member.role}, passing through.`
          : null
        : `The name’s ${c.member.name}.`,
      'I didn’t catch your name.',
    ]),
  arrives: (c: Character, v: Voice) =>
    fresh(v, [
      c.archetype?.greeting,
      'Excuse me... where am I?',
      'Hello? Anyone here?',
      'Sorry to barge in.',
    ]),
  surprise: (c: Character, other: Character | undefined, v: Voice) =>
    fresh(v, [
      other?.archetype && other.member.name.startsWith('The ') ? `A real ${other.noun}?!` : null,
      other?.archetype && !other.member.name.startsWith('The ')
        ? `${other.member.name}... a real ${other.noun}?!`
        : null,
      c.archetype?.exclaim,
      other ? `${other.member.name}?!` : null,
      'No way!',
      'I don’t believe it!',
    ]),
  worry: (v: Voice) =>
    fresh(v, [
      'Wait... what was that?',
      'Did something just move?',
      'Stay calm. Stay calm.',
      'Could this be real?',
    ]),
  soloEnding: (v: Voice) =>
    fresh(v, [
      v.place.serving && foodWord(v.place)
        ? `Best ${foodWord(v.place)} ${placeWords(v.place) ?? 'ever'}.`
        : null,
      'Not a bad day, all things considered.',
      'I could get used to this.',
      'Tomorrow, we do it all again.',
    ]),
  reassure: (v: Voice) =>
    fresh(v, [
      v.place.serving ? `Here. ${capitalise(v.place.serving)}, on the house.` : null,
      'Sit down. You’re safe here.',
      'Easy now. Nobody’s in a hurry.',
      'Whatever happens, we’ll figure it out.',
    ]),
  thanks: (v: Voice) =>
    fresh(v, [
      v.conflict ? 'This isn’t over.' : null,
      v.place.serving && foodWord(v.place) && placeWords(v.place)
        ? `Best ${foodWord(v.place)} ${placeWords(v.place)}!`
        : null,
      'Thank you. I really needed this.',
      'I think I’ll stay a while.',
      'I’m glad I found this place.',
    ]),
  closing: (v: Voice) =>
    fresh(v, [
      v.conflict ? 'We’ll see about that.' : null,
      'Come back any time.',
      'Same time tomorrow?',
      'Take care out there, friend.',
      'You know where to find me.',
    ]),
  /** A thought for a quiet panel; before anyone else shows up, nothing has happened yet. */
  reaction: (v: Voice, company: boolean) =>
    fresh(
      v,
      company
        ? [
            'What a strange day.',
            'Something tells me this is only the start.',
            'I knew this day would come.',
            'Breathe. Just breathe.',
            'Where did that come from?',
            'Not now... not today.',
          ]
        : [
            'Quiet again today.',
            'Maybe today someone will come.',
            'Everything in its place.',
            'I love this time of day.',
            'Patience. Patience.',
          ],
    ),
};

/** Question and answer pairs for a two-shot conversation; each pair is used once. */
function conversationPairs(v: Voice): [string, string][] {
  const where = v.place.where;
  const pairs: [string | null, string | null][] = [
    [
      'Where am I, exactly?',
      where ? `${capitalise(placeWords(v.place) ?? where)}. You’re safe here.` : 'Somewhere safe. Rest.',
    ],
    [
      v.place.serving ? 'What’s good here?' : null,
      v.place.serving ? `Try ${v.place.serving}. Trust me.` : null,
    ],
    ['How long have you been here?', 'Longer than I can remember.'],
    ['Is this seat taken?', 'It is now.'],
    ['What brings you all this way?', 'I’m not sure anymore.'],
    ['Do you get many visitors?', 'You’re the first in a long time.'],
    ['Can I ask you something?', 'You just did.'],
    ['Are you always this calm?', 'Only on the outside.'],
  ];
  return pairs.filter((p): p is [string, string] => p[0] !== null && p[1] !== null);
}

function freshPair(v: Voice): [string, string] | null {
  for (const [q, a] of conversationPairs(v)) {
    if (!v.used.has(q.toLowerCase()) && !v.used.has(a.toLowerCase())) {
      v.used.add(q.toLowerCase());
      v.used.add(a.toLowerCase());
      return [q, a];
    }
  }
  return null;
}

/** Narration for a page that opens between beats. */
function transitionCaption(v: Voice, index: number): string | null {
  const where = v.place.where;
  const candidates = [
    'A little while later...',
    where ? `Meanwhile, ${placeWords(v.place) ?? where}...` : 'Meanwhile...',
    'The minutes stretch on.',
    v.place.venue ? `Inside ${v.place.venue}, it is quiet now.` : 'Everything goes quiet.',
    'Outside, the wind picks up.',
    'Later still...',
    where ? `The sky over ${where} slowly changes colour.` : 'The light slowly changes.',
    'Neither of them speaks for a while.',
    'Somewhere, a clock ticks.',
    'And then...',
  ];
  const rotated = candidates.map((_, k) => candidates[(index + k) % candidates.length]);
  return freshCaption(v, rotated);
}

function freshCaption(v: Voice, candidates: readonly (string | null | undefined)[]): string | null {
  for (const c of candidates) {
    if (c && /[\p{L}\p{N}]/u.test(c) && !v.used.has(`caption:${c.toLowerCase()}`)) {
      v.used.add(`caption:${c.toLowerCase()}`);
      return c;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Panels

interface Scene {
  beats: Beat[];
  cast: Character[];
  place: Place;
  setting: string;
  times: [string, string][];
  voice: Voice;
  /** Which sound effects have been used: each at most once. */
  sfxUsed: Set<string>;
  /** Who has already appeared on a panel. */
  seen: Set<string>;
  /** Characters with an introduction panel of their own. */
  introduced: Set<Character>;
}

const POSITIONS: Record<number, PanelCharacter['position'][]> = {
  1: ['centre'],
  2: ['left', 'right'],
  3: ['left', 'centre', 'right'],
};

function stage(
  chars: readonly Character[],
  pose: (c: Character, i: number) => string,
  face: (c: Character, i: number) => string,
): PanelCharacter[] {
  const shown = chars.slice(0, 3);
  const positions = POSITIONS[shown.length] ?? ['centre'];
  return shown.map((c, i) => ({
    name: c.member.name,
    position: positions[i] ?? 'centre',
    pose: clip(pose(c, i), 12, 80),
    expression: clip(face(c, i), 8, 60),
  }));
}

function sfxOnce(scene: Scene, sound: string | null): string | null {
  if (!sound || scene.sfxUsed.has(sound)) return null;
  scene.sfxUsed.add(sound);
  return sound;
}

function framing(shot: Shot, angle: Angle) {
  return { shot, angle };
}

interface Drafted {
  shot: Shot;
  angle: Angle;
  action: string;
  characters: PanelCharacter[];
  balloons: Balloon[];
  caption: string | null;
  sfx: string | null;
}

function draftPanel(slot: Slot, index: number, total: number, scene: Scene, firstOnPage: boolean): Drafted {
  const { cast, beats, voice } = scene;
  const hero = cast[0];
  const other = cast[1];
  const place = scene.place;
  const beatNames = (b: number) => {
    const beat = beats[b];
    return beat ? beatWithNames(beat, b, beats, cast) : '';
  };
  const present = (b: number) => cast.filter((c) => c.beat === b);
  const newcomers = (chars: readonly Character[]) => chars.filter((c) => !scene.seen.has(c.member.name));
  // Connective panels only show characters the reader has already met.
  const met = cast.filter((c) => scene.seen.has(c.member.name));
  const onStage = met.length > 0 ? met : hero ? [hero] : [];

  switch (slot.kind) {
    case 'establish': {
      const chars = (present(0).length > 0 ? present(0) : hero ? [hero] : []).slice(0, 2);
      const first = beats[0];
      const intros = scene.cast.length > 0 && total > 4;
      return {
        ...framing(total === 1 ? 'wide' : 'establishing', pick(['birds-eye', 'eye-level'] as const, index)),
        action: clip(
          `Wide view of ${scene.setting}. ${/[\p{L}\p{N}]/u.test(beatNames(0)) ? sentence(beatNames(0)) : ''}`,
          40,
          240,
        ),
        characters: stage(
          chars,
          () =>
            place.venue
              ? `standing small in the doorway of ${place.venue}`
              : 'standing small in the distance',
          () => 'calm',
        ),
        // A single panel is the whole comic: it carries the first words too.
        balloons: !intros && chars[0] && total <= 2 ? say(chars[0], lines.soloIntro(chars[0], voice)) : [],
        caption: first ? freshCaption(voice, [beatCaption(first, 0, beats, cast)]) : null,
        sfx: null,
      };
    }
    case 'intro': {
      const c = slot.character ?? hero;
      if (!c) return draftPanel({ kind: 'reaction', priority: 99 }, index, total, scene, firstOnPage);
      const host = c === hero;
      const company = host ? [] : hero ? [hero] : [];
      const chars = host ? [c] : [...company, c];
      return {
        ...framing(host ? 'medium' : 'cowboy', host ? 'eye-level' : 'over-the-shoulder'),
        action: clip(
          host
            ? `${capitalise(c.ref)}${c.noun ? `, ${c.member.role},` : ''} ${place.venue ? `busy behind the counter of ${place.venue}` : placeWords(place) ? `going about the day ${placeWords(place)}` : 'going about the day'}`
            : `${capitalise(c.ref)}, ${c.member.role}, meets ${hero?.ref ?? 'a stranger'} for the first time`,
          40,
          240,
        ),
        characters: stage(
          chars,
          (x) =>
            x === c
              ? host
                ? place.venue
                  ? 'wiping the counter'
                  : 'stepping forward'
                : 'stepping into view'
              : 'turning to look',
          (x) => (x === c ? (host ? 'content smile' : 'wide-eyed, uncertain') : 'curious'),
        ),
        balloons: host
          ? say(c, lines.soloIntro(c, voice))
          : [
              ...(hero ? say(hero, lines.hostGreets(hero, voice)) : []),
              ...say(c, lines.introduce(c, voice) ?? lines.arrives(c, voice)),
            ],
        caption: firstOnPage ? transitionCaption(voice, index) : null,
        sfx: null,
      };
    }
    case 'beat': {
      const b = slot.beat ?? 1;
      const beat = beats[b];
      const mentioned = present(b);
      const chars = [...new Set([...(hero && !mentioned.includes(hero) ? [hero] : []), ...mentioned])].slice(
        0,
        3,
      );
      const arriving = newcomers(mentioned).filter((c) => c !== hero);
      const turn = b === 1;
      const balloons: Balloon[] = [];
      for (const c of arriving.slice(0, 1)) balloons.push(...say(c, lines.arrives(c, voice)));
      // The host answers here unless the newcomer has a panel of their own coming.
      if (hero && arriving.length > 0 && !arriving.some((c) => scene.introduced.has(c)))
        balloons.push(...say(hero, lines.hostGreets(hero, voice)));
      if (balloons.length === 0 && chars[0])
        balloons.push(...say(chars[0], lines.reaction(voice, true), 'thought'));
      return {
        ...framing(turn ? 'full' : 'medium', turn ? 'eye-level' : 'over-the-shoulder'),
        action: clip(sentence(beatNames(b)), 40, 240) || 'The story turns.',
        characters: stage(
          chars,
          (c) =>
            arriving.includes(c)
              ? place.venue
                ? 'standing in the doorway'
                : 'stepping into view'
              : 'looking up',
          (c) => (arriving.includes(c) ? 'lost and weary' : 'surprised'),
        ),
        balloons,
        caption: beat ? freshCaption(voice, [beatCaption(beat, b, beats, cast)]) : null,
        sfx: turn && arriving.length > 0 ? sfxOnce(scene, place.venue ? 'DING!' : 'WHOOSH') : null,
      };
    }
    case 'tension': {
      const speaker = hero;
      const target = other;
      const shout = speaker && target ? lines.surprise(speaker, target, voice) : null;
      const chars = speaker ? [speaker] : [];
      return {
        ...framing('close-up', 'from-below'),
        action: clip(
          speaker && target
            ? `Close on ${speaker.ref}, staring at ${target.ref} in disbelief`
            : `Close on ${speaker?.ref ?? 'a face'}, caught off guard`,
          40,
          240,
        ),
        characters: stage(
          chars,
          () => 'leaning in, frozen mid-motion',
          () => (shout ? 'shocked, eyes wide' : 'worried'),
        ),
        balloons: speaker
          ? shout
            ? say(speaker, shout, 'shout')
            : speaker.archetype?.exclaim
              ? say(speaker, fresh(voice, [speaker.archetype.exclaim]), 'shout')
              : say(speaker, lines.worry(voice), 'thought')
          : [],
        caption: firstOnPage ? transitionCaption(voice, index) : null,
        sfx: null,
      };
    }
    case 'resolution': {
      const chars = cast.slice(0, 3);
      const balloons: Balloon[] = [];
      if (other && hero) {
        if (place.serving && !voice.used.has(`here. ${place.serving}, on the house.`.toLowerCase()))
          balloons.push(...say(hero, lines.reassure(voice)));
        balloons.push(...say(other, lines.thanks(voice)));
        if (balloons.length < 2) balloons.push(...say(hero, lines.closing(voice)));
      } else if (hero) {
        balloons.push(...say(hero, lines.soloEnding(voice), 'thought'));
      }
      const ending = slot.beat !== undefined ? beats[slot.beat] : undefined;
      return {
        ...framing(total > 2 ? 'wide' : 'full', 'eye-level'),
        action: clip(
          ending && slot.beat !== undefined
            ? sentence(beatNames(slot.beat))
            : place.serving && other
              ? `${capitalise(hero?.ref ?? 'Everyone')} and ${other.ref} share ${place.serving} as the day ends`
              : `${capitalise(chars.map((c) => c.ref).join(' and ') || 'The scene')}, at peace at last, in ${scene.setting}`,
          40,
          240,
        ),
        characters: stage(
          chars,
          (c, i) => (i === 0 ? 'leaning on the counter' : 'sitting, relaxed'),
          () => 'warm smile',
        ),
        balloons: balloons.slice(0, LIMITS.balloonsPerPanel),
        caption:
          ending && slot.beat !== undefined
            ? freshCaption(voice, [beatCaption(ending, slot.beat, beats, cast)])
            : firstOnPage || total > 4
              ? freshCaption(voice, ['And that was only the beginning.', 'The end... for now.'])
              : null,
        sfx: place.serving && other ? sfxOnce(scene, 'SLURP!') : null,
      };
    }
    case 'reaction': {
      const c = onStage[index % Math.max(1, onStage.length)];
      const thought = lines.reaction(voice, onStage.length > 1);
      const mood = pick(
        ['lost in thought', 'taking it all in', 'a flicker of worry', 'a small, private smile'] as const,
        index,
      );
      return {
        ...framing('close-up', pick(['eye-level', 'dutch', 'from-above'] as const, index)),
        action: clip(`Reaction close-up: ${c?.ref ?? 'a face'}, ${mood}`, 40, 240),
        characters: c
          ? stage(
              [c],
              () => 'still, head tilted',
              () => pick(['pensive', 'startled', 'hopeful'] as const, index),
            )
          : [],
        balloons: c && thought ? say(c, thought, 'thought') : [],
        caption: firstOnPage ? transitionCaption(voice, index) : null,
        sfx: null,
      };
    }
    case 'detail': {
      const guest = onStage.find((c) => c !== hero);
      const serving = guest ? place.serving : null;
      // Once the food is on the table, nobody asks what is good here.
      if (serving) voice.used.add('what’s good here?');
      const c = hero;
      return {
        ...framing('extreme-close-up', 'from-above'),
        action: clip(
          serving
            ? `Insert: close on ${serving}, steaming, set down in front of ${guest?.ref ?? 'an empty stool'}`
            : place.venue
              ? `Insert: close on the counter of ${place.venue}, everything set out and waiting`
              : `Insert: close on ${c ? `${c.ref}'s hands` : 'a small detail'}, ${place.where ? `against ${place.where}` : 'in the quiet'}`,
          40,
          240,
        ),
        characters: [],
        balloons: [],
        caption: firstOnPage ? transitionCaption(voice, index) : null,
        sfx: serving ? sfxOnce(scene, 'SLURP!') : sfxOnce(scene, 'TICK... TICK...'),
      };
    }
    case 'conversation': {
      const guest = onStage.find((c) => c !== hero);
      const a = guest ?? hero;
      const b = guest ? hero : undefined;
      const pair = a && b ? freshPair(voice) : null;
      const chars = [b, a].filter((c): c is Character => c !== undefined);
      const balloons: Balloon[] = [];
      if (pair && a && b) balloons.push(...say(a, pair[0]), ...say(b, pair[1]));
      else if (a) balloons.push(...say(a, lines.reaction(voice, onStage.length > 1), 'thought'));
      return {
        ...framing('medium', pick(['over-the-shoulder', 'eye-level'] as const, index)),
        action: clip(
          a && b
            ? `Two-shot: ${a.ref} and ${b.ref} ${pick(['talk', 'lean in, mid-conversation,', 'share a quiet laugh'] as const, index)} ${place.venue ? 'across the counter' : 'in the quiet'}`
            : `${capitalise(a?.ref ?? 'Someone')} ${place.venue ? 'keeps the counter spotless, waiting' : 'waits, watching the horizon'}`,
          40,
          240,
        ),
        characters: stage(
          chars,
          (c) => (c === b ? 'leaning on one elbow' : 'hands together'),
          (c) => (c === b ? 'gentle smile' : 'curious'),
        ),
        balloons,
        caption: firstOnPage ? transitionCaption(voice, index) : null,
        sfx: null,
      };
    }
  }
}

/**
 * Balloons are read left to right, so whoever speaks first stands on the left: otherwise the first
 * balloon's tail crosses the panel to reach its speaker.
 */
function speakersLeftToRight(panel: Drafted): Drafted {
  if (panel.characters.length < 2 || panel.balloons.length === 0) return panel;
  const firstLine = (name: string) => {
    const i = panel.balloons.findIndex((b) => b.speaker === name);
    return i < 0 ? panel.balloons.length : i;
  };
  const ordered = panel.characters
    .map((c, i) => ({ c, i }))
    .sort((a, b) => firstLine(a.c.name) - firstLine(b.c.name) || a.i - b.i)
    .map(({ c }) => c);
  const positions = POSITIONS[ordered.length] ?? [];
  return { ...panel, characters: ordered.map((c, i) => ({ ...c, position: positions[i] ?? c.position })) };
}

/** Keep a panel inside the word limits whatever the story: trim balloons, then the caption. */
function fitWords(panel: Drafted): Drafted {
  const count = (t: string) => words(t).length;
  let balloons = panel.balloons.slice(0, LIMITS.balloonsPerPanel);
  let caption = panel.caption
    ? clip(panel.caption, Math.min(CAPTION_MAX_WORDS + 1, LIMITS.wordsPerCaption), 240)
    : null;
  const total = () => balloons.reduce((n, b) => n + count(b.text), 0) + count(caption ?? '');
  while (total() > LIMITS.wordsPerPanel && balloons.length > 0) balloons = balloons.slice(0, -1);
  if (total() > LIMITS.wordsPerPanel) caption = null;
  return { ...panel, balloons, caption: caption === '' ? null : caption };
}

// ---------------------------------------------------------------------------------------------
// Title

function deriveTitle(place: Place, cast: readonly Character[], beats: readonly Beat[]): string {
  if (place.venueWords && place.where && place.preposition && words(place.where).length <= 3) {
    const where = place.where.replace(/^(?:the|a|an)\s+/iu, '');
    const article = place.where === where ? '' : 'the ';
    return titleCase(`The ${place.venueWords} ${place.preposition} ${article}${where}`);
  }
  const hero = cast[0];
  if (place.venueWords && hero?.noun) {
    return titleCase(`${hero.member.role}'s ${place.venueWords}`);
  }
  if (place.where && /^the\s/iu.test(place.where) && words(place.where).length <= 4)
    return titleCase(place.where);
  const nouns = cast.filter((c) => c.noun && !c.member.name.startsWith('Stranger')).slice(0, 2);
  if (nouns.length === 2) return titleCase(`The ${nouns[0]?.noun ?? ''} and the ${nouns[1]?.noun ?? ''}`);
  if (hero && !hero.member.name.startsWith('The ') && hero.member.name !== 'The Hero' && place.where)
    return titleCase(`${hero.member.name} ${place.preposition ?? 'in'} ${place.where}`);
  // Otherwise the first beat, cut at a phrase boundary and never on a little word.
  const first = (beats[0]?.text ?? '').replace(/[^\p{L}\p{N}\s'’-]/gu, ' ');
  const ws = endOnAWord(words(first).slice(0, 6));
  const title = clip(titleCase(ws.join(' ')), 8, 80);
  return title === '' || !/[\p{L}\p{N}]/u.test(title) ? 'Untitled Story' : title;
}

// ---------------------------------------------------------------------------------------------

/** Write a valid ComicScript from the request without any model. Same request → same script. */
export function writeTemplateScript(input: ScriptRequestInput): ComicScript {
  const request = parseScriptRequest(input);
  const pages = request.pages ?? 1;
  const panelsPerPage = request.panelsPerPage ?? TEMPLATE_DEFAULT_PANELS;
  const total = pages * panelsPerPage;
  const storySeed = hash(request.story);

  const beats = beatsOf(request.story);
  const cast = buildCast(beats, request.cast ?? [], storySeed);
  const characterNouns = new Set(
    cast
      .map((c) => c.noun)
      .filter((n): n is string => n !== null)
      .map((n) => bare(n.split(' ').pop() ?? n)),
  );
  const place = placeOf(request.story, characterNouns);
  let setting = place.setting || pick(FALLBACK_SETTINGS, storySeed);
  if (request.styleHint) setting = clip(`${setting}, ${request.styleHint}`, 30, 160);

  const scene: Scene = {
    beats,
    cast,
    place,
    setting,
    times: timeline(request.story),
    voice: {
      place,
      conflict: /\b(?:fight|fights|battle|rival|villain|attack|war|duel|steal|steals|enemy|enemies)\b/iu.test(
        request.story,
      ),
      used: new Set(),
    },
    sfxUsed: new Set(),
    seen: new Set(),
    introduced: new Set(),
  };
  const slots = arrange(coreSlots(beats, cast, total), total);
  for (const slot of slots) if (slot.kind === 'intro' && slot.character) scene.introduced.add(slot.character);

  const panels: Panel[] = slots.map((slot, index) => {
    const firstOnPage = index % panelsPerPage === 0;
    const drafted = speakersLeftToRight(fitWords(draftPanel(slot, index, total, scene, firstOnPage)));
    for (const c of drafted.characters) scene.seen.add(c.name);
    const [time, lighting] = pick(
      scene.times,
      Math.floor((index * scene.times.length) / Math.max(1, total)),
    ) ?? ['day', 'clear daylight'];
    return { ...drafted, setting: scene.setting, time, lighting };
  });

  const script = {
    title: deriveTitle(place, cast, beats),
    logline:
      clip(
        beats
          .map((b) => sentence(b.text))
          .slice(0, 3)
          .join(' '),
        45,
        300,
      ) || 'A short comic.',
    cast: cast.map((c) => c.member),
    pages: Array.from({ length: pages }, (_, p) => ({
      panels: panels.slice(p * panelsPerPage, (p + 1) * panelsPerPage),
    })),
  };
  // The schema is the contract; a template bug must surface here, not three stages later.
  return ComicScript.parse(script);
}
