// GET /v1/events: lifecycle transitions as Server-Sent Events, from the manager's one feed reader.
// Connections are bounded, and a client that reads slower than transitions arrive is disconnected
// (it resumes with Last-Event-ID) rather than buffered without end or allowed to slow the reader.
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  EventsQuery,
  type FeedEvent,
  type FeedFilter,
  isProgressEvent,
  isStreamId,
  JobbersError,
  type LifecycleFeed,
  normalizeTaskId,
  type TaskRegistry,
} from '@jobbers/core';
import { HttpError } from '../plugins/errors.js';
import { errorResponses } from '../schemas.js';

export interface EventRoutesOptions {
  feed: LifecycleFeed;
  registry: TaskRegistry;
  /** Event streams open at once on this manager; more are answered 429. @default 64 */
  maxStreams?: number;
  /** Bytes a stream may have waiting to be sent before it is dropped. @default 1048576 */
  maxBufferedBytes?: number;
  /** Stream entries read per queue when resuming from Last-Event-ID. @default 1000 */
  replayLimit?: number;
  /** A comment line is sent this often so proxies keep the connection open. @default 15000 */
  keepAliveMs?: number;
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, options) => {
  const maxStreams = options.maxStreams ?? 64;
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
  const replayLimit = options.replayLimit ?? 1000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const open = new Set<ServerResponse>();

  // Open streams never end by themselves: close them first, so the server can close.
  app.addHook('preClose', async () => {
    for (const raw of open) raw.end();
  });

  app.get(
    '/events',
    {
      schema: {
        operationId: 'streamEvents',
        summary: 'Follow lifecycle transitions live, as Server-Sent Events',
        description:
          'Filters: `queue`, `task`, `id` (repeated for several tasks, up to 100) and `transition` (repeated for several; progress reports are then left out); each repeated filter matches any of its values, different filters all must match. Each event is `id: <stream entry id>` and `data: {id, queue, task, taskId, transition, state, at}` (transition as in jobbers_job_transitions_total; a delayed submission is `created` in state `delayed`). The ctx.progress(value) of a running task comes as a named event, `event: progress` with `data: {kind: "progress", id, queue, task, taskId, progress, at}` (an EventSource delivers it to addEventListener("progress") only). Send `Last-Event-ID` (or `lastEventId`) to resume after an event: up to 1,000 entries per queue are replayed. The ids are per queue: resume exactly with a `queue` filter. A client that reads too slowly is disconnected.',
        tags: ['events'],
        querystring: EventsQuery,
        response: {
          200: {
            description: 'A stream of `text/event-stream` events that does not end',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...errorResponses(400, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const { queue, task, id, transition, lastEventId: fromQuery } = request.query;
      const header = request.headers['last-event-id'];
      const afterId = (typeof header === 'string' && header !== '' ? header : undefined) ?? fromQuery;
      if (afterId !== undefined && !isStreamId(afterId)) {
        throw new JobbersError(
          'INVALID_FILTER',
          `Last-Event-ID must be an event id such as 1733580000000-0, got "${afterId.slice(0, 64)}"`,
        );
      }
      const queues = queuesFor(options.registry, queue, task);
      const filter: FeedFilter = {
        queue,
        task,
        taskIds: id === undefined ? undefined : new Set(id.map(normalizeTaskId)),
        transitions: transition === undefined ? undefined : new Set(transition),
      };
      if (open.size >= maxStreams) {
        throw new HttpError(
          429,
          'TOO_MANY_STREAMS',
          `this manager serves at most ${maxStreams} event streams`,
        );
      }
      const raw = reply.raw;
      open.add(raw);
      let unsubscribe: (() => void) | undefined;
      let keepAlive: NodeJS.Timeout | undefined;
      const close = () => {
        open.delete(raw);
        unsubscribe?.();
        clearInterval(keepAlive);
        if (!raw.writableEnded) raw.end();
      };
      // Each batch of the feed leaves in one write; a write that leaves too much unsent drops the client.
      const send = (chunk: string | Buffer) => {
        if (raw.writableEnded) return;
        raw.write(chunk);
        if (raw.writableLength > maxBufferedBytes) {
          request.log.info({ bufferedBytes: raw.writableLength }, 'event stream too slow: disconnected');
          close();
        }
      };
      raw.on('close', close);
      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      raw.write('retry: 2000\n\n');
      keepAlive = setInterval(() => send(': keep-alive\n\n'), keepAliveMs);
      try {
        const stop = await options.feed.follow({
          filter,
          queues,
          afterId,
          replayLimit,
          maxPending: 10_000,
          onOverflow: close,
          onBatch: (events, whole) => send(batchBytes(events, whole)),
        });
        if (raw.writableEnded) stop();
        else unsubscribe = stop;
      } catch (error) {
        // The status is sent; the client sees the stream end and reconnects after `retry`.
        request.log.warn({ err: error }, 'event stream could not resume: closed');
        close();
      }
      return reply;
    },
  );
};

// Every stream that takes a whole batch of the feed (no filter) sends the same bytes: they are made
// once, however many streams send them. A stream with a filter sends the texts of the events it
// takes, each also made once.
const texts = new WeakMap<FeedEvent, string>();
const batches = new WeakMap<readonly FeedEvent[], Buffer>();

/** The JSON of a queue's or task type's name, made once per name. */
const quotedNames = new Map<string, string>();

function quoted(name: string): string {
  let json = quotedNames.get(name);
  if (json === undefined) {
    json = JSON.stringify(name);
    if (quotedNames.size < 10_000) quotedNames.set(name, json);
  }
  return json;
}

/**
 * `id: <id>` and `data: <the event as JSON>`, as JSON.stringify(event) writes it, made by hand.
 * Transitions are unnamed (`message`) events; progress reports are named `progress`.
 */
function renderEvent(event: FeedEvent): string {
  const task = event.task === null ? 'null' : quoted(event.task);
  if (isProgressEvent(event)) {
    // A value JSON has no text for (undefined, a function) leaves the field out, as JSON.stringify does.
    const progress = JSON.stringify(event.progress);
    const field = progress === undefined ? '' : `"progress":${progress},`;
    return `event: progress\nid: ${event.id}\ndata: {"kind":"progress","id":"${event.id}","queue":${quoted(event.queue)},"task":${task},"taskId":${JSON.stringify(event.taskId)},${field}"at":${event.at}}\n\n`;
  }
  return `id: ${event.id}\ndata: {"id":"${event.id}","queue":${quoted(event.queue)},"task":${task},"taskId":${JSON.stringify(event.taskId)},"transition":"${event.transition}","state":"${event.state}","at":${event.at}}\n\n`;
}

function eventText(event: FeedEvent): string {
  let text = texts.get(event);
  if (text === undefined) {
    text = renderEvent(event);
    texts.set(event, text);
  }
  return text;
}

interface WritableBuffer extends Buffer {
  utf8Write(text: string, offset: number): number;
}

/** The events' texts in one buffer, each written in place (no joined string is made). */
function batchBytes(events: readonly FeedEvent[], shared: boolean): Buffer {
  let bytes = shared ? batches.get(events) : undefined;
  if (bytes !== undefined) return bytes;
  const parts: string[] = new Array(events.length);
  let size = 0;
  for (let i = 0; i < events.length; i++) {
    const text = shared ? renderEvent(events[i]!) : eventText(events[i]!);
    parts[i] = text;
    size += Buffer.byteLength(text);
  }
  bytes = Buffer.allocUnsafe(size);
  let at = 0;
  for (const text of parts) at += (bytes as WritableBuffer).utf8Write(text, at);
  if (shared) batches.set(events, bytes);
  return bytes;
}

/** The queues a filter can match; an unknown queue or task type is refused. */
function queuesFor(registry: TaskRegistry, queue: string | undefined, task: string | undefined): string[] {
  if (queue !== undefined && !registry.queues.includes(queue)) {
    throw new JobbersError(
      'UNKNOWN_QUEUE',
      `unknown queue "${queue}"; known queues: ${registry.queues.join(', ')}`,
    );
  }
  let queues = queue === undefined ? [...registry.queues] : [queue];
  if (task !== undefined) {
    const def = registry.get(task);
    queues = queues.filter((q) => q === def.queue || def.queues?.includes(q));
  }
  return queues;
}
