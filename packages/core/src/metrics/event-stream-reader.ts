// How the lifecycle exporter reads a queue's event stream. On a single Redis it sends XRANGE on a
// connection of its own and decodes the reply straight into events (stream-reply-parser.ts): Redis
// does no more than XRANGE and the client makes no string for a field it does not use. On Redis
// Cluster or Sentinel, where the connection's routing belongs to ioredis, a Lua script trims the
// entries inside Redis instead; it costs Redis several times the XRANGE. The exporter's commit script
// goes the same way: on its own connection it is encoded here, far cheaper for the client than a
// general command with thousands of arguments.
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Cluster, type Redis, type RedisOptions } from 'ioredis';
import { scripts } from '../lua/registry.js';
import type { StreamEvent } from './lifecycle-book.js';
import { countProcessError } from './process-health.js';
import {
  type ParsedReply,
  RedisReplyError,
  type ReplyShape,
  type RespValue,
  type StreamDecoding,
  type StreamEntries,
  StreamReplyParser,
} from './stream-reply-parser.js';

/** One turn's reads: the events, then the stream's XINFO and the roles seen, read after them. */
export interface EventBatch {
  events: StreamEvent[];
  /** XINFO STREAM as a flat name/value list, or its error (no such key once the stream is gone). */
  streamInfo: unknown[] | Error;
  /** The role-activity sorted set, members and scores. */
  roles: string[];
}

export interface EventStreamReader {
  /** Up to `count` entries of `stream` after `afterId` (exclusive), oldest first. */
  read(stream: string, afterId: string, count: number): Promise<StreamEvent[]>;
  /**
   * `read`, then XINFO STREAM and the roles in `rolesKey`, in that order: an entry missing from the
   * stream info was trimmed after the read, and a role that took a job read was recorded before.
   */
  readBatch(stream: string, afterId: string, count: number, rolesKey: string): Promise<EventBatch>;
  /**
   * Runs a script by its SHA1, sending its text when Redis does not have it (NOSCRIPT), and
   * answers its integer or status reply as text. Its arguments are the `args` lists, one after
   * another (a commit passes each write's arguments as they are, never copied into one list).
   */
  evalScript(script: LuaScript, keys: readonly string[], ...args: (readonly string[])[]): Promise<string>;
  /** Fails the read in progress, if any (not a script); the next command connects again. */
  cancelRead(): void;
  close(): void;
}

export interface LuaScript {
  lua: string;
  sha: string;
}

