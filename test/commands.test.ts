/**
 * Slash command definitions and option schemas: what Discord is told, and what handlers accept.
 */
import { describe, expect, it } from 'vitest';
import {
  commandBodies,
  ComicNewOptions,
  ComicShowOptions,
  parseOptions,
  QueueOptions,
} from '../src/commands/index.ts';
import { InputError } from '../src/errors.ts';
import { validateCommandBodies } from './fakes/discord/command-validation.ts';

type Option = {
  name: string;
  type: number;
  required?: boolean;
  options?: Option[];
  choices?: { value: string }[];
  autocomplete?: boolean;
  min_value?: number;
  max_value?: number;
  max_length?: number;
};

function option(path: string[]): Option {
  let options = commandBodies().find((c) => c.name === path[0])?.options as Option[] | undefined;
  let found: Option | undefined;
  for (const name of path.slice(1)) {
    found = options?.find((o) => o.name === name);
    options = found?.options;
  }
  if (!found) throw new Error(`no option ${path.join(' ')}`);
  return found;
}

describe('command definitions', () => {
  it('include /comic, /queue and /runner, have unique names, and pass the limits Discord checks on registration', () => {
    const bodies = commandBodies();
    const names = bodies.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['comic', 'queue', 'runner']));
    expect(new Set(names).size).toBe(names.length);
    expect(validateCommandBodies(bodies, 'guild')).toBeNull();
  });

  it('/comic has new, show and cancel; /runner has status', () => {
    expect(option(['comic', 'new']).type).toBe(1);
    expect(option(['comic', 'show', 'id'])).toMatchObject({ type: 3, required: true });
    expect(option(['comic', 'cancel', 'id'])).toMatchObject({ type: 3, required: true });
    expect(option(['runner', 'status']).type).toBe(1);
  });

  it('/comic new declares prompt (required, ≤2000), pages 1–8, panels 1–6, style autocomplete, model choices, rtl', () => {
    expect(option(['comic', 'new', 'prompt'])).toMatchObject({ type: 3, required: true, max_length: 2000 });
    expect(option(['comic', 'new', 'pages'])).toMatchObject({ type: 4, min_value: 1, max_value: 8 });
    expect(option(['comic', 'new', 'panels'])).toMatchObject({ type: 4, min_value: 1, max_value: 6 });
    expect(option(['comic', 'new', 'style'])).toMatchObject({ type: 3, autocomplete: true });
    const models = option(['comic', 'new', 'model']).choices?.map((c) => c.value) ?? [];
    expect(models).toEqual(expect.arrayContaining(['illustrious', 'noobai', 'flux']));
    expect(models.length).toBeLessThanOrEqual(25); // Discord's limit on choices
    expect(option(['comic', 'new', 'rtl']).type).toBe(5);
  });
});

describe('option schemas', () => {
  it('accept a full /comic new and trim the prompt', () => {
    const parsed = parseOptions(
      ComicNewOptions,
      { prompt: '  a cat detective ', pages: 2, panels: 4, style: 'noir', model: 'flux', rtl: true },
      'comic new',
    );
    expect(parsed).toEqual({
      prompt: 'a cat detective',
      pages: 2,
      panels: 4,
      style: 'noir',
      model: 'flux',
      rtl: true,
    });
  });

  it('refuse out-of-range pages and an unknown model, naming each option', () => {
    const error = (() => {
      try {
        parseOptions(ComicNewOptions, { prompt: 'x', pages: 9, model: 'sd15' }, 'comic new');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).userMessage).toMatch(/`pages`/);
    expect((error as InputError).userMessage).toMatch(/`model`/);
  });

  it('refuse a blank prompt, an over-long prompt and a blank comic id', () => {
    expect(ComicNewOptions.safeParse({ prompt: '   ' }).success).toBe(false);
    expect(ComicNewOptions.safeParse({ prompt: 'x'.repeat(2001) }).success).toBe(false);
    expect(ComicShowOptions.safeParse({ id: ' ' }).success).toBe(false);
    expect(QueueOptions.safeParse({}).success).toBe(true);
  });
});
