import { describe, it } from 'vitest';
import { buildRecipe } from '../src/comic/prompt-builder.ts';
import { expectGolden, goldenInput } from './golden/golden.ts';

// Golden recipes: reviewed once by a person, then compared exactly. UPDATE_GOLDEN=1 rewrites them.
describe('prompt builder golden recipes', () => {
  it.each(['illustrious', 'noobai', 'flux'] as const)('%s', (family) => {
    expectGolden(`recipe.${family}`, buildRecipe(goldenInput(family)));
  });
});
