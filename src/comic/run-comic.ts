import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ScriptRequest } from '../agents/script-request.ts';
import { writeScript, type ScriptResult } from '../agents/script-agent.ts';
import type { ComicScript } from '../agents/script-schema.ts';
import type { AppConfig } from '../config/env.ts';
import { LETTERING_MODES } from '../db/json.ts';
import { InputError } from '../errors.ts';
import type { PanelRenderer } from '../gpu/renderer.ts';
import { assertFamilyUsable } from './families.ts';
import { letteringRefusal } from './flow/start-comic.ts';
import { layoutPage, resolveGeometry, type Frame } from './layout.ts';
import type { ComicManifest } from './manifest.ts';
import { assemblePage } from './page.ts';
import { buildRecipe } from './prompt-builder.ts';
import { describeModels, type ModelHashSource } from './rebuild.ts';
import { ModelFamily, type RenderRecipe } from './recipe.ts';

/** The options of `comicmaster comic`, validated before any work starts. */
export const LocalComicOptions = z.object({
  // The same rules as a script request from Discord, so the CLI and the bot refuse the same input.
  story: ScriptRequest.shape.story,
  pages: ScriptRequest.shape.pages,
  panelsPerPage: ScriptRequest.shape.panelsPerPage,
  model: ModelFamily.default('illustrious'),
  /** A style LoRA by its trigger word; the LoRA file is expected as `<trigger>.safetensors`. */
  style: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_-]{2,60}$/, { message: 'style must be a trigger word: 2–60 letters, digits, _ or -' })
    .optional(),
  rtl: z.boolean().default(false),
  /** 'model': FLUX.2 paints the balloons in the panel and the pages are not lettered over them. */
  lettering: z.enum(LETTERING_MODES).default('overlay'),
  out: z.string().min(1).optional(),
});
export type LocalComicOptions = z.input<typeof LocalComicOptions>;

export interface LocalComicDeps {
  config: AppConfig;
  renderer: PanelRenderer;
  logger?: Logger;
  /** Called as the flow moves, for the CLI to print. */
  onEvent?: (message: string) => void;
  /** Hashes the model files the renderer loads, recorded in the manifest for exact rebuilds. */
  modelHashes?: ModelHashSource;
}

export interface LocalComicResult {
  outDir: string;
  manifestFile: string;
  pageFiles: string[];
  script: ComicScript;
  writer: ScriptResult['writer'];
  notes: string[];
}

export function parseLocalComicOptions(input: unknown): z.infer<typeof LocalComicOptions> {
  const result = LocalComicOptions.safeParse(input);
  if (result.success) {
    const refusal = letteringRefusal(result.data.lettering, result.data.model);
    if (refusal)
      throw new InputError(
        refusal.replace('model:flux2', '--model flux2').replace('lettering:overlay', '--lettering overlay'),
      );
    return result.data;
  }
  const messages = [...new Set(result.error.issues.map((i) => i.message))];
  throw new InputError(messages.join('; '), { operatorMessage: z.prettifyError(result.error) });
}

/** A comic id for a local run: stable for the same story and options, so a run can be repeated exactly. */
export function localComicId(options: z.infer<typeof LocalComicOptions>): string {
  const hash = createHash('sha256')
    .update(
      JSON.stringify([
        options.story,
        options.pages ?? null,
        options.panelsPerPage ?? null,
        options.model,
        options.style ?? null,
        options.rtl,
        // Only when not the default, so the ids of earlier runs stay the same.
        ...(options.lettering === 'model' ? ['lettering:model'] : []),
      ]),
    )
    .digest('hex');
  return `local-${hash.slice(0, 16)}`;
}

export function slugify(title: string): string {
  const slug = title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60);
  return slug || 'comic';
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The whole comic flow in one process, without Discord: script → frames → recipes → renders →
 * lettered pages, all written to a folder with a manifest from which the comic can be rebuilt.
 */
