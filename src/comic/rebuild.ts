import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { InputError } from '../errors.ts';
import type { PanelRenderer } from '../gpu/renderer.ts';
import { readManifest, resolveManifestPath } from './export/load.ts';
import type { ComicManifest, ManifestModelFile, ManifestModels } from './manifest.ts';
import { assemblePage } from './page.ts';
import type { RenderRecipe } from './recipe.ts';

/**
 * Exact rebuilds: a comic re-made from its manifest (same script, recipes, seeds and frames), with
 * every panel and page compared byte for byte with what the manifest recorded. Model file hashes are
 * part of the record, so a rebuild on a box with other weights says why its pixels differ.
 */

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const pad = (n: number) => String(n).padStart(2, '0');

// ---------------------------------------------------------------------------------------------------
// Model files and their hashes

export type ModelRole = ManifestModelFile['role'];

export interface ModelFileRef {
  role: ModelRole;
  file: string;
  /** A hash the recipe itself carries (LoRAs trained here record theirs). */
  recordedSha256: string | null;
}

/** The model files a set of recipes uses, each once, in a stable order. */
export function modelFilesOf(recipes: RenderRecipe[]): ModelFileRef[] {
  const seen = new Map<string, ModelFileRef>();
  const add = (role: ModelRole, file: string, recordedSha256: string | null = null) => {
    const key = `${role}:${file}`;
    const known = seen.get(key);
    if (!known) seen.set(key, { role, file, recordedSha256 });
    else if (!known.recordedSha256 && recordedSha256) known.recordedSha256 = recordedSha256;
  };
  for (const recipe of recipes) {
    const m = recipe.models;
    if (m.kind === 'checkpoint') add('checkpoint', m.checkpoint);
    else if (m.kind === 'sd3') {
      add('checkpoint', m.checkpoint);
      if (m.textEncoders)
        for (const file of [m.textEncoders.clipL, m.textEncoders.clipG, m.textEncoders.t5]) add('clip', file);
    } else if (m.kind === 'flux2') {
      add('unet', m.unet);
      add('clip', m.textEncoder);
      add('vae', m.vae);
    } else {
      add('unet', m.unet);
      add('clip', m.clipT5);
      add('clip', m.clipL);
      add('vae', m.vae);
    }
    for (const lora of recipe.loras) add('lora', lora.name, lora.sha256);
    if (recipe.controlNet) add('controlnet', recipe.controlNet.model);
  }
  return [...seen.values()];
}

/** Something that can hash the model files a renderer loads (on the GPU box, from its folders). */
export interface ModelHashSource {
  hash(role: ModelRole, file: string): Promise<{ sha256: string | null; note: string | null }>;
}

/** ComfyUI's folders under models/ for each role; newer ComfyUI versions renamed two of them. */
const COMFY_FOLDERS: Record<ModelRole, string[]> = {
  checkpoint: ['checkpoints'],
  unet: ['diffusion_models', 'unet'],
  clip: ['text_encoders', 'clip'],
  vae: ['vae'],
  lora: ['loras'],
  controlnet: ['controlnet'],
};

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Hashes model files where ComfyUI keeps them: `modelsDir` is ComfyUI's models/ folder, `loraDir`
 * (COMFYUI_LORA_DIR) where the runner installs LoRAs. ComfyUI's API does not report file hashes, so
 * this only works on the box that holds the files. Hashes are cached for the life of the source.
 */