export function luaScript(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * How the exporter reads: `auto` (the direct reader where the connection is to one Redis server,
 * else the Lua reader), or `ioredis`: plain XRANGE through ioredis, which decodes every field of
 * every entry, as a general client does; the bench measures what the direct reader buys against it.
 */
export type EventStreamReaderKind = 'auto' | 'ioredis';

export function createEventStreamReader(
  connection: Redis,
  redis: Redis,
  kind: EventStreamReaderKind = 'auto',
): EventStreamReader {
  if (kind === 'ioredis') return new IoredisStreamReader(redis);
  if (connection instanceof Cluster) return new LuaStreamReader(redis);
  const { sentinels, keyPrefix } = connection.options;
  if ((sentinels && sentinels.length > 0) || keyPrefix) return new LuaStreamReader(redis);
  // A progress entry's data is kept for the lifecycle feed, which may take the exporter's entries
  // (progress entries are few; no other entry's data is decoded).
  return new DirectStreamReader(connection.options, { progressData: true });
}

/** Reads through a Lua script that joins each entry's id, event, jobId and name/prev with NUL. */
export class LuaStreamReader implements EventStreamReader {
  constructor(private readonly redis: Redis) {}

  async read(stream: string, afterId: string, count: number): Promise<StreamEvent[]> {
    return unpackEvents(await scripts.readEvents.run(this.redis, [stream], [`(${afterId}`, count]));
  }

  async readBatch(stream: string, afterId: string, count: number, rolesKey: string): Promise<EventBatch> {
    const events = await this.read(stream, afterId, count);
    const [[infoError, info], [rolesError, roles]] = (await this.redis
      .pipeline()
      .xinfo('STREAM', stream)
      .zrange(rolesKey, 0, -1, 'WITHSCORES')
      .exec()) as [[Error | null, unknown[]], [Error | null, string[] | null]];
    if (rolesError) throw rolesError;
    return { events, streamInfo: infoError ?? info, roles: roles ?? [] };
  }

  async evalScript(
    script: LuaScript,
    keys: readonly string[],
    ...args: (readonly string[])[]
  ): Promise<string> {
    // An array, not spread arguments: a large commit has more arguments than a call can take.
    const keysAndArgs = [...keys];
    for (const list of args) for (let i = 0; i < list.length; i++) keysAndArgs.push(list[i]!);
    const reply = await this.redis.evalsha(script.sha, keys.length, keysAndArgs).catch((error: unknown) => {
      if (!isNoScript(error)) throw error;
      return this.redis.eval(script.lua, keys.length, keysAndArgs);
    });
    return String(reply);
  }

  cancelRead() {}

  close() {}
}

/** XRANGE through ioredis: every field of every entry decoded into strings, then picked from. */
export class IoredisStreamReader implements EventStreamReader {
  private readonly lua: LuaStreamReader;

  constructor(private readonly redis: Redis) {
    this.lua = new LuaStreamReader(redis);
  }

  async read(stream: string, afterId: string, count: number): Promise<StreamEvent[]> {
    return (await this.redis.xrange(stream, `(${afterId}`, '+', 'COUNT', count)).map((e) =>
      decodeStreamEntry(e),
    );
  }

  async readBatch(stream: string, afterId: string, count: number, rolesKey: string): Promise<EventBatch> {
    const [[rangeError, range], [infoError, info], [rolesError, roles]] = (await this.redis
      .pipeline()
      .xrange(stream, `(${afterId}`, '+', 'COUNT', count)
      .xinfo('STREAM', stream)
      .zrange(rolesKey, 0, -1, 'WITHSCORES')
      .exec()) as [
      [Error | null, [string, string[]][]],
      [Error | null, unknown[]],
      [Error | null, string[] | null],
    ];
    if (rangeError) throw rangeError;
    if (rolesError) throw rolesError;
    return {
      events: range.map((e) => decodeStreamEntry(e)),
      streamInfo: infoError ?? info,
      roles: roles ?? [],
    };
  }

  evalScript(script: LuaScript, keys: readonly string[], ...args: (readonly string[])[]): Promise<string> {
    return this.lua.evalScript(script, keys, ...args);
  }

  cancelRead() {}

  close() {}
}

/**
 * An XRANGE or XREAD entry as ioredis answers it, as the direct decoder decodes it: `extra` is the
 * name (added), the delay (delayed), with `progressData` a progress entry's data, else prev.
 */
export function decodeStreamEntry(
  [id, fields]: [string, string[]],
  decoding: StreamDecoding = {},
): StreamEvent {
  let event = '';
  let jobId = '';
  const values: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const field = fields[i]!;
    if (field === 'event') event = fields[i + 1]!;
    else if (field === 'jobId') jobId = fields[i + 1]!;
    else if (field === 'name' || field === 'delay' || field === 'prev' || field === 'data')
      values[field] = fields[i + 1]!;
  }
  let extra = values.prev;
  if (event === 'added') extra = values.name;
  else if (event === 'delayed') extra = values.delay;
  else if (event === 'progress' && decoding.progressData) extra = values.data;
  const dash = id.indexOf('-');
  return { id, ms: Number(dash === -1 ? id : id.slice(0, dash)), event, jobId, extra: extra ?? '' };
}