export async function runLocalComic(
  input: LocalComicOptions,
  deps: LocalComicDeps,
): Promise<LocalComicResult> {
  const options = parseLocalComicOptions(input);
  assertFamilyUsable(options.model, deps.config.ENABLE_EXPERIMENTAL_FAMILIES);
  const say = deps.onEvent ?? (() => {});
  const comicId = localComicId(options);

  say('Writing the script…');
  const written = await writeScript(
    { story: options.story, pages: options.pages, panelsPerPage: options.panelsPerPage },
    { config: deps.config, logger: deps.logger },
  );
  for (const note of written.notes) say(note);
  const script = written.script;
  say(
    `“${script.title}”: ${script.pages.length} page(s), ${script.pages.reduce((n, p) => n + p.panels.length, 0)} panels.`,
  );

  const outDir = resolve(options.out ?? join('comic-out', slugify(script.title)));
  await Promise.all(['pages', 'panels', 'recipes'].map((d) => mkdir(join(outDir, d), { recursive: true })));
  const geometry = resolveGeometry({});
  const style = options.style
    ? {
        trigger: options.style,
        lora: { name: `${options.style}.safetensors`, strength: 0.8, artifactKey: null },
      }
    : null;

  const manifestPages: ComicManifest['pages'] = [];
  const pageFiles: string[] = [];
  for (const [pageIndex, page] of script.pages.entries()) {
    const pageNumber = pageIndex + 1;
    const frames: Frame[] = layoutPage(
      page.panels.map((p) => p.shot),
      { ...geometry, rtl: options.rtl },
    );
    const images: Buffer[] = [];
    const manifestPanels: ComicManifest['pages'][number]['panels'] = [];
    for (const [panelIndex, frame] of frames.entries()) {
      const panelNumber = panelIndex + 1;
      const recipe: RenderRecipe = buildRecipe({
        comicId,
        script,
        page: pageNumber,
        panel: panelNumber,
        attempt: 0,
        frame,
        family: options.model,
        style,
        // A local run has no channel: keep the output safe for any audience.
        safe: true,
        drawnText: options.lettering === 'model',
      });
      say(`Rendering page ${pageNumber}, panel ${panelNumber} (${deps.renderer.kind})…`);
      const [image] = await deps.renderer.render(recipe);
      if (!image) throw new Error(`renderer returned no image for page ${pageNumber} panel ${panelNumber}`);
      const base = `p${pad(pageNumber)}-${pad(panelNumber)}`;
      const recipeFile = join('recipes', `${base}.json`);
      const imageFile = join('panels', `${base}.png`);
      await writeFile(join(outDir, recipeFile), JSON.stringify(recipe, null, 2) + '\n');
      await writeFile(join(outDir, imageFile), image.png);
      images.push(image.png);
      manifestPanels.push({
        number: panelNumber,
        recipeFile,
        imageFile,
        imageSha256: sha256(image.png),
        recipe,
      });
    }
    say(`Lettering page ${pageNumber}…`);
    const assembled = await assemblePage({
      frames,
      panels: page.panels,
      images,
      geometry,
      rtl: options.rtl,
      pageNumber,
      // The model painted the text of these panels: the page does not letter them again.
      drawnByModel: manifestPanels.map((p) => p.recipe.drawnText !== undefined),
    });
    const file = join('pages', `page-${pad(pageNumber)}.png`);
    await writeFile(join(outDir, file), assembled.png);
    pageFiles.push(join(outDir, file));
    manifestPages.push({
      number: pageNumber,
      file,
      sha256: sha256(assembled.png),
      frames,
      panels: manifestPanels,
    });
  }

  const manifest: ComicManifest = {
    manifestVersion: 1,
    generator: 'comicmaster 0.1.0',
    comicId,
    story: options.story,
    options: {
      pages: options.pages ?? null,
      panelsPerPage: options.panelsPerPage ?? null,
      model: options.model,
      style: options.style ?? null,
      rtl: options.rtl,
    },
    writer: { kind: written.writer, model: written.model, notes: written.notes },
    renderer: { kind: deps.renderer.kind, description: deps.renderer.describe() },
    geometry,
    script,
    pages: manifestPages,
    models: await describeModels(
      deps.renderer.kind,
      manifestPages.flatMap((p) => p.panels.map((q) => q.recipe)),
      deps.modelHashes,
    ),
  };
  await writeFile(join(outDir, 'script.json'), JSON.stringify(script, null, 2) + '\n');
  const manifestFile = join(outDir, 'manifest.json');
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  say(`Done. Pages are in ${relative(process.cwd(), join(outDir, 'pages')) || '.'}`);
  return { outDir, manifestFile, pageFiles, script, writer: written.writer, notes: written.notes };
}
