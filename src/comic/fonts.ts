import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { ComicMasterError } from '../errors.ts';

/**
 * The lettering fonts. sharp renders text through pango; a TTF passed as `fontfile` is registered with
 * fontconfig and then picked by its family name. A missing or unreadable file does not fail: pango
 * silently falls back to DejaVu, so `verifyFonts` checks that the comic font really changes the glyphs.
 */
export type FontRole = 'dialogue' | 'caption' | 'whisper' | 'shout' | 'label';

export interface FontFace {
  /** Pango family + style, e.g. "Comic Neue Bold". */
  family: string;
  file: string;
}

const require = createRequire(import.meta.url);

function packageFile(pkg: string, relative: string): string {
  const root = dirname(require.resolve(`${pkg}/package.json`));
  return join(root, relative);
}

export const FONTS: Record<FontRole, FontFace> = {
  dialogue: {
    family: 'Comic Neue Bold',
    file: packageFile('@expo-google-fonts/comic-neue', '700Bold/ComicNeue_700Bold.ttf'),
  },
  caption: {
    family: 'Comic Neue Bold Italic',
    file: packageFile('@expo-google-fonts/comic-neue', '700Bold_Italic/ComicNeue_700Bold_Italic.ttf'),
  },
  whisper: {
    family: 'Comic Neue Italic',
    file: packageFile('@expo-google-fonts/comic-neue', '400Regular_Italic/ComicNeue_400Regular_Italic.ttf'),
  },
  shout: {
    family: 'Bangers',
    file: packageFile('@expo-google-fonts/bangers', '400Regular/Bangers_400Regular.ttf'),
  },
  label: {
    family: 'Comic Neue',
    file: packageFile('@expo-google-fonts/comic-neue', '400Regular/ComicNeue_400Regular.ttf'),
  },
};

export interface RenderedText {
  /** Raw RGBA pixels, ready for sharp's composite({ raw }). */
  data: Buffer;
  width: number;
  height: number;
}

export interface TextStyle {
  role: FontRole;
  /** Font size in pixels (rendered at 72 dpi, so points equal pixels). */
  size: number;
  color?: string;
  /** Wrap width in pixels; the rendered image is as wide as its longest line, never wider. */
  wrapWidth?: number;
  align?: 'left' | 'centre' | 'right';
  /** Extra space between lines, in pixels. */
  lineSpacing?: number;
}

export function escapeMarkup(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Renders plain text (escaped here) with a comic font; the size of the result is the real text extent. */
export async function renderText(text: string, style: TextStyle): Promise<RenderedText> {
  const face = FONTS[style.role];
  const markup = `<span foreground="${style.color ?? '#111111'}">${escapeMarkup(text)}</span>`;
  const { data, info } = await sharp({
    text: {
      text: markup,
      font: `${face.family} ${Math.max(1, Math.round(style.size))}`,
      fontfile: face.file,
      dpi: 72,
      rgba: true,
      wrap: 'word',
      align: style.align ?? 'centre',
      ...(style.wrapWidth !== undefined ? { width: Math.max(1, Math.floor(style.wrapWidth)) } : {}),
      ...(style.lineSpacing !== undefined ? { spacing: Math.round(style.lineSpacing) } : {}),
    },
  })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

let verified: Promise<void> | undefined;

/**
 * Fails loudly when a comic font file is missing or pango fell back to its default font, which would
 * otherwise produce pages in DejaVu Sans without any error. Checked once per process.
 */
export function verifyFonts(): Promise<void> {
  verified ??= (async () => {
    for (const [role, face] of Object.entries(FONTS)) {
      if (!existsSync(face.file)) {
        throw new ComicMasterError(
          'font_missing',
          'The lettering fonts are not installed; reinstall the npm packages.',
          {
            operatorMessage: `font file for ${role} missing: ${face.file}`,
          },
        );
      }
    }
    const probe = 'Wow, quick lettering 123!';
    const fallback = await sharp({ text: { text: probe, font: 'DejaVu Sans 40', dpi: 72, rgba: true } })
      .raw()
      .toBuffer({ resolveWithObject: true });
    for (const role of ['dialogue', 'shout'] as const) {
      const r = await renderText(probe, { role, size: 40 });
      if (r.width === fallback.info.width && r.height === fallback.info.height) {
        throw new ComicMasterError('font_fallback', 'The comic lettering font could not be loaded.', {
          operatorMessage: `pango fell back to DejaVu for ${FONTS[role].family} (${FONTS[role].file})`,
        });
      }
    }
  })();
  return verified;
}
