import {
  ARCHETYPES,
  FOODS,
  FUNCTION_WORDS,
  KNOWN_PLACES,
  LOOK_ADJECTIVES,
  NOT_NAMES,
  PEOPLE,
  PLACE_PREPOSITIONS,
  VENUES,
  type Archetype,
} from './lexicon.ts';

/**
 * Reading a story prompt without a model: its beats (sentences and clauses), the characters its noun
 * phrases and names point at, and the place it happens. Rules, not understanding — but rules that
 * know a planet from a person.
 */

/** A small stable hash (FNV-1a), so choices depend on the text and never on chance. */
export function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function pick<T>(list: readonly T[], seed: number): T {
  const item = list[Math.abs(seed) % list.length];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

export function words(text: string): string[] {
  return text.trim() === '' ? [] : text.trim().split(/\s+/);
}

/** At most maxWords words and maxChars characters, cut at a word boundary. */
export function clip(text: string, maxWords: number, maxChars: number): string {
  let out = words(text).slice(0, maxWords).join(' ');
  while (out.length > maxChars) {
    const cut = out.lastIndexOf(' ', maxChars);
    out = cut > 0 ? out.slice(0, cut) : out.slice(0, maxChars);
  }
  return out.trim();
}

/** Lower-case letters and digits of a token, without surrounding punctuation or a possessive 's. */
export function bare(token: string): string {
  return token
    .replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '')
    .replace(/['’]s$/u, '')
    .toLowerCase();
}

const hasLetters = (s: string) => /[\p{L}\p{N}]/u.test(s);

export function sentencesOf(story: string): string[] {
  const found = story
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?…])\s+/)
    .map((s) => s.trim())
    .filter(hasLetters);
  return found.length > 0 ? found : [story.trim()];
}

/** A story beat: one clause, and the word that linked it to the one before ("but", "when", …). */
export interface Beat {
  text: string;
  link: string | null;
}

const PRONOUN_AFTER_AND = '(?:its|his|her|their|then|she|he|they|it|we|i|the\\s+next)';
const SUBJECT_AFTER_SO = '(?:she|he|they|it|we|i|the|a|an|everyone)';
/** Where a sentence breaks into clauses; the connective stays at the start of the next clause. */
const CLAUSE_BREAK = new RegExp(
  [
    '\\s*;\\s*',
    '\\s*[,:—–]\\s*(?=(?:and|but|so|then|until|when|while|because)\\b)',
    `\\s+(?=and\\s+${PRONOUN_AFTER_AND}\\b)`,
    '\\s+(?=(?:but|until|when|while|because|and then)\\b)',
    `\\s+(?=so\\s+${SUBJECT_AFTER_SO}\\b)`,
  ].join('|'),
  'iu',
);
const LEADING_LINK = /^(and then|and|but|so|then|until|when|while|because)\s+/iu;

function stripEnd(text: string): string {
  return text.replace(/[\s.!?…,;:—–-]+$/u, '').trim();
}

/** Sentences, then clauses: "A robot opens a bar, and its first customer is lost" → two beats. */
export function beatsOf(story: string): Beat[] {
  const beats: Beat[] = [];
  for (const sentence of sentencesOf(story)) {
    const parts = sentence.split(CLAUSE_BREAK).filter((p) => hasLetters(p));
    parts.forEach((part, index) => {
      let text = part.trim();
      let link: string | null = null;
      const lead = LEADING_LINK.exec(text);
      if (lead && index > 0) {
        link = (lead[1] ?? '').toLowerCase();
        text = text.slice(lead[0].length);
      }
      text = stripEnd(text);
      if (!hasLetters(text)) return;
      const previous = beats[beats.length - 1];
      // A one- or two-word fragment is not a beat of its own ("but slowly").
      if (index > 0 && previous && words(text).length < 3) {
        previous.text = `${previous.text} ${link ?? ''} ${text}`.replace(/\s+/g, ' ').trim();
        return;
      }
      beats.push({ text, link });
    });
  }
  if (beats.length === 0) beats.push({ text: stripEnd(story.trim()) || story.trim(), link: null });
  return beats;
}

/** A character the story points at, before it becomes a cast member. */
export interface Mention {
  /** A proper name when the story gives one. */
  name: string | null;
  archetype: Archetype | null;
  /** The noun the story used ("robot", "baker"), or null for a bare name. */
  noun: string | null;
  adjectives: string[];
  /** Which beat first mentions the character. */
  beat: number;
  order: number;
}

