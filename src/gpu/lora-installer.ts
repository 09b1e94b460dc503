/**
 * Copies a LoRA file from the artifact store into ComfyUI's models/loras folder (COMFYUI_LORA_DIR),
 * so a render that needs a freshly trained style can run on a box that has never seen it.
 *
 * The copy is atomic: bytes go to a hidden temp file in the same folder, are fsynced, then renamed
 * over the final name. ComfyUI lists the folder on every /object_info, so it must never see a
 * half-written .safetensors (it would offer it, and the LoraLoader would fail on it).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { LoraRef } from '../comic/recipe.ts';
import { ComicMasterError } from '../errors.ts';
import type { ArtifactStore } from '../store/artifact-store.ts';

export class LoraInstallError extends ComicMasterError {
  constructor(userMessage: string, operatorMessage: string, cause?: unknown) {
    super('lora_install_failed', userMessage, { operatorMessage, cause });
    this.name = 'LoraInstallError';
  }
}

/** The absolute path a LoRA name (as ComfyUI lists it, e.g. `style/ink.safetensors`) maps to. */
export function loraPath(loraDir: string, name: string): string {
  const root = resolve(loraDir);
  const target = resolve(root, ...name.split('/'));
  const rel = relative(root, target);
  if (rel === '' || rel.startsWith('..') || rel.split(sep).includes('..')) {
    throw new LoraInstallError(
      `The LoRA name ${name} is not allowed.`,
      `LoRA name escapes COMFYUI_LORA_DIR: ${name}`,
    );
  }
  return target;
}

export interface InstallResult {
  path: string;
  /** False when the file was already there. */
  copied: boolean;
  bytes: number;
}

/**
 * Install one LoRA from `lora.artifactKey`. A file already at the target is left alone. When the
 * recipe records the file's sha256, the copy is checked against it before it becomes visible.
 */
export async function installLora(
  store: ArtifactStore,
  loraDir: string,
  lora: Pick<LoraRef, 'name' | 'artifactKey' | 'sha256'>,
  logger?: Logger,
): Promise<InstallResult> {
  if (!lora.artifactKey) {
    throw new LoraInstallError(
      `LoRA ${lora.name} has no stored file to install.`,
      `LoRA ${lora.name} has no artifactKey`,
    );
  }
  const target = loraPath(loraDir, lora.name);
  const existing = await stat(target).catch(() => undefined);
  if (existing?.isFile()) return { path: target, copied: false, bytes: existing.size };

  await mkdir(dirname(target), { recursive: true });
  // Hidden and without the .safetensors extension, so ComfyUI never lists it.
  const temp = join(dirname(target), `.${randomUUID()}.partial`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const source = await store.getStream(lora.artifactKey);
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(source, hasher, createWriteStream(temp, { flags: 'wx' }));
    const digest = hash.digest('hex');
    if (lora.sha256 && digest !== lora.sha256) {
      throw new LoraInstallError(
        `The stored file of LoRA ${lora.name} is not the one the recipe was made with.`,
        `sha256 mismatch for ${lora.artifactKey}: expected ${lora.sha256}, got ${digest}`,
      );
    }
    const handle = await open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    logger?.info({ lora: lora.name, artifactKey: lora.artifactKey, bytes }, 'LoRA installed into ComfyUI');
    return { path: target, copied: true, bytes };
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof ComicMasterError) throw err;
    throw new LoraInstallError(
      `LoRA ${lora.name} could not be installed on the GPU box.`,
      `copying ${lora.artifactKey} to ${target} failed: ${String(err)}`,
      err,
    );
  }
}
