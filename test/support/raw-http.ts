// HTTP/1.1 written by hand over a TCP socket: request targets and headers exactly as given, which
// fetch and node:http would normalise or refuse.
import net from 'node:net';

export interface RawReply {
  status: number;
  headers: string;
  body: string;
}

export interface RawRequest {
  method: string;
  /** The request target as sent: origin-form (`/v1/tasks`), absolute-form (`http://x/v1/tasks`), anything. */
  target: string;
  headers?: Record<string, string>;
  body?: string;
}

export function rawRequest(baseUrl: string, request: RawRequest): Promise<RawReply> {
  const { hostname, port } = new URL(baseUrl);
  const body = request.body ?? '';
  const headers: Record<string, string> = {
    host: `${hostname}:${port}`,
    connection: 'close',
    ...(body
      ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
      : {}),
    ...request.headers,
  };
  const head = [
    `${request.method} ${request.target} HTTP/1.1`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!match) return reject(new Error(`no HTTP reply to ${request.method} ${request.target}: ${text}`));
      const split = text.indexOf('\r\n\r\n');
      resolve({ status: Number(match[1]), headers: text.slice(0, split), body: text.slice(split + 4) });
    });
    socket.write(`${head}\r\n\r\n${body}`);
  });
}
