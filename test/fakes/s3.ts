/**
 * A small fake S3 (path-style, one bucket) on 127.0.0.1:0 for the S3 artifact store's tests: PUT, GET,
 * HEAD and DELETE object, ListObjectsV2 with prefix and continuation tokens (page size is a knob, so
 * tests reach the second page with a few keys). Every request must carry a SigV4 Authorization header
 * for the configured access key and an x-amz-content-sha256 that matches the body, or it gets 403 as
 * S3 would.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeS3Options {
  bucket: string;
  accessKeyId: string;
  /** Keys per ListObjectsV2 page (S3's max-keys default is 1000). */
  pageSize?: number;
}

interface StoredObject {
  body: Buffer;
  contentType: string;
  modified: Date;
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export class FakeS3 {
  readonly objects = new Map<string, StoredObject>();
  /** Method and path of every request, for tests. */
  readonly requests: { method: string; path: string }[] = [];
  private server: Server;
  private port = 0;

  constructor(private readonly options: FakeS3Options) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private error(res: ServerResponse, status: number, code: string, method: string) {
    res.statusCode = status;
    res.setHeader('content-type', 'application/xml');
    res.end(
      method === 'HEAD'
        ? undefined
        : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({ method, path: url.pathname });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);

    const auth = req.headers.authorization ?? '';
    const signed =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/[^/]+\/s3\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/.exec(
        auth,
      );
    const bodyHash = createHash('sha256').update(body).digest('hex');
    if (!signed || signed[1] !== this.options.accessKeyId || !signed[2]?.split(';').includes('host')) {
      return this.error(res, 403, 'AccessDenied', method);
    }
    if (req.headers['x-amz-content-sha256'] !== bodyHash || !req.headers['x-amz-date']) {
      return this.error(res, 403, 'XAmzContentSHA256Mismatch', method);
    }

    const [, bucket, ...rest] = url.pathname.split('/');
    if (bucket !== this.options.bucket) return this.error(res, 404, 'NoSuchBucket', method);
    const key = rest.map(decodeURIComponent).join('/');

    if (key === '') {
      if (method !== 'GET' || url.searchParams.get('list-type') !== '2')
        return this.error(res, 400, 'InvalidRequest', method);
      return this.list(res, url.searchParams.get('prefix') ?? '', url.searchParams.get('continuation-token'));
    }
    const object = this.objects.get(key);
    switch (method) {
      case 'PUT':
        this.objects.set(key, {
          body,
          contentType: req.headers['content-type'] ?? 'binary/octet-stream',
          modified: new Date(),
        });
        res.setHeader('etag', `"${createHash('md5').update(body).digest('hex')}"`);
        res.end();
        return;
      case 'GET':
      case 'HEAD':
        if (!object) return this.error(res, 404, 'NoSuchKey', method);
        res.setHeader('content-type', object.contentType);
        res.setHeader('content-length', object.body.length);
        res.setHeader('last-modified', object.modified.toUTCString());
        res.end(method === 'GET' ? object.body : undefined);
        return;
      case 'DELETE':
        this.objects.delete(key);
        res.statusCode = 204;
        res.end();
        return;
      default:
        return this.error(res, 405, 'MethodNotAllowed', method);
    }
  }

  private list(res: ServerResponse, prefix: string, token: string | null) {
    const pageSize = this.options.pageSize ?? 1000;
    const all = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    const start = token ? all.findIndex((k) => k > Buffer.from(token, 'base64url').toString()) : 0;
    const from = start < 0 ? all.length : start;
    const page = all.slice(from, from + pageSize);
    const truncated = from + pageSize < all.length;
    const next = truncated ? Buffer.from(page[page.length - 1] ?? '').toString('base64url') : '';
    res.setHeader('content-type', 'application/xml');
    res.end(
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${this.options.bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix>` +
        `<KeyCount>${page.length}</KeyCount><MaxKeys>${pageSize}</MaxKeys><IsTruncated>${truncated}</IsTruncated>` +
        page
          .map(
            (k) =>
              `<Contents><Key>${xmlEscape(k)}</Key><Size>${this.objects.get(k)?.body.length ?? 0}</Size></Contents>`,
          )
          .join('') +
        (truncated ? `<NextContinuationToken>${next}</NextContinuationToken>` : '') +
        `</ListBucketResult>`,
    );
  }
}

export async function startFakeS3(options: FakeS3Options): Promise<FakeS3> {
  const fake = new FakeS3(options);
  await fake.start();
  return fake;
}
