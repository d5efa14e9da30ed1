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
import { readEventsScript } from './exporter-scripts.js';
import type { StreamEvent } from './lifecycle-book.js';
import { type ParsedReply, RedisReplyError, StreamReplyParser } from './stream-reply-parser.js';

export interface EventStreamReader {
  /** Up to `count` entries of `stream` after `afterId` (exclusive), oldest first. */
  read(stream: string, afterId: string, count: number): Promise<StreamEvent[]>;
  /**
   * Runs a script by its SHA1, sending its text when Redis does not have it (NOSCRIPT), and
   * answers its integer or status reply as text.
   */
  evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<string>;
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

/** The direct reader where the connection is to one Redis server, else the Lua reader. */
export function createEventStreamReader(connection: Redis, redis: Redis): EventStreamReader {
  if (connection instanceof Cluster) return new LuaStreamReader(redis);
  const { sentinels, keyPrefix } = connection.options;
  if ((sentinels && sentinels.length > 0) || keyPrefix) return new LuaStreamReader(redis);
  return new DirectStreamReader(connection.options);
}

type ReadEventsCommand = (stream: string, afterId: string, count: number) => Promise<string>;

/** Reads through a Lua script that joins each entry's id, event, jobId and name/prev with NUL. */
export class LuaStreamReader implements EventStreamReader {
  constructor(private readonly redis: Redis) {
    redis.defineCommand('jobbersReadEvents', { numberOfKeys: 1, lua: readEventsScript });
  }

  async read(stream: string, afterId: string, count: number): Promise<StreamEvent[]> {
    const command = (this.redis as unknown as { jobbersReadEvents: ReadEventsCommand }).jobbersReadEvents;
    return unpackEvents(await command.call(this.redis, stream, `(${afterId}`, count));
  }

  async evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<string> {
    // An array, not spread arguments: a large commit has more arguments than a call can take.
    const keysAndArgs = [...keys, ...args];
    const reply = await this.redis.evalsha(script.sha, keys.length, keysAndArgs).catch((error: unknown) => {
      if (!isNoScript(error)) throw error;
      return this.redis.eval(script.lua, keys.length, keysAndArgs);
    });
    return String(reply);
  }

  cancelRead() {}

  close() {}
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

interface Pending {
  resolve(reply: ParsedReply): void;
  reject(error: Error): void;
}

/**
 * XRANGE over a socket of its own, opened with the connection's host or path, TLS, user, password
 * and database. One command at a time. A broken or closed socket fails the read in progress (the
 * exporter retries its turn); the next read connects again.
 */
export class DirectStreamReader implements EventStreamReader {
  /** The socket in use, once its handshake is done. */
  private socket: Socket | undefined;
  /** The socket whose replies are awaited (in use or still in its handshake). */
  private current: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private pending: Pending | undefined;
  private parser = new StreamReplyParser();
  private closed = false;
  /** A read (not a script) is in progress, or waits for the connection. */
  private reading = false;

  constructor(private readonly options: RedisOptions) {}

  async read(stream: string, afterId: string, count: number): Promise<StreamEvent[]> {
    this.reading = true;
    const reply = await this.command(['XRANGE', stream, `(${afterId}`, '+', 'COUNT', String(count)]).finally(
      () => {
        this.reading = false;
      },
    );
    if (reply.kind !== 'entries') throw new RedisReplyError(`XRANGE answered ${reply.text}`);
    return reply.events;
  }

  async evalScript(script: LuaScript, keys: readonly string[], args: readonly string[]): Promise<string> {
    const numberOfKeys = String(keys.length);
    const reply = await this.command(['EVALSHA', script.sha, numberOfKeys], keys, args).catch((error) => {
      if (!isNoScript(error)) throw error;
      return this.command(['EVAL', script.lua, numberOfKeys], keys, args);
    });
    if (reply.kind !== 'status') throw new RedisReplyError('the script answered an array');
    return reply.text;
  }

  cancelRead() {
    if (this.reading) this.drop(new Error('the event stream read was cancelled'));
  }

  close() {
    this.closed = true;
    this.drop(new Error('the event stream reader was closed'));
  }

  /** Sends one command made of the `parts` in order, connecting first if need be. */
  private async command(...parts: (readonly string[])[]): Promise<ParsedReply> {
    // Redis may have closed the connection since the last read (a timeout, CLIENT KILL): connect
    // again rather than fail this read.
    if (this.socket && !this.socket.writable)
      this.drop(new Error('the Redis connection for the event stream closed'));
    if (!this.socket && !this.connecting) this.connecting = this.open();
    const socket = this.socket ?? (await this.connecting!);
    return this.send(socket, ...parts);
  }

  /** Sends one command made of the `parts` in order. */
  private send(socket: Socket, ...parts: (readonly string[])[]): Promise<ParsedReply> {
    if (this.pending) return Promise.reject(new Error('the event stream reader runs one command at a time'));
    return new Promise<ParsedReply>((resolve, reject) => {
      this.pending = { resolve, reject };
      socket.write(encodeCommand(parts));
    });
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
      if (password) await this.send(socket, username ? ['AUTH', username, password] : ['AUTH', password]);
      if (db) await this.send(socket, ['SELECT', String(db)]);
      // The name only helps an operator reading CLIENT LIST: a name Redis refuses is not fatal.
      if (connectionName)
        await this.send(socket, ['CLIENT', 'SETNAME', `${connectionName}:events`]).catch((error) => {
          if (!(error instanceof RedisReplyError)) throw error;
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
    this.parser = new StreamReplyParser();
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.current) return;
      const pending = this.pending;
      try {
        if (!pending) throw new RedisReplyError('Redis sent a reply nobody asked for');
        const reply = this.parser.push(chunk);
        if (!reply) return;
        this.pending = undefined;
        pending.resolve(reply);
      } catch (error) {
        if (pending && error instanceof RedisReplyError && this.parser.idle) {
          // An error reply: the connection is still in step.
          this.pending = undefined;
          pending.reject(error);
          return;
        }
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

function encodeCommand(parts: readonly (readonly string[])[]): string {
  let count = 0;
  for (const part of parts) count += part.length;
  let out = `*${count}\r\n`;
  for (const part of parts)
    for (let i = 0; i < part.length; i++) {
      const arg = part[i]!;
      out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
    }
  return out;
}
