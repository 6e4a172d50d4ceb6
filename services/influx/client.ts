// InfluxDB access: queries through the official client's HTTP transport, writes through node:http
// (post() says why). The server's major version is read from the X-Influxdb-Version header of /ping,
// so one configuration serves:
//   1.x (Debian's 1.6.7 has only POST /write),  2.x and 3.x (POST /api/v2/write).
// Reads are InfluxQL on /query, which all three answer (2.x through its v1 compatibility API and a
// DBRP mapping). User input never becomes query text: it travels in `params` and is referenced as
// $name (InfluxDB 1.x HTTP API, "Bind parameters").
import http from 'node:http';
import https from 'node:https';
import { HttpError, InfluxDB } from '@influxdata/influxdb-client';
import type { InfluxConfig } from '../config/schema.ts';

export interface InfluxServer {
  major: 1 | 2 | 3;
  version: string;
}

export interface SeriesResult {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

export type QueryParams = Record<string, string | number | boolean>;

export class InfluxUnreachableError extends Error {}

/** An InfluxQL identifier, double-quoted and escaped (InfluxQL spec: "Identifiers"). */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Whether a failed write should be retried (true) or can never succeed as it is (false). */
export function isRetryableWriteError(error: unknown): boolean {
  if (error instanceof HttpError) {
    // 400: unparsable line or field-type conflict; 413: body too large. Retrying cannot help.
    return error.statusCode !== 400 && error.statusCode !== 413;
  }
  return true;
}

export class InfluxStore {
  private readonly transport;
  private server: InfluxServer | null = null;

  constructor(private readonly config: InfluxConfig) {
    this.transport = new InfluxDB({ url: config.url, timeout: config.timeoutMs }).transport;
  }

  get url(): string {
    return this.config.url;
  }

  /** Asks /ping for the server version. Throws InfluxUnreachableError when nothing answers. */
  async detect(): Promise<InfluxServer> {
    let header = '';
    try {
      await this.transport.request('/ping', null, { method: 'GET', headers: this.authHeaders(2) }, (headers) => {
        const value = headers['x-influxdb-version'];
        header = Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
      });
    } catch (error) {
      if (!(error instanceof HttpError)) {
        throw new InfluxUnreachableError(`no InfluxDB answers at ${this.config.url}: ${(error as Error).message}`);
      }
      // 3.x may ask for a token on /ping; the header still names the version.
      const value = error.headers?.['x-influxdb-version'];
      header = Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
      if (!header) throw error;
    }
    const major = Number(/^v?(\d+)/.exec(header)?.[1] ?? '1');
    this.server = { major: major >= 3 ? 3 : major === 2 ? 2 : 1, version: header || 'unknown' };
    return this.server;
  }

  /** On 1.x, creates the database if it is missing (CREATE DATABASE is idempotent there). */
  async ensureDatabase(): Promise<void> {
    const server = this.server ?? (await this.detect());
    if (server.major !== 1) return;
    await this.rawQuery(`CREATE DATABASE ${quoteIdentifier(this.config.database)}`, {});
  }

  /** Writes newline-separated line protocol with ms timestamps. */
  async write(body: string | Buffer): Promise<void> {
    const server = this.server ?? (await this.detect());
    const { database, org, retentionPolicy } = this.config;
    const query =
      server.major === 1
        ? new URLSearchParams({ db: database, precision: 'ms', ...(retentionPolicy ? { rp: retentionPolicy } : {}) })
        : new URLSearchParams({ org, bucket: database, precision: 'ms' });
    const path = server.major === 1 ? `/write?${query}` : `/api/v2/write?${query}`;
    const send = () => this.post(path, body, { 'content-type': 'text/plain; charset=utf-8', ...this.authHeaders(server.major) });
    try {
      await send();
    } catch (error) {
      // A 1.x server that started empty (or lost its data directory) has no database yet.
      if (!(error instanceof HttpError && error.statusCode === 404 && server.major === 1)) throw error;
      await this.ensureDatabase();
      await send();
    }
  }

  /**
   * POSTs a body and resolves on a 2xx answer; any other answer rejects with the client library's
   * HttpError, as its transport would. The transport copies every body into a new Buffer first
   * (createRequestMessage), an ArrayBuffer alive until InfluxDB answers: at 10,000 points/s those
   * outlived young-generation collections and added to V8's external memory, whose limit sets off
   * marking on the main thread (services/broker/library-patches.ts). Here the body is written as it is.
   */
  private post(path: string, body: string | Buffer, headers: Record<string, string>): Promise<void> {
    const url = new URL(this.config.url.replace(/\/$/, '') + path);
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      // Node's global agents keep connections alive (Node 19 and later).
      const options = { method: 'POST', timeout: this.config.timeoutMs, headers: { ...headers, 'content-length': Buffer.byteLength(body) } };
      const req = (secure ? https.request : http.request)(url, options, (res) => {
        const status = res.statusCode ?? 0;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('error', reject);
        res.on('end', () => {
          if (status >= 200 && status < 300) return resolve();
          // An early answer may come before the whole body is sent; the caller may reuse the body's
          // memory once this settles, so the rest of it must never reach the socket.
          req.destroy();
          reject(new HttpError(status, res.statusMessage, text, res.headers['retry-after'], res.headers['content-type'], undefined, res.headers));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`InfluxDB at ${this.config.url} did not answer within ${this.config.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Runs one InfluxQL statement with bound parameters (POST, so writes such as CREATE work too). */
  async query(influxql: string, params: QueryParams = {}): Promise<SeriesResult[]> {
    return this.rawQuery(influxql, params);
  }

  private async rawQuery(influxql: string, params: QueryParams): Promise<SeriesResult[]> {
    const server = this.server ?? (await this.detect());
    const form = new URLSearchParams({ db: this.config.database, q: influxql, epoch: 'ms' });
    if (Object.keys(params).length > 0) form.set('params', JSON.stringify(params));
    const response = (await this.transport.request('/query', form.toString(), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        ...this.authHeaders(server.major),
      },
    })) as { results?: { error?: string; series?: SeriesResult[] }[]; error?: string };
    const first = response.results?.[0];
    const error = response.error ?? first?.error;
    if (error) throw new Error(`InfluxQL error: ${error}`);
    return first?.series ?? [];
  }

  private authHeaders(major: number): Record<string, string> {
    const token = this.config.token;
    if (!token) return {};
    if (major === 1 && token.includes(':')) {
      return { authorization: `Basic ${Buffer.from(token).toString('base64')}` };
    }
    return { authorization: `Token ${token}` };
  }
}
