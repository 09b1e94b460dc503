import { describe, expect, it } from 'vitest';
import { encodePreviewFrame, encodePreviewWithMetadataFrame, parseBinaryFrame } from '../src/gpu/previews.ts';

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 9, 9]);

function frame(...words: (number | Buffer)[]): Buffer {
  return Buffer.concat(
    words.map((w) => {
      if (Buffer.isBuffer(w)) return w;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(w, 0);
      return b;
    }),
  );
}

describe('binary preview frames', () => {
  it('reads type 1 with format 1 as JPEG and the image from byte 8', () => {
    expect(parseBinaryFrame(frame(1, 1, JPEG))).toEqual({ kind: 'preview', mime: 'image/jpeg', image: JPEG });
  });

  it('reads type 1 with format 2 as PNG (the word at offset 4, not 0 or 1)', () => {
    expect(parseBinaryFrame(frame(1, 2, PNG))).toEqual({ kind: 'preview', mime: 'image/png', image: PNG });
  });

  it('reads type 4: json length, metadata with the prompt id, then the image', () => {
    const meta = {
      node_id: '8',
      prompt_id: 'p1',
      display_node_id: '8',
      parent_node_id: null,
      real_node_id: '8',
      image_type: 'image/png',
    };
    const json = Buffer.from(JSON.stringify(meta));
    const parsed = parseBinaryFrame(frame(4, json.length, json, PNG));
    expect(parsed).toEqual({ kind: 'preview', mime: 'image/png', image: PNG, metadata: meta });
  });

  it('reads type 3 text frames', () => {
    const id = Buffer.from('12');
    expect(parseBinaryFrame(frame(3, id.length, id, Buffer.from('hello')))).toEqual({
      kind: 'text',
      nodeId: '12',
      text: 'hello',
    });
  });

  it('reports truncated, unknown and malformed frames instead of throwing', () => {
    expect(parseBinaryFrame(Buffer.from([0, 0]))).toMatchObject({ kind: 'unknown' });
    expect(parseBinaryFrame(frame(2, 1, JPEG))).toMatchObject({ kind: 'unknown', eventType: 2 });
    expect(parseBinaryFrame(frame(4, 999, Buffer.from('{}')))).toMatchObject({
      kind: 'unknown',
      eventType: 4,
    });
    expect(parseBinaryFrame(frame(4, 3, Buffer.from('{x}'), PNG))).toMatchObject({
      kind: 'unknown',
      eventType: 4,
    });
    expect(parseBinaryFrame(frame(1, 7, Buffer.from('not an image')))).toMatchObject({
      kind: 'unknown',
      eventType: 1,
    });
  });

  it('round-trips the encoders the fake server uses', () => {
    expect(parseBinaryFrame(encodePreviewFrame(PNG, 'image/png'))).toEqual({
      kind: 'preview',
      mime: 'image/png',
      image: PNG,
    });
    const parsed = parseBinaryFrame(
      encodePreviewWithMetadataFrame(JPEG, { prompt_id: 'x', image_type: 'image/jpeg' }),
    );
    expect(parsed).toMatchObject({ kind: 'preview', mime: 'image/jpeg', metadata: { prompt_id: 'x' } });
  });
});