const ARCHETYPE_BY_NOUN = new Map(ARCHETYPES.map((a) => [a.noun, a]));
const PEOPLE_NOUNS = new Set<string>(PEOPLE);
const DETERMINERS = new Set([
  'a',
  'an',
  'the',
  'my',
  'his',
  'her',
  'its',
  'their',
  'our',
  'your',
  'one',
  'this',
  'that',
]);

function isCapitalisedWord(token: string): boolean {
  const word = token.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '').replace(/['’]s$/u, '');
  return /^\p{Lu}[\p{Ll}]+(?:-\p{Lu}?[\p{Ll}]+)?$/u.test(word) && word.length <= 20;
}

function cleanName(token: string): string {
  return token.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '').replace(/['’]s$/u, '');
}

/** The noun at tokens[i] (two-word nouns first), or null. */
function nounAt(tokens: readonly string[], i: number): { noun: string; length: number } | null {
  const one = bare(tokens[i] ?? '');
  const two = `${one} ${bare(tokens[i + 1] ?? '')}`;
  const endsClause = (t: string | undefined) => t !== undefined && /[,.;:!?]$/u.test(t);
  if (!endsClause(tokens[i]) && (ARCHETYPE_BY_NOUN.has(two) || PEOPLE_NOUNS.has(two)))
    return { noun: two, length: 2 };
  if (ARCHETYPE_BY_NOUN.has(one) || PEOPLE_NOUNS.has(one)) return { noun: one, length: 1 };
  return null;
}

/** Up to two adjectives right before a noun, back to its article: "a retired robot" → ["retired"]. */
function adjectivesBefore(tokens: readonly string[], i: number): string[] {
  const found: string[] = [];
  for (let j = i - 1; j >= 0 && found.length < 2; j--) {
    const token = tokens[j] ?? '';
    const word = bare(token);
    if (/[,.;:!?]$/u.test(token) || DETERMINERS.has(word) || FUNCTION_WORDS.has(word)) break;
    if (!/^\p{Ll}[\p{Ll}-]*$/u.test(word)) break;
    found.unshift(word);
  }
  return found;
}

/**
 * Capitalised words that are names of people: mid-sentence (or opening more than one sentence), not a
 * known place, and not right after "on/in/at/to…" (then it is where, not who). In order of appearance.
 */
export function namesInStory(story: string): string[] {
  const seen = new Map<string, { mid: boolean; count: number; first: number }>();
  const places = placeNamesIn(story);
  let position = 0;
  for (const sentence of sentencesOf(story)) {
    const tokens = sentence.split(/\s+/);
    tokens.forEach((token, index) => {
      position++;
      if (!isCapitalisedWord(token)) return;
      const name = cleanName(token);
      const low = name.toLowerCase();
      if (FUNCTION_WORDS.has(low) || NOT_NAMES.has(low) || places.has(low)) return;
      const entry = seen.get(name) ?? { mid: false, count: 0, first: position };
      entry.count++;
      if (index > 0) entry.mid = true;
      seen.set(name, entry);
    });
  }
  return [...seen.entries()]
    .filter(([, e]) => e.mid || e.count > 1)
    .sort((a, b) => a[1].first - b[1].first)
    .map(([name]) => name);
}

/** Lower-cased capitalised words that name places: known places, and runs after a place preposition. */
function placeNamesIn(story: string): Set<string> {
  const places = new Set<string>();
  const tokens = story.split(/\s+/);
  tokens.forEach((token, i) => {
    const low = bare(token);
    if (KNOWN_PLACES.has(low)) places.add(low);
    if (!PLACE_PREPOSITIONS.has(low) || /[,.;:!?]$/u.test(token)) return;
    let j = i + 1;
    if (bare(tokens[j] ?? '') === 'the') j++;
    while (j < tokens.length && isCapitalisedWord(tokens[j] ?? '')) {
      places.add(bare(tokens[j] ?? ''));
      if (/[,.;:!?]$/u.test(tokens[j] ?? '')) break;
      j++;
    }
  });
  return places;
}

/** The characters a story points at, in order of first appearance, one mention per character. */
export function mentionsIn(beats: readonly Beat[]): Mention[] {
  const story = beats.map((b) => b.text).join('. ');
  const names = new Set(namesInStory(story));
  const found: Mention[] = [];
  let order = 0;
  const already = (m: Pick<Mention, 'name' | 'noun'>) =>
    found.find((f) => (m.name && f.name === m.name) || (!m.name && !f.name && m.noun && f.noun === m.noun));

  beats.forEach((beat, beatIndex) => {
    const tokens = beat.text.split(/\s+/);
    for (let i = 0; i < tokens.length; i++) {
      order++;
      const token = tokens[i] ?? '';
      const noun = nounAt(tokens, i);
      if (noun) {
        const adjectives = adjectivesBefore(tokens, i);
        const next = tokens[i + noun.length] ?? '';
        const endsHere = /[,.;:!?]$/u.test(tokens[i + noun.length - 1] ?? '');
        // "her rival Jonas", "detective Mara": the name and the noun are one character.
        const named =
          !endsHere && isCapitalisedWord(next) && names.has(cleanName(next)) ? cleanName(next) : null;
        const mention: Mention = {
          name: named,
          archetype: ARCHETYPE_BY_NOUN.get(noun.noun) ?? null,
          noun: noun.noun,
          adjectives,
          beat: beatIndex,
          order,
        };
        const earlier = already(mention) ?? (named ? undefined : found.find((f) => f.noun === noun.noun));
        if (!earlier) found.push(mention);
        i += noun.length - 1 + (named ? 1 : 0);
        continue;
      }
      // "Aiko, a shy student, …" names a person even at the start of a sentence.
      const appositiveAhead =
        /,$/u.test(token) &&
        DETERMINERS.has(bare(tokens[i + 1] ?? '')) &&
        [2, 3, 4].some((k) => nounAt(tokens, i + k) !== null);
      const candidate = cleanName(token).toLowerCase();
      const plainWord =
        FUNCTION_WORDS.has(candidate) || NOT_NAMES.has(candidate) || KNOWN_PLACES.has(candidate);
      if (isCapitalisedWord(token) && (names.has(cleanName(token)) || (appositiveAhead && !plainWord))) {
        const name = cleanName(token);
        if (already({ name, noun: null })) continue;
        // "Mara, a young witch, …": an apposition gives the name its noun.
        let appositive: { noun: string; adjectives: string[] } | null = null;
        if (/,$/u.test(token) && DETERMINERS.has(bare(tokens[i + 1] ?? ''))) {
          for (let j = i + 2; j <= i + 4 && j < tokens.length; j++) {
            const n = nounAt(tokens, j);
            if (n) {
              appositive = { noun: n.noun, adjectives: adjectivesBefore(tokens, j) };
              break;
            }
          }
        }
        // A name mentioned with a noun elsewhere ("the witch … Mara") stays one character only when said so.
        found.push({
          name,
          archetype: appositive ? (ARCHETYPE_BY_NOUN.get(appositive.noun) ?? null) : null,
          noun: appositive?.noun ?? null,
          adjectives: appositive?.adjectives ?? [],
          beat: beatIndex,
          order,
        });
      }
    }
  });
  return found;
}

/** Appearance tags that an adjective adds ("retired" → "weathered and worn"). */
export function lookTags(adjectives: readonly string[]): string[] {
  const tags = adjectives.map((a) => LOOK_ADJECTIVES[a]).filter((t): t is string => t !== undefined);
  return [...new Set(tags)];
}

/** Where the story happens. */
export interface Place {
  /** The full setting for every panel: "a small noodle bar on Mars". */
  setting: string;
  /** The venue on its own, with an article: "the noodle bar". Null when there is none. */
  venue: string | null;
  /** The venue's words for a title: "Noodle Bar". */
  venueWords: string | null;
  /** The wider place: "Mars", "the old lighthouse". Null when there is none. */
  where: string | null;
  /** The preposition the story used before the place ("on"). */
  preposition: string | null;
  /** A serving of the venue's food, for a balloon: "a bowl of noodles". */
  serving: string | null;
}

const WORD = "[\\p{L}'’-]+";

/** The place a story happens at: a venue ("a noodle bar"), a place ("on Mars", "in the old lighthouse"), or both. */
export function placeOf(story: string, characterNouns: ReadonlySet<string>): Place {
  const text = story.replace(/\s+/g, ' ');
  const venueMatch = new RegExp(
    `\\b(?:a|an|the|his|her|its|their|my|our)\\s+((?:${WORD}\\s+){0,2}?(${[...VENUES].join('|')}))\\b`,
    'iu',
  ).exec(text);
  const venueWords = venueMatch?.[1]?.toLowerCase() ?? null;

  let where: string | null = null;
  let preposition: string | null = null;
  const searchFrom = venueMatch ? venueMatch.index + venueMatch[0].length : 0;
  for (const fromIndex of venueMatch ? [searchFrom, 0] : [0]) {
    const rest = text.slice(fromIndex);
    const named =
      /\b(on|in|at|to|near|inside)\s+((?:the\s+)?\p{Lu}[\p{L}'’-]*(?:\s+\p{Lu}[\p{L}'’-]*){0,2})/u.exec(rest);
    const common =
      /\b(on|in|at|inside|near)\s+((?:the|a|an|his|her|their|its|my|our)\s+[\p{L}'’-]+(?:\s+[\p{L}'’-]+){0,2})/iu.exec(
        rest,
      );
    // A famous place named without a preposition ("searches Tokyo") still says where we are.
    const known = new RegExp(`(^|\\s)()(\\p{Lu}[\\p{L}]+)(?=[\\s,.;:!?]|$)`, 'gu');
    let bareKnown: RegExpExecArray | null = null;
    for (let m = known.exec(rest); m; m = known.exec(rest)) {
      if (KNOWN_PLACES.has((m[3] ?? '').toLowerCase())) {
        bareKnown = m;
        break;
      }
    }
    const knownAsPlace = bareKnown
      ? Object.assign([bareKnown[0], 'in', bareKnown[3] ?? ''], { index: bareKnown.index, input: rest })
      : null;
    const candidates = [named, common, knownAsPlace]
      .filter((m): m is RegExpExecArray => m !== null)
      .sort((a, b) => a.index - b.index);
    for (const m of candidates) {
      const phrase = trimPhrase(m[2] ?? '');
      const head = bare(phrase.split(' ').pop() ?? '');
      if (phrase === '' || characterNouns.has(head) || VENUES.has(head)) continue;
      where = phrase.replace(/^(?:his|her|their|its|my|our)\s/iu, 'the ');
      preposition = (m[1] ?? '').toLowerCase();
      break;
    }
    if (where) break;
  }

  const venueHead = venueMatch?.[2]?.toLowerCase() ?? '';
  const venueModifiers = (venueWords ?? '').split(' ').slice(0, -1);
  // A venue with no adjective gets "small": a noodle bar is a place, a small noodle bar is a picture.
  const looked = venueModifiers.some(
    (w) => LOOK_ADJECTIVES[w] !== undefined || /(?:y|ed|ful|ous|ish)$/u.test(w),
  );
  const venuePhrase = venueWords ? `${looked ? '' : 'small '}${venueWords}` : null;
  const food = venueModifiers.map((w) => FOODS[w]).find((f) => f !== undefined) ?? null;
  const storyFood =
    food ??
    words(text)
      .map((w) => FOODS[bare(w)])
      .find((f) => f !== undefined) ??
    null;

  let setting: string;
  if (venuePhrase && where && preposition) setting = `${withArticle(venuePhrase)} ${preposition} ${where}`;
  else if (venuePhrase) setting = withArticle(venuePhrase);
  else setting = where ?? '';
  return {
    setting: clip(setting, 14, 120),
    venue: venueWords ? `the ${venueWords}` : null,
    venueWords: venueWords && venueHead ? venueWords : null,
    where,
    preposition,
    serving: storyFood,
  };
}