export function localModelHasher(dirs: { modelsDir?: string; loraDir?: string }): ModelHashSource {
  const cache = new Map<string, Promise<string>>();
  const candidates = (role: ModelRole, file: string): string[] => {
    const roots: string[] = [];
    if (role === 'lora' && dirs.loraDir) roots.push(resolve(dirs.loraDir));
    if (dirs.modelsDir) for (const folder of COMFY_FOLDERS[role]) roots.push(resolve(dirs.modelsDir, folder));
    return roots
      .map((root) => ({ root, path: resolve(root, ...file.split('/')) }))
      .filter(({ root, path }) => path.startsWith(root + sep))
      .map(({ path }) => path);
  };
  return {
    async hash(role, file) {
      const paths = candidates(role, file);
      if (paths.length === 0) return { sha256: null, note: `no folder is configured for ${role} files` };
      for (const path of paths) {
        const info = await stat(path).catch(() => undefined);
        if (!info?.isFile()) continue;
        let pending = cache.get(path);
        if (!pending) {
          pending = hashFile(path);
          cache.set(path, pending);
        }
        return { sha256: await pending, note: null };
      }
      return { sha256: null, note: `${file} was not found in the ${role} folder(s) on this machine` };
    },
  };
}

/**
 * The `models` section of a manifest. Storyboard sketches load no model files. For ComfyUI, each
 * file the recipes name, with its hash when `source` (or the recipe) can tell it, else null and why.
 */
export async function describeModels(
  rendererKind: PanelRenderer['kind'],
  recipes: RenderRecipe[],
  source?: ModelHashSource,
): Promise<ManifestModels> {
  if (rendererKind === 'storyboard') return { files: [], note: 'storyboard sketches use no model files' };
  const files: ManifestModelFile[] = [];
  for (const ref of modelFilesOf(recipes)) {
    const found = source ? await source.hash(ref.role, ref.file) : null;
    let hash: string | null = null;
    let note: string | null = null;
    if (found?.sha256) hash = found.sha256;
    else if (ref.recordedSha256) {
      hash = ref.recordedSha256;
      note = found?.note ? `hash from the recipe (${found.note})` : 'hash from the recipe';
    } else note = found?.note ?? 'ComfyUI does not report model file hashes and no models folder was given';
    files.push({ role: ref.role, file: ref.file, sha256: hash, note });
  }
  const note = source
    ? null
    : 'hashes come from ComfyUI model folders on the GPU box; none was given, so only recipe-recorded hashes are listed';
  return { files, note };
}

/** The hashes this box has for a list of model files. */
export async function hashModelFiles(
  files: ManifestModelFile[],
  source: ModelHashSource,
): Promise<ManifestModels> {
  const hashed: ManifestModelFile[] = [];
  for (const file of files) {
    const found = await source.hash(file.role, file.file);
    hashed.push({ role: file.role, file: file.file, sha256: found.sha256, note: found.note });
  }
  return { files: hashed, note: null };
}

export interface ModelCheck {
  /** Files whose hash differs from the recorded one: the rebuild cannot match these pixels. */
  warnings: string[];
  /** Files that could not be checked, and why. */
  notes: string[];
}

/** Compares the model hashes a comic was made with to the ones this box has now. */
export function compareModels(recorded: ManifestModels | undefined, current: ManifestModels): ModelCheck {
  const warnings: string[] = [];
  const notes: string[] = [];
  if (!recorded) {
    notes.push('The manifest records no model hashes (it predates them): model files could not be checked.');
    return { warnings, notes };
  }
  const now = new Map(current.files.map((f) => [`${f.role}:${f.file}`, f]));
  for (const file of recorded.files) {
    const here = now.get(`${file.role}:${file.file}`);
    if (file.sha256 && here?.sha256 && file.sha256 !== here.sha256) {
      warnings.push(
        `model ${file.file} (${file.role}) differs from the one the comic was made with: pixels will not match ` +
          `(recorded ${file.sha256.slice(0, 12)}…, here ${here.sha256.slice(0, 12)}…)`,
      );
    } else if (file.sha256 && !here?.sha256) {
      notes.push(
        `model ${file.file} (${file.role}) could not be checked here: ${here?.note ?? 'not used by this renderer'}`,
      );
    } else if (!file.sha256) {
      notes.push(
        `model ${file.file} (${file.role}) has no recorded hash: ${file.note ?? 'unknown when the comic was made'}`,
      );
    }
  }
  return { warnings, notes };
}

