/**
 * Binary WebSocket frames from ComfyUI (server.py `send_bytes` / `encode_bytes`).
 *
 * Every frame starts with a big-endian uint32 event type:
 * - 1 PREVIEW_IMAGE: uint32 image format (1 = JPEG, 2 = PNG), then the image from byte 8.
 * - 3 TEXT: uint32 node-id length, the node id, then UTF-8 text.
 * - 4 PREVIEW_IMAGE_WITH_METADATA (only after the client sent supports_preview_metadata):
 *   uint32 JSON length, the JSON metadata {node_id, prompt_id, …, image_type}, then the image.
 *
 * Pure functions, so the layout is unit-tested without a socket. Both popular TypeScript clients
 * read the format word at the wrong offset; the offsets here are the ones server.py writes.
 */
import { z } from 'zod';

export const BINARY_EVENT = {
  PREVIEW_IMAGE: 1,
  UNENCODED_PREVIEW_IMAGE: 2,
  TEXT: 3,
  PREVIEW_IMAGE_WITH_METADATA: 4,
} as const;

export type PreviewMime = 'image/jpeg' | 'image/png' | 'image/webp';

export const previewMetadataSchema = z.looseObject({
  node_id: z.string().optional(),
  prompt_id: z.string().optional(),
  display_node_id: z.string().nullish(),
  parent_node_id: z.string().nullish(),
  real_node_id: z.string().nullish(),
  image_type: z.string().optional(),
});
export type PreviewMetadata = z.infer<typeof previewMetadataSchema>;

export type BinaryFrame =
  | { kind: 'preview'; mime: PreviewMime; image: Buffer; metadata?: PreviewMetadata }
  | { kind: 'text'; nodeId: string; text: string }
  | { kind: 'unknown'; eventType: number; reason: string };

const FORMAT_TO_MIME: Record<number, PreviewMime> = { 1: 'image/jpeg', 2: 'image/png' };

/** Sniff the image bytes; used when metadata omits image_type or names a type we do not know. */
export function sniffImageMime(image: Uint8Array): PreviewMime | undefined {
  if (image.length >= 3 && image[0] === 0xff && image[1] === 0xd8 && image[2] === 0xff) return 'image/jpeg';
  if (image.length >= 8 && image[0] === 0x89 && image[1] === 0x50 && image[2] === 0x4e && image[3] === 0x47) {
    return 'image/png';
  }
  if (
    image.length >= 12 &&
    Buffer.from(image.subarray(0, 4)).toString('latin1') === 'RIFF' &&
    Buffer.from(image.subarray(8, 12)).toString('latin1') === 'WEBP'
  ) {
    return 'image/webp';
  }
  return undefined;
}

function toBuffer(data: ArrayBuffer | Uint8Array | Buffer[] | Buffer): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** Decode one binary frame. Never throws: a frame we cannot read comes back as `unknown` with why. */
export function parseBinaryFrame(data: ArrayBuffer | Uint8Array | Buffer[] | Buffer): BinaryFrame {
  const frame = toBuffer(data);
  if (frame.length < 4) return { kind: 'unknown', eventType: -1, reason: `frame of ${frame.length} bytes` };
  const eventType = frame.readUInt32BE(0);

  if (eventType === BINARY_EVENT.PREVIEW_IMAGE) {
    if (frame.length < 8)
      return { kind: 'unknown', eventType, reason: 'preview frame without a format word' };
    const format = frame.readUInt32BE(4);
    const image = frame.subarray(8);
    const mime = FORMAT_TO_MIME[format] ?? sniffImageMime(image);
    if (!mime) return { kind: 'unknown', eventType, reason: `unknown preview image format ${format}` };
    return { kind: 'preview', mime, image };
  }

  if (eventType === BINARY_EVENT.PREVIEW_IMAGE_WITH_METADATA) {
    if (frame.length < 8)
      return { kind: 'unknown', eventType, reason: 'metadata frame without a length word' };
    const jsonLength = frame.readUInt32BE(4);
    if (8 + jsonLength > frame.length) {
      return { kind: 'unknown', eventType, reason: `metadata length ${jsonLength} exceeds the frame` };
    }
    let metadata: PreviewMetadata;
    try {
      metadata = previewMetadataSchema.parse(JSON.parse(frame.subarray(8, 8 + jsonLength).toString('utf8')));
    } catch {
      return { kind: 'unknown', eventType, reason: 'preview metadata is not valid JSON' };
    }
    const image = frame.subarray(8 + jsonLength);
    const declared = metadata.image_type;
    const mime =
      declared === 'image/jpeg' || declared === 'image/png' || declared === 'image/webp'
        ? declared
        : sniffImageMime(image);
    if (!mime)
      return { kind: 'unknown', eventType, reason: `unknown preview image type ${String(declared)}` };
    return { kind: 'preview', mime, image, metadata };
  }

  if (eventType === BINARY_EVENT.TEXT) {
    if (frame.length < 8) return { kind: 'unknown', eventType, reason: 'text frame without a length word' };
    const idLength = frame.readUInt32BE(4);
    if (8 + idLength > frame.length)
      return { kind: 'unknown', eventType, reason: 'node id length exceeds the frame' };
    return {
      kind: 'text',
      nodeId: frame.subarray(8, 8 + idLength).toString('utf8'),
      text: frame.subarray(8 + idLength).toString('utf8'),
    };
  }

  return { kind: 'unknown', eventType, reason: `binary event type ${eventType} is not handled` };
}

/** Encoders: the inverse layouts, as server.py writes them (used by the fake server and tests). */
export function encodePreviewFrame(image: Buffer, mime: 'image/jpeg' | 'image/png'): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(BINARY_EVENT.PREVIEW_IMAGE, 0);
  header.writeUInt32BE(mime === 'image/png' ? 2 : 1, 4);
  return Buffer.concat([header, image]);
}

export function encodePreviewWithMetadataFrame(image: Buffer, metadata: PreviewMetadata): Buffer {
  const json = Buffer.from(JSON.stringify(metadata), 'utf8');
  const header = Buffer.alloc(8);
  header.writeUInt32BE(BINARY_EVENT.PREVIEW_IMAGE_WITH_METADATA, 0);
  header.writeUInt32BE(json.length, 4);
  return Buffer.concat([header, json, image]);
}