function unpackEvents(packed: string): StreamEvent[] {
  if (packed === '') return [];
  const parts = packed.split('\0');
  const events: StreamEvent[] = new Array(parts.length / 4);
  for (let k = 0, p = 0; p < parts.length; k++, p += 4) {
    const id = parts[p]!;
    const dash = id.indexOf('-');
    events[k] = {
      id,
      ms: Number(dash === -1 ? id : id.slice(0, dash)),
      event: parts[p + 1]!,
      jobId: parts[p + 2]!,
      extra: parts[p + 3]!,
    };
  }
  return events;
}

/** One command of a write: its parts in order, and how to read its reply. */
interface Command {
  shape: ReplyShape;
  parts: readonly (readonly string[])[];
}

interface Pending {
  commands: readonly Command[];
  replies: ParsedReply[];
  resolve(replies: ParsedReply[]): void;
  reject(error: Error): void;
}

/** The reply, or its error reply thrown. */
function settled(reply: ParsedReply): Exclude<ParsedReply, { kind: 'error' }> {
  if (reply.kind === 'error') throw reply.error;
  return reply;
}

/**
 * XRANGE over a socket of its own, opened with the connection's host or path, TLS, user, password
 * and database. One write at a time, of one or more commands (a turn's reads go in one write). A
 * broken or closed socket fails the read in progress (the exporter retries its turn); the next read
 * connects again.
 */
export class DirectStreamReader implements EventStreamReader {
  /** The socket in use, once its handshake is done. */
  private socket: Socket | undefined;
  /** The socket whose replies are awaited (in use or still in its handshake). */
  private current: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private pending: Pending | undefined;
  private parser: StreamReplyParser;
  private closed = false;
  /** A read (not a script) is in progress, or waits for the connection. */
  private reading = false;

  /** `decoding`: what the parser keeps besides the book's fields (the feed's progress data). */
  constructor(
    private readonly options: RedisOptions,
    private readonly decoding: StreamDecoding = {},
  ) {
    this.parser = new StreamReplyParser(decoding);
  }

  async read(stream: string, afterId: string, count: number): Promise<StreamEvent[]> {
    const [reply] = await this.reads([xrange(stream, afterId, count)]);
    return entriesOf(reply!);
  }

  async readBatch(stream: string, afterId: string, count: number, rolesKey: string): Promise<EventBatch> {
    const [range, info, roles] = await this.reads([
      xrange(stream, afterId, count),
      { shape: 'value', parts: [['XINFO', 'STREAM', stream]] },
      { shape: 'value', parts: [['ZRANGE', rolesKey, '0', '-1', 'WITHSCORES']] },
    ]);
    return {
      events: entriesOf(range!),
      streamInfo: info!.kind === 'error' ? info!.error : listOf(info!, 'XINFO STREAM'),
      roles: listOf(settled(roles!), 'ZRANGE') as string[],
    };
  }

  async evalScript(
    script: LuaScript,
    keys: readonly string[],
    ...args: (readonly string[])[]
  ): Promise<string> {
    const numberOfKeys = String(keys.length);
    const run = async (parts: string[]) =>
      settled((await this.command([{ shape: 'entries', parts: [parts, keys, ...args] }]))[0]!);
    const reply = await run(['EVALSHA', script.sha, numberOfKeys]).catch((error) => {
      if (!isNoScript(error)) throw error;
      return run(['EVAL', script.lua, numberOfKeys]);
    });
    if (reply.kind !== 'status') throw new RedisReplyError('the script answered an array');
    return reply.text;
  }

  /**
   * XREAD of `streams` after `afterIds` (one each), up to `count` entries per stream, waiting up to
   * `blockMs` for the first: the streams that have entries, none when the wait ran out.
   */
  async readStreams(
    streams: readonly string[],
    afterIds: readonly string[],
    count: number,
    blockMs: number,
  ): Promise<StreamEntries[]> {
    const [reply] = await this.reads([
      {
        shape: 'streams',
        parts: [['XREAD', 'COUNT', String(count), 'BLOCK', String(blockMs), 'STREAMS'], streams, afterIds],
      },
    ]);
    const settledReply = settled(reply!);
    if (settledReply.kind !== 'streams')
      throw new RedisReplyError(`XREAD answered ${describe(settledReply)}`);
    return settledReply.streams;
  }

