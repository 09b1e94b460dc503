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
  svgBounds: null,
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
 * The page is built as raw RGB pixels in memory rather than in one sharp composite of everything:
 * sharp's composite converts every pixel it touches to floating point and back, which cost more than
 * the rest of the page together. Opaque pieces (the crops, the frame borders) are copied or filled in;
 * the lettering images are alpha-blended over just their own boxes.
 */
interface RawPage {
  data: Buffer;
  width: number;
  height: number;
}

interface PixelRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Raw RGBA pixels (not premultiplied) with the page position of their top-left corner. */
interface PlacedRgba {
  data: Buffer;
  width: number;
  height: number;
  left: number;
  top: number;
}

function blankPage(width: number, height: number): RawPage {
  return { data: Buffer.alloc(width * height * 3, 0xff), width, height };
}

/** Copies an opaque RGB image of exactly the rect's size into the page, row by row. */
function pasteRgb(page: RawPage, pixels: Buffer, rect: PixelRect): void {
  const rowBytes = rect.width * 3;
  if (pixels.length !== rowBytes * rect.height) {
    throw new Error(`pasteRgb: ${pixels.length} bytes for a ${rect.width}x${rect.height} RGB image`);
  }
  for (let row = 0; row < rect.height; row++) {
    const target = ((rect.y + row) * page.width + rect.x) * 3;
    pixels.copy(page.data, target, row * rowBytes, (row + 1) * rowBytes);
  }
}

function fillRect(page: RawPage, rect: PixelRect, grey: number): void {
  for (let row = rect.y; row < rect.y + rect.height; row++) {
    const start = (row * page.width + rect.x) * 3;
    page.data.fill(grey, start, start + rect.width * 3);
  }
}

/** The frame's black border inside the frame: the pixels an SVG stroke centred `border / 2` in paints. */
function drawBorder(page: RawPage, frame: Frame, border: number): void {
  if (border <= 0) return;
  const { x, y, width, height } = frame;
  fillRect(page, { x, y, width, height: border }, 0);
  fillRect(page, { x, y: y + height - border, width, height: border }, 0);
  fillRect(page, { x, y, width: border, height }, 0);
  fillRect(page, { x: x + width - border, y, width: border, height }, 0);
}

/** Draws an RGBA image over the page ("over" blending), clipped to `within`. */
function blendRgba(page: RawPage, image: PlacedRgba, within: PixelRect): void {
  const x0 = Math.max(image.left, within.x, 0);
  const y0 = Math.max(image.top, within.y, 0);
  const x1 = Math.min(image.left + image.width, within.x + within.width, page.width);
  const y1 = Math.min(image.top + image.height, within.y + within.height, page.height);
  const src = image.data;
  const dst = page.data;
  for (let y = y0; y < y1; y++) {
    let s = ((y - image.top) * image.width + (x0 - image.left)) * 4;
    let d = (y * page.width + x0) * 3;
    for (let x = x0; x < x1; x++, s += 4, d += 3) {
      const a = src[s + 3]!;
      if (a === 255) {
        dst[d] = src[s]!;
        dst[d + 1] = src[s + 1]!;
        dst[d + 2] = src[s + 2]!;
      } else if (a !== 0) {
        // Truncating, like sharp's own composite, which this replaces (results agree within one level).
        const keep = 255 - a;
        dst[d] = Math.floor((src[s]! * a + dst[d]! * keep) / 255);
        dst[d + 1] = Math.floor((src[s + 1]! * a + dst[d + 1]! * keep) / 255);
        dst[d + 2] = Math.floor((src[s + 2]! * a + dst[d + 2]! * keep) / 255);
      }
    }
  }
}

/** The frame's balloon shapes, rasterised over their bounding box only. */
async function rasteriseShapes(lettering: FrameLettering): Promise<PlacedRgba | null> {
  const box = lettering.svgBounds;
  if (!lettering.svg || !box) return null;
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${box.width}" height="${box.height}">` +
      `<g transform="translate(${-box.x},${-box.y})">${lettering.svg}</g></svg>`,
  );
  const { data, info } = await sharp(svg).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, left: box.x, top: box.y };
}

/** Lettering's text and SFX overlays are raw RGBA buffers placed in page coordinates. */
function placedRgba(overlay: OverlayOptions): PlacedRgba {
  const { input, raw, left, top } = overlay;
  if (!Buffer.isBuffer(input) || raw?.channels !== 4 || left === undefined || top === undefined) {
    throw new Error('lettering overlay is not a placed raw RGBA buffer');
  }
  return { data: input, width: raw.width, height: raw.height, left, top };
}

/**
 * Builds a lettered comic page: white paper, each render cropped into its frame, black frame borders,
 * then balloons, captions and SFX. The lettering (and its balloon shapes' rasterisation) runs while
 * sharp crops the renders; the page is then put together in memory and encoded once.
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
  const letterAndRasterise = async () => {
    const letterings = await letterPage();
    return { letterings, shapes: await Promise.all(letterings.map(rasteriseShapes)) };
  };
  const [crops, { letterings, shapes }] = await Promise.all([
    Promise.all(frames.map((f, i) => cropIntoFrame(images[i]!, f))),
    letterAndRasterise(),
  ]);

  const page = blankPage(g.width, g.height);
  frames.forEach((f, i) => {
    pasteRgb(page, crops[i]!, f);
    drawBorder(page, f, g.border);
  });
  // Lettering stays inside its frame, clear of the border, so drawing the border first paints the same
  // pixels as drawing it over the art and under the balloons. Clipping to the frame keeps it that way.
  frames.forEach((f, i) => {
    const shape = shapes[i];
    if (shape) blendRgba(page, shape, f);
    for (const overlay of letterings[i]!.overlays) blendRgba(page, placedRgba(overlay), f);
  });

  if (input.pageNumber !== undefined) {
    const num = await renderText(String(input.pageNumber), {
      role: 'label',
      size: Math.round(30 * scale),
      color: '#555555',
    });
    const top = g.height - Math.round(g.margin / 2 + num.height / 2);
    if (top > g.height - g.margin) {
      const left = Math.round((g.width - num.width) / 2);
      blendRgba(page, { ...num, left, top }, { x: 0, y: 0, width: g.width, height: g.height });
    }
  }

  const png = await sharp(page.data, { raw: { width: g.width, height: g.height, channels: 3 } })
    .png(PAGE_PNG_OPTIONS)
    .toBuffer();
  const balloons = letterings.flatMap((l) => l.balloons);
  log().debug({ frames: frames.length, balloons: balloons.length, bytes: png.length }, 'page assembled');
  return { png, balloons };
}