// ---------------------------------------------------------------------------------------------------
// Rebuilding

export interface RebuildOptions {
  renderer: PanelRenderer;
  /** Where the rebuilt comic goes (default: `rebuild/` inside the comic folder). */
  outDir?: string;
  /** Hashes the model files the renderer loads, to compare with the manifest's. */
  modelHashes?: ModelHashSource;
  onEvent?: (message: string) => void;
  logger?: Logger;
}

export interface ImageComparison {
  page: number;
  /** Null for a whole page. */
  panel: number | null;
  file: string;
  expected: string;
  actual: string;
  match: boolean;
}

export interface RebuildReport {
  manifestFile: string;
  outDir: string;
  renderer: { kind: PanelRenderer['kind']; description: string };
  originalRenderer: ComicManifest['renderer'];
  /** True when the renderer always gives the same bytes for the same recipe (storyboard). */
  deterministic: boolean;
  panels: ImageComparison[];
  pages: ImageComparison[];
  models: ModelCheck;
  /** Every panel and page has the recorded bytes. */
  identical: boolean;
  /** The rebuild differs although its renderer is deterministic: something changed in the code or files. */
  failed: boolean;
  warnings: string[];
}

/**
 * Re-makes a comic from its manifest: the same recipes (prompts, models, seeds) rendered again,
 * lettered into the stored frames, written to `outDir` with a new manifest, and compared byte for byte.
 */