  /** HGET of `field` in each hash of `keys`, in one write: the values, null where there is none. */
  async hashField(keys: readonly string[], field: string): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    const replies = await this.reads(keys.map((key) => ({ shape: 'value', parts: [['HGET', key, field]] })));
    return replies.map((reply) => {
      const value = settled(reply);
      if (value.kind === 'value' && (typeof value.value === 'string' || value.value === null))
        return value.value;
      throw new RedisReplyError(`HGET answered ${describe(value)}`);
    });
  }

  /** Sends reads (cancelRead fails them). */
  private async reads(commands: Command[]): Promise<ParsedReply[]> {
    this.reading = true;
    try {
      return await this.command(commands);
    } finally {
      this.reading = false;
    }
  }

  cancelRead() {
    if (this.reading) this.drop(new Error('the event stream read was cancelled'));
  }

  close() {
    this.closed = true;
    this.drop(new Error('the event stream reader was closed'));
  }

  /** Sends the commands in one write, connecting first if need be, and answers their replies. */
  private async command(commands: readonly Command[]): Promise<ParsedReply[]> {
    // Redis may have closed the connection since the last read (a timeout, CLIENT KILL): connect
    // again rather than fail this read.
    if (this.socket && !this.socket.writable)
      this.drop(new Error('the Redis connection for the event stream closed'));
    if (!this.socket && !this.connecting) this.connecting = this.open();
    const socket = this.socket ?? (await this.connecting!);
    return this.send(socket, commands);
  }

  /** Sends the commands in one write and answers their replies, error replies included. */
  private send(socket: Socket, commands: readonly Command[]): Promise<ParsedReply[]> {
    if (this.pending) return Promise.reject(new Error('the event stream reader runs one write at a time'));
    return new Promise<ParsedReply[]>((resolve, reject) => {
      this.pending = { commands, replies: [], resolve, reject };
      socket.write(encodeCommands(commands));
    });
  }

  /** Sends one command during the handshake and answers its reply (an error reply is thrown). */
  private async handshake(socket: Socket, parts: string[]): Promise<void> {
    settled((await this.send(socket, [{ shape: 'entries', parts: [parts] }]))[0]!);
  }

  private async open(): Promise<Socket> {
    try {
      if (this.closed) throw new Error('the event stream reader was closed');
      const socket = await this.connectSocket();
      if (this.closed) {
        socket.destroy();
        throw new Error('the event stream reader was closed');
      }
      this.listen(socket);
      const { username, password, db, connectionName } = this.options;
      if (password)
        await this.handshake(socket, username ? ['AUTH', username, password] : ['AUTH', password]);
      if (db) await this.handshake(socket, ['SELECT', String(db)]);
      // The name only helps an operator reading CLIENT LIST: a name Redis refuses is not fatal.
      if (connectionName)
        await this.handshake(socket, ['CLIENT', 'SETNAME', `${connectionName}:events`]).catch((error) => {
          if (!(error instanceof RedisReplyError)) throw error;
          countProcessError('name-event-connection');
        });
      this.socket = socket;
      return socket;
    } catch (error) {
      this.drop(error as Error);
      throw error;
    } finally {
      this.connecting = undefined;
    }
  }

  private connectSocket(): Promise<Socket> {
    const { path, host, port, family, tls, connectTimeout } = this.options;
    const target = path ? { path } : { host: host ?? '127.0.0.1', port: port ?? 6379, family };
    return new Promise<Socket>((resolve, reject) => {
      const socket: Socket = tls
        ? tlsConnect({ ...target, ...(typeof tls === 'object' ? tls : {}) })
        : netConnect(target);
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new Error(`connecting to Redis for the event stream timed out`)),
        connectTimeout ?? 10_000,
      );
      socket.once('error', fail);
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.setNoDelay(true);
        socket.setKeepAlive(true);
        resolve(socket);
      });
    });
  }

  private listen(socket: Socket) {
    this.current = socket;
    this.parser = new StreamReplyParser(this.decoding);
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.current) return;
      const pending = this.pending;
      try {
        if (!pending) throw new RedisReplyError('Redis sent a reply nobody asked for');
        this.parser.append(chunk);
        const { commands, replies } = pending;
        while (replies.length < commands.length) {
          const reply = this.parser.next(commands[replies.length]!.shape);
          if (!reply) return;
          replies.push(reply);
        }
        if (!this.parser.idle) throw new RedisReplyError('Redis sent more replies than commands');
        this.pending = undefined;
        pending.resolve(replies);
      } catch (error) {
        this.drop(error as Error);
      }
    });
    socket.on('error', (error) => {
      if (socket === this.current) this.drop(error);
    });
    socket.on('end', () => {
      if (socket === this.current) this.drop(new Error('the Redis connection for the event stream closed'));
    });
    socket.on('close', () => {
      if (socket === this.current) this.drop(new Error('the Redis connection for the event stream closed'));
    });
  }

  /** Forgets the socket and fails the command in progress. */
  private drop(error: Error) {
    const { current, pending } = this;
    this.socket = undefined;
    this.current = undefined;
    this.pending = undefined;
    current?.destroy();
    pending?.reject(error);
  }
}