/** Cut a place phrase at the first little word or punctuation: "the cliffs during the storm" → "the cliffs". */
function trimPhrase(phrase: string): string {
  const kept: string[] = [];
  for (const token of phrase.split(/\s+/)) {
    const word = bare(token);
    if (kept.length > 0 && (FUNCTION_WORDS.has(word) || word === '')) break;
    kept.push(token.replace(/[,.;:!?]+$/u, ''));
    if (/[,.;:!?]$/u.test(token)) break;
  }
  return kept
    .join(' ')
    .replace(/['’]s$/u, '')
    .trim();
}

export function withArticle(phrase: string): string {
  return `${/^[aeiou]/iu.test(phrase) ? 'an' : 'a'} ${phrase}`;
}

const SMALL_TITLE_WORDS = new Set([
  'a',
  'an',
  'the',
  'of',
  'on',
  'in',
  'at',
  'to',
  'and',
  'or',
  'for',
  'by',
  'with',
]);

/** Title case that keeps little words small ("The Noodle Bar on Mars"). */
export function titleCase(text: string): string {
  let first = true;
  return text.replace(/[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu, (w) => {
    const low = w.toLowerCase();
    const keepSmall = !first && SMALL_TITLE_WORDS.has(low);
    first = false;
    if (keepSmall) return low;
    return /\p{Lu}/u.test(w.slice(1)) ? w : w.charAt(0).toUpperCase() + w.slice(1);
  });
}

/** Drop trailing words a phrase must not end on: little words and bare adjectives. */
export function endOnAWord(ws: string[]): string[] {
  const out = [...ws];
  while (out.length > 1) {
    const last = bare(out[out.length - 1] ?? '');
    // Two letters or fewer is almost always a little word, in English or not ("à", "de", "of").
    if (FUNCTION_WORDS.has(last) || LOOK_ADJECTIVES[last] !== undefined || last.length <= 2) out.pop();
    else break;
  }
  return out;
}