export async function rebuildComic(manifestPath: string, options: RebuildOptions): Promise<RebuildReport> {
  const say = options.onEvent ?? (() => {});
  const manifestFile = await resolveManifestPath(manifestPath);
  const manifest = await readManifest(manifestFile);
  const outDir = resolve(options.outDir ?? join(dirname(manifestFile), 'rebuild'));
  if (outDir === dirname(manifestFile)) {
    throw new InputError('The rebuild would overwrite the original comic: choose another output folder.');
  }
  const { renderer } = options;
  const deterministic = renderer.kind === 'storyboard';
  const warnings: string[] = [];
  if (renderer.kind !== manifest.renderer.kind) {
    warnings.push(
      `The comic was made with ${manifest.renderer.kind} panels and this rebuild uses ${renderer.kind}: pixels will not match.`,
    );
  }

  const recipes = manifest.pages.flatMap((p) => p.panels.map((q) => q.recipe));
  const currentModels = await describeModels(renderer.kind, recipes, options.modelHashes);
  // The recorded files are checked against this box whatever renders now: the question is whether
  // the weights the comic was made with are the ones here.
  const models = compareModels(
    manifest.models,
    options.modelHashes && manifest.models
      ? await hashModelFiles(manifest.models.files, options.modelHashes)
      : currentModels,
  );
  warnings.push(...models.warnings);
  for (const w of warnings) say(`warning: ${w}`);

  await Promise.all(['pages', 'panels', 'recipes'].map((d) => mkdir(join(outDir, d), { recursive: true })));
  const panels: ImageComparison[] = [];
  const pages: ImageComparison[] = [];
  const newPages: ComicManifest['pages'] = [];

  for (const page of [...manifest.pages].sort((a, b) => a.number - b.number)) {
    const scriptPage = manifest.script.pages[page.number - 1];
    if (
      !scriptPage ||
      scriptPage.panels.length !== page.panels.length ||
      page.frames.length !== page.panels.length
    ) {
      throw new InputError(
        `The manifest is inconsistent: page ${page.number} does not match its script page.`,
      );
    }
    const images: Buffer[] = [];
    const newPanels: ComicManifest['pages'][number]['panels'] = [];
    for (const panel of [...page.panels].sort((a, b) => a.number - b.number)) {
      say(`Rendering page ${page.number}, panel ${panel.number} (${renderer.kind})…`);
      const [image] = await renderer.render(panel.recipe);
      if (!image) throw new Error(`renderer returned no image for page ${page.number} panel ${panel.number}`);
      const base = `p${pad(page.number)}-${pad(panel.number)}`;
      const imageFile = join('panels', `${base}.png`);
      const recipeFile = join('recipes', `${base}.json`);
      await writeFile(join(outDir, imageFile), image.png);
      await writeFile(join(outDir, recipeFile), JSON.stringify(panel.recipe, null, 2) + '\n');
      const actual = sha256(image.png);
      panels.push({
        page: page.number,
        panel: panel.number,
        file: imageFile,
        expected: panel.imageSha256,
        actual,
        match: actual === panel.imageSha256,
      });
      images.push(image.png);
      newPanels.push({ ...panel, imageFile, recipeFile, imageSha256: actual });
    }
    say(`Lettering page ${page.number}…`);
    const assembled = await assemblePage({
      frames: [...page.frames].sort((a, b) => a.index - b.index),
      panels: scriptPage.panels,
      images,
      geometry: manifest.geometry,
      rtl: manifest.options.rtl,
      pageNumber: page.number,
    });
    const file = join('pages', `page-${pad(page.number)}.png`);
    await writeFile(join(outDir, file), assembled.png);
    const actual = sha256(assembled.png);
    pages.push({
      page: page.number,
      panel: null,
      file,
      expected: page.sha256,
      actual,
      match: actual === page.sha256,
    });
    newPages.push({ ...page, file, sha256: actual, panels: newPanels });
  }

  const rebuilt: ComicManifest = {
    ...manifest,
    renderer: { kind: renderer.kind, description: renderer.describe() },
    pages: newPages,
    models: currentModels,
  };
  await writeFile(join(outDir, 'script.json'), JSON.stringify(manifest.script, null, 2) + '\n');
  await writeFile(join(outDir, 'manifest.json'), JSON.stringify(rebuilt, null, 2) + '\n');

  const identical = [...panels, ...pages].every((c) => c.match);
  const failed = deterministic && !identical;
  options.logger?.info(
    {
      comicId: manifest.comicId,
      identical,
      deterministic,
      mismatches: [...panels, ...pages].filter((c) => !c.match).length,
    },
    'comic rebuilt',
  );
  say(`Rebuilt into ${relative(process.cwd(), outDir) || '.'}`);
  return {
    manifestFile,
    outDir,
    renderer: { kind: renderer.kind, description: renderer.describe() },
    originalRenderer: manifest.renderer,
    deterministic,
    panels,
    pages,
    models,
    identical,
    failed,
    warnings,
  };
}

/** The report as people read it in a terminal. */
export function formatRebuildReport(report: RebuildReport): string {
  const lines: string[] = [];
  const all = [...report.panels, ...report.pages];
  const matched = all.filter((c) => c.match).length;
  lines.push(
    `Renderer: ${report.renderer.description} (the comic was made with: ${report.originalRenderer.description})`,
  );
  for (const c of all) {
    const what = c.panel === null ? `page ${c.page}` : `page ${c.page} panel ${c.panel}`;
    lines.push(`  ${c.match ? 'same     ' : 'DIFFERENT'} ${what.padEnd(18)} ${c.file}`);
  }
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  for (const n of report.models.notes) lines.push(`note: ${n}`);
  lines.push(`${matched} of ${all.length} images are byte-identical to the original.`);
  if (report.failed)
    lines.push(
      'The renderer is deterministic, so different bytes mean the code, fonts or files changed since the comic was made.',
    );
  else if (!report.identical && !report.deterministic) {
    lines.push(
      'This renderer is not guaranteed to be deterministic (GPU sampling), so small differences can be expected.',
    );
  }
  lines.push(`Rebuilt comic: ${report.outDir}`);
  return lines.join('\n');
}