function xrange(stream: string, afterId: string, count: number): Command {
  return { shape: 'entries', parts: [['XRANGE', stream, `(${afterId}`, '+', 'COUNT', String(count)]] };
}

function entriesOf(reply: ParsedReply): StreamEvent[] {
  const settledReply = settled(reply);
  if (settledReply.kind !== 'entries') throw new RedisReplyError(`XRANGE answered ${describe(settledReply)}`);
  return settledReply.events;
}

function listOf(reply: ParsedReply, command: string): RespValue[] {
  if (reply.kind === 'value' && Array.isArray(reply.value)) return reply.value;
  throw new RedisReplyError(`${command} answered ${describe(reply)}`);
}

function describe(reply: ParsedReply): string {
  if (reply.kind === 'status') return reply.text;
  if (reply.kind === 'error') return reply.error.message;
  if (reply.kind === 'entries') return 'entries';
  if (reply.kind === 'streams') return 'streams';
  return Array.isArray(reply.value) ? 'an array' : String(reply.value);
}

interface WritableBuffer extends Buffer {
  utf8Write(text: string, offset: number): number;
}

/**
 * The commands in RESP, in one buffer written in place: a commit of thousands of arguments makes no
 * string per argument, and the socket sends the buffer as it is.
 */
function encodeCommands(commands: readonly Command[]): Buffer {
  const lengths: number[] = [];
  let size = 0;
  for (const { parts } of commands) {
    let count = 0;
    for (const part of parts)
      for (let i = 0; i < part.length; i++) {
        const length = Buffer.byteLength(part[i]!);
        lengths.push(length);
        size += digits(length) + length + 5;
        count++;
      }
    size += digits(count) + 3;
  }
  const out = Buffer.allocUnsafe(size) as WritableBuffer;
  let at = 0;
  let n = 0;
  for (const { parts } of commands) {
    let count = 0;
    for (const part of parts) count += part.length;
    at = writeHeader(out, at, STAR, count);
    for (const part of parts)
      for (let i = 0; i < part.length; i++) {
        at = writeHeader(out, at, DOLLAR, lengths[n++]!);
        at += out.utf8Write(part[i]!, at);
        out[at++] = CR;
        out[at++] = LF;
      }
  }
  return out;
}

const STAR = 42;
const DOLLAR = 36;
const CR = 13;
const LF = 10;

function digits(n: number): number {
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}

/** Writes `<type><n>\r\n` at `at` and answers the offset after it. */
function writeHeader(out: Buffer, at: number, type: number, n: number): number {
  out[at] = type;
  let end = at + 1 + digits(n);
  let rest = n;
  for (let k = end - 1; k > at; k--) {
    out[k] = 48 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  out[end++] = CR;
  out[end++] = LF;
  return end;
}
