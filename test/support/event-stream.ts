// Follows GET /v1/events with `curl -N`, as a person would, and parses the Server-Sent Events it prints.
import { type ChildProcess, spawn } from 'node:child_process';
import { waitFor } from './wait.js';

export interface StreamedEvent {
  id: string;
  /** The SSE event name: `message` unless the server named it. */
  event: string;
  data: any;
}

export interface EventStreamClient {
  events: StreamedEvent[];
  /** Everything curl printed, comments included. */
  text(): string;
  waitForEvent(
    match: (event: StreamedEvent) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<StreamedEvent>;
  /** Resolves once the server has answered with the stream's first line. */
  opened(): Promise<void>;
  close(): void;
  /** Resolves when curl exits (the server ended the stream, or close()). */
  exited: Promise<number | null>;
}

export function followEvents(url: string, headers: Record<string, string> = {}): EventStreamClient {
  const args = ['-N', '-s', url];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  const child: ChildProcess = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: StreamedEvent[] = [];
  let all = '';
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    all += chunk;
    pending += chunk;
    let end = pending.indexOf('\n\n');
    while (end !== -1) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
      }
      const data = fields.get('data');
      if (data !== undefined)
        events.push({
          id: fields.get('id') ?? '',
          event: fields.get('event') ?? 'message',
          data: JSON.parse(data),
        });
      end = pending.indexOf('\n\n');
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    events,
    text: () => all,
    waitForEvent: (match, what, timeoutMs = 15_000) =>
      waitFor(() => events.find(match), {
        timeoutMs,
        what: `${what} on the event stream (got ${events.length})`,
      }),
    opened: async () => {
      await waitFor(() => all.includes('retry:'), { timeoutMs: 10_000, what: 'the event stream to open' });
    },
    close: () => {
      if (child.exitCode === null) child.kill();
    },
    exited,
  };
}
