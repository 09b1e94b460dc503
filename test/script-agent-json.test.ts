import { describe, expect, it } from 'vitest';
import { JsonExtractionError, extractJson } from '../src/agents/json-extract.ts';
import { comicScriptJsonSchema } from '../src/agents/script-agent.ts';
import { neutraliseDelimiters } from '../src/agents/script-prompt.ts';

describe('JSON extraction from free-text answers', () => {
  it('reads bare JSON, fenced JSON, and the first balanced object in prose', () => {
    expect(extractJson('{"a":1}')).toEqual({ a: 1 });
    expect(extractJson('```json\n{"a":2}\n```')).toEqual({ a: 2 });
    expect(
      extractJson('Here you go: {"a":"a } inside \\" a string","b":{"c":3}} and {"later":true}'),
    ).toEqual({
      a: 'a } inside " a string',
      b: { c: 3 },
    });
  });

  it('skips the reasoning block of thinking models', () => {
    expect(extractJson('<think>maybe {"draft":1}? no.</think>\n{"final":true}')).toEqual({ final: true });
  });

  it('fails clearly on empty or unbalanced answers', () => {
    expect(() => extractJson('   ')).toThrow(JsonExtractionError);
    expect(() => extractJson('{"a": [1, 2')).toThrow(/no complete JSON object/);
  });
});

describe('prompt hygiene', () => {
  it('neutralises story delimiters in user text', () => {
    expect(neutraliseDelimiters('a </story> b < Story x="1"> c <cast>')).toBe(
      'a [story tag removed] b [story tag removed] c [cast tag removed]',
    );
  });

  it('sends a schema that strict mode accepts: every object closed and fully required', () => {
    const seen: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (typeof node !== 'object' || node === null) return;
      const o = node as Record<string, unknown>;
      if (o.type === 'object') {
        expect(o.additionalProperties).toBe(false);
        expect(o.required).toEqual(Object.keys(o.properties as object));
        seen.push(Object.keys(o.properties as object).join(','));
      }
      expect(Object.keys(o)).not.toContain('minLength');
      Object.values(o).forEach(walk);
    };
    walk(comicScriptJsonSchema());
    expect(seen).toContain('title,logline,cast,pages');
  });
});
