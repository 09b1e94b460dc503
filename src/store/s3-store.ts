/**
 * The artifact store on an S3-compatible object store (MinIO in compose, or AWS S3), for several
 * boxes sharing artifacts: a runner on one machine writes renders the bot on another posts.
 *
 * No SDK: the six calls we need (PUT, GET, HEAD, DELETE object, ListObjectsV2) are signed with AWS
 * Signature Version 4 over node:crypto and fetch, path-style (`<endpoint>/<bucket>/<key>`, what MinIO
 * expects). Keys are validated exactly as in the local store (artifact-store.ts), and a valid key is
 * made of URL-safe characters only, so it goes into the path as is.
 *
 * Writes: S3 PUTs are atomic (readers see the old object or the new one). A stream is read into memory
 * first, because a single PUT needs its length up front; artifacts are images and LoRA files.
 */
import { createHash, createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { z } from 'zod';
import { UpstreamError } from '../errors.ts';
import {
  ArtifactNotFoundError,
  validateKey,
  validatePrefix,
  type ArtifactMeta,
  type ArtifactStat,
  type ArtifactStore,
} from './artifact-store.ts';

export const S3StoreConfig = z.object({
  /** e.g. http://minio:9000 (no bucket in it). */
  endpoint: z.url(),
  bucket: z
    .string()
    .min(3)
    .max(63)
    .regex(/^[a-z0-9][a-z0-9.-]+[a-z0-9]$/, 'an S3 bucket name (lower-case letters, digits, dots, dashes)'),
  region: z.string().min(1).default('us-east-1'),
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  /** Key prefix inside the bucket (several deployments in one bucket); '' for none. */
  prefix: z.string().default(''),
});
export type S3StoreConfig = z.input<typeof S3StoreConfig>;

const UNAVAILABLE = 'The file store is unavailable right now. Please try again in a minute.';
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function xmlValues(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g');
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push(decodeXml(m[1] ?? ''));
  return out;
}
function decodeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

async function toBuffer(data: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(data)) return data;
  const chunks: Buffer[] = [];
  for await (const chunk of data)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export class S3ArtifactStore implements ArtifactStore {
  private readonly config: z.output<typeof S3StoreConfig>;
  private readonly base: URL;

  constructor(config: S3StoreConfig) {
    this.config = S3StoreConfig.parse(config);
    this.base = new URL(this.config.endpoint);
  }

  async put(key: string, data: Buffer | Readable, meta?: ArtifactMeta): Promise<ArtifactStat> {
    validateKey(key);
    const body = await toBuffer(data);
    const headers: Record<string, string> = {
      'content-type': meta?.contentType ?? 'application/octet-stream',
    };
    const res = await this.request('PUT', this.objectPath(key), { body, headers });
    await this.expectOk(res, `PUT ${key}`);
    return { size: body.length, modified: new Date() };
  }

  async getStream(key: string): Promise<Readable> {
    validateKey(key);
    const res = await this.request('GET', this.objectPath(key));
    if (res.status === 404) {
      await res.body?.cancel();
      throw new ArtifactNotFoundError(key);
    }
    await this.expectOk(res, `GET ${key}`, false);
    if (!res.body) return Readable.from([]);
    return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  }

  async getBuffer(key: string): Promise<Buffer> {
    validateKey(key);
    const res = await this.request('GET', this.objectPath(key));
    if (res.status === 404) {
      await res.body?.cancel();
      throw new ArtifactNotFoundError(key);
    }
    await this.expectOk(res, `GET ${key}`, false);
    return Buffer.from(await res.arrayBuffer());
  }

  async stat(key: string): Promise<ArtifactStat | null> {
    validateKey(key);
    const res = await this.request('HEAD', this.objectPath(key));
    if (res.status === 404) return null;
    await this.expectOk(res, `HEAD ${key}`);
    const modified = res.headers.get('last-modified');
    return {
      size: Number(res.headers.get('content-length') ?? 0),
      modified: modified ? new Date(modified) : new Date(0),
    };
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async delete(key: string): Promise<boolean> {
    // S3 answers 204 whether or not the object existed; the interface says which.
    if (!(await this.exists(key))) return false;
    const res = await this.request('DELETE', this.objectPath(key));
    await this.expectOk(res, `DELETE ${key}`);
    return true;
  }

  async list(prefix = ''): Promise<string[]> {
    validatePrefix(prefix);
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix: this.config.prefix + prefix };
      if (token) query['continuation-token'] = token;
      const res = await this.request('GET', `/${this.config.bucket}`, { query });
      await this.expectOk(res, `LIST ${prefix}`, false);
      const xml = await res.text();
      for (const k of xmlValues(xml, 'Key')) keys.push(k.slice(this.config.prefix.length));
      token =
        xmlValues(xml, 'IsTruncated')[0] === 'true' ? xmlValues(xml, 'NextContinuationToken')[0] : undefined;
    } while (token);
    return keys.sort();
  }

  private objectPath(key: string): string {
    // Valid keys and the prefix use URL-safe characters only; encode anyway so a signature never differs.
    return `/${this.config.bucket}/${(this.config.prefix + key).split('/').map(uriEncode).join('/')}`;
  }

  private async expectOk(res: Response, what: string, consume = true): Promise<void> {
    if (res.ok) {
      if (consume) await res.body?.cancel();
      return;
    }
    const detail = (await res.text().catch(() => '')).slice(0, 300);
    throw new UpstreamError('s3', UNAVAILABLE, {
      operatorMessage: `S3 ${what} answered ${res.status}: ${detail}`,
      // Credentials, a missing bucket or a refused request will not fix themselves.
      retryable: res.status >= 500 || res.status === 429,
    });
  }

  /** One signed request (AWS Signature Version 4, header form). */
  private async request(
    method: string,
    path: string,
    options: { body?: Buffer; headers?: Record<string, string>; query?: Record<string, string> } = {},
  ): Promise<Response> {
    const now = new Date();
    const amzDate = now
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    const day = amzDate.slice(0, 8);
    const payloadHash = sha256(options.body ?? '');
    const basePath = this.base.pathname.replace(/\/$/, '');
    const canonicalUri = basePath + path;
    const query = Object.entries(options.query ?? {})
      .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const headers: Record<string, string> = {
      host: this.base.host,
      'x-amz-content-sha256': payloadHash,
      'x-amz-date': amzDate,
      ...Object.fromEntries(
        Object.entries(options.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v.trim()]),
      ),
    };
    const names = Object.keys(headers).sort();
    const canonicalHeaders = names.map((n) => `${n}:${headers[n]}\n`).join('');
    const signedHeaders = names.join(';');
    const canonicalRequest = [method, canonicalUri, query, canonicalHeaders, signedHeaders, payloadHash].join(
      '\n',
    );
    const scope = `${day}/${this.config.region}/s3/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
    const signingKey = hmac(
      hmac(hmac(hmac(`AWS4${this.config.secretAccessKey}`, day), this.config.region), 's3'),
      'aws4_request',
    );
    const signature = createHmac('sha256', signingKey).update(stringToSign).digest('hex');
    const authorization = `AWS4-HMAC-SHA256 Credential=${this.config.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;

    const url = `${this.base.origin}${canonicalUri}${query ? `?${query}` : ''}`;
    const { host: _host, ...sent } = headers;
    try {
      return await fetch(url, {
        method,
        headers: { ...sent, authorization },
        ...(options.body ? { body: options.body } : {}),
      });
    } catch (cause) {
      throw new UpstreamError('s3', UNAVAILABLE, {
        cause,
        operatorMessage: `S3 ${method} ${path} failed: ${String(cause)}`,
      });
    }
  }
}
