import sharp, { type OverlayOptions } from 'sharp';
import type { Panel } from '../agents/script-schema.ts';
import { InputError } from '../errors.ts';
import { log } from '../log.ts';
import { renderText, verifyFonts } from './fonts.ts';
import { resolveGeometry, type Frame, type PageGeometry } from './layout.ts';
import {
  LetteringError,
  letterFrame,
  type FrameLettering,
  type LetteringOptions,
  type PlacedBalloon,
} from './lettering.ts';

/** Share of a frame balloons may cover before lettering asks for more room. */
const DEFAULT_MAX_COVERAGE = 0.35;

/** Fast, moderate compression: pages are re-encoded for upload by encodeUnderLimit anyway. */
export const PAGE_PNG_OPTIONS = { compressionLevel: 1, adaptiveFiltering: false } as const;

export interface AssemblePageInput {
  frames: Frame[];
  panels: Panel[];
  /** One render per panel, any size; cropped into its frame around the most salient region. */
  images: Buffer[];
  geometry?: Partial<PageGeometry>;
  rtl?: boolean;
  /** Printed small in the bottom margin when given. */
  pageNumber?: number;
  maxCoverage?: LetteringOptions['maxCoverage'];
  /**
   * Per panel: true when the model drew that panel's balloons, caption and SFX itself (the recipe's
   * drawnText, FLUX.2 with lettering "model"). Such a panel gets its frame but no overlaid lettering.
   */
  drawnByModel?: readonly boolean[];
}

/** What a panel whose text the model drew gets: nothing on top of the art (and no say in the page's size). */
const NO_LETTERING: FrameLettering = {
  balloons: [],
  svg: '',
  overlays: [],
  baseSize: Number.POSITIVE_INFINITY,
};

export interface AssembledPage {
  png: Buffer;
  balloons: PlacedBalloon[];
}

/** Crops a render into a frame with sharp's attention (saliency) strategy. */
export async function cropIntoFrame(image: Buffer, frame: Frame): Promise<Buffer> {
  return sharp(image)
    .rotate()
    .resize(frame.width, frame.height, { fit: 'cover', position: sharp.strategy.attention })
    .flatten({ background: '#ffffff' })
    .raw()
    .toBuffer();
}

/**
 * One SVG per frame, the size of the frame: its border plus its balloon shapes (given in page
 * coordinates, hence the translate). Rasterising six frame-sized SVGs is cheaper than one page-sized one.
 */
function frameOverlaySvg(frame: Frame, border: number, shapes: string): Buffer {
  const half = border / 2;
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${frame.width}" height="${frame.height}">` +
      `<g transform="translate(${-frame.x},${-frame.y})">${shapes}</g>` +
      `<rect x="${half}" y="${half}" width="${frame.width - border}" height="${frame.height - border}" fill="none" stroke="#000" stroke-width="${border}"/>` +
      `</svg>`,
  );
}

/**
 * Builds a lettered comic page: white paper, each render cropped into its frame, black frame borders,
 * then balloons, captions and SFX. Everything goes to sharp in one composite call: the renders, one SVG
 * per frame holding its border and balloon shapes, then the text images on top.
 */
export async function assemblePage(input: AssemblePageInput): Promise<AssembledPage> {
  const g = resolveGeometry(input.geometry);
  const { frames, panels, images } = input;
  if (frames.length !== panels.length || frames.length !== images.length) {
    throw new InputError('Each panel needs one frame and one image.', {
      operatorMessage: `assemblePage: ${frames.length} frames, ${panels.length} panels, ${images.length} images`,
    });
  }
  await verifyFonts();
  const scale = g.width / 1988;

  const letteringOptions = {
    rtl: input.rtl ?? false,
    scale,
    border: g.border,
    maxCoverage: input.maxCoverage,
  };
  // A crowded panel in a narrow frame may not fit under the coverage cap. A comic must not fail for
  // that: let its balloons cover more of that one frame (as a letterer would) before giving up.
  const coverageSteps = [input.maxCoverage ?? DEFAULT_MAX_COVERAGE, 0.5, 0.65].filter(
    (c, i, all) => i === 0 || c > all[0]!,
  );
  const letterWithFallback = async (f: Frame, i: number, options: LetteringOptions) => {
    if (input.drawnByModel?.[i] === true) return NO_LETTERING;
    for (const [step, maxCoverage] of coverageSteps.entries()) {
      try {
        return await letterFrame(f, panels[i]!, { ...options, maxCoverage });
      } catch (error) {
        if (!(error instanceof LetteringError) || step === coverageSteps.length - 1) throw error;
        log().debug({ panel: i + 1, maxCoverage }, 'lettering did not fit; allowing more coverage');
      }
    }
    throw new Error('unreachable');
  };
  const letterPage = async () => {
    const first = await Promise.all(frames.map((f, i) => letterWithFallback(f, i, letteringOptions)));
    // One lettering size for the whole page, as a letterer would: re-letter frames that got a bigger
    // size than the most crowded frame could take.
    const uniform = Math.min(...first.map((l) => l.baseSize));
    return Promise.all(
      first.map((l, i) =>
        l.baseSize > uniform + 0.01
          ? letterWithFallback(frames[i]!, i, { ...letteringOptions, startSize: uniform })
          : l,
      ),
    );
  };
  const [crops, letterings] = await Promise.all([
    Promise.all(frames.map((f, i) => cropIntoFrame(images[i]!, f))),
    letterPage(),
  ]);

  const overlays: OverlayOptions[] = crops.map((data, i) => ({
    input: data,
    raw: { width: frames[i]!.width, height: frames[i]!.height, channels: 3 },
    left: frames[i]!.x,
    top: frames[i]!.y,
  }));
  frames.forEach((f, i) =>
    overlays.push({ input: frameOverlaySvg(f, g.border, letterings[i]!.svg), left: f.x, top: f.y }),
  );
  for (const l of letterings) overlays.push(...l.overlays);

  if (input.pageNumber !== undefined) {
    const num = await renderText(String(input.pageNumber), {
      role: 'label',
      size: Math.round(30 * scale),
      color: '#555555',
    });
    const top = g.height - Math.round(g.margin / 2 + num.height / 2);
    if (top > g.height - g.margin) {
      overlays.push({
        input: num.data,
        raw: { width: num.width, height: num.height, channels: 4 },
        left: Math.round((g.width - num.width) / 2),
        top,
      });
    }
  }

  const png = await sharp({
    create: { width: g.width, height: g.height, channels: 3, background: '#ffffff' },
  })
    .composite(overlays)
    .png(PAGE_PNG_OPTIONS)
    .toBuffer();
  const balloons = letterings.flatMap((l) => l.balloons);
  log().debug({ frames: frames.length, balloons: balloons.length, bytes: png.length }, 'page assembled');
  return { png, balloons };
}
