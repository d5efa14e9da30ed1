// Decodes Redis replies (RESP2) arriving in chunks, for the exporter's own read connection. An
// XRANGE reply becomes the book's StreamEvents directly, keeping of each entry only id, event, jobId
// and name, delay or prev (and, for the lifecycle feed, a `progress` entry's data). No array or
// string is made for a field it skips, such as a large return value: a general client decodes every
// field of every entry, which costs the exporter several times what applying the event does. Any
// other reply (XINFO, ZRANGE, a script's) is decoded as plain values.
import type { StreamEvent } from './lifecycle-book.js';

const CR = 13;
const STAR = 42;
const DOLLAR = 36;
const PLUS = 43;
const MINUS = 45;
const COLON = 58;

// Event names and `prev` values BullMQ writes, handed out as the same string every time (no new
// string per entry; comparing them is cheap).
const knownWordsByLength: { bytes: Buffer; text: string }[][] = [];
for (const text of [
  'added',
  'waiting',
  'active',
  'completed',
  'failed',
  'delayed',
  'prioritized',
  'stalled',
  'removed',
  'progress',
  'drained',
  'retries-exhausted',
  'waiting-children',
  'paused',
  'resumed',
  'cleaned',
  'duplicated',
  'deduplicated',
  'debounced',
]) {
  const bytes = Buffer.from(text);
  if (!knownWordsByLength[bytes.length]) knownWordsByLength[bytes.length] = [];
  knownWordsByLength[bytes.length]!.push({ bytes, text });
}

/**
 * Buffer's own slicing methods, which `toString(encoding, start, end)` dispatches to after checking
 * its arguments: the parser calls them directly with offsets it has already checked.
 */
interface SliceableBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

function word(buf: SliceableBuffer, start: number, end: number): string {
  const candidates = knownWordsByLength[end - start];
  if (candidates)
    for (const candidate of candidates) if (matches(buf, start, candidate.bytes)) return candidate.text;
  return buf.latin1Slice(start, end);
}

const EVENT = Buffer.from('event');
const JOB_ID = Buffer.from('jobId');
const NAME = Buffer.from('name');
const PREV = Buffer.from('prev');
const DELAY = Buffer.from('delay');
const DATA = Buffer.from('data');

/** What the parser keeps of stream entries besides id, event, jobId and name, delay or prev. */
export interface StreamDecoding {
  /**
   * A `progress` entry's `data` (the value a job reported) as its `extra`; no other entry's data is
   * decoded. The exporter has no use for it; the lifecycle feed sends it. @default false
   */
  progressData?: boolean;
}

/** An error reply from Redis (`-ERR ...`), or a reply the parser cannot take. */
export class RedisReplyError extends Error {
  override name = 'RedisReplyError';
}

/** A reply decoded as plain values: bulk and status strings, integers, nil, arrays, error replies. */
export type RespValue = string | number | null | RedisReplyError | RespValue[];

/**
 * What one reply turned into: the events of an XRANGE, the text of a status or integer reply, an
 * error reply, or (read as a plain value) anything else.
 */
export type ParsedReply =
  | { kind: 'entries'; events: StreamEvent[] }
  | { kind: 'streams'; streams: StreamEntries[] }
  | { kind: 'status'; text: string }
  | { kind: 'error'; error: RedisReplyError }
  | { kind: 'value'; value: RespValue };

/** One stream's entries in an XREAD reply. */
export interface StreamEntries {
  key: string;
  events: StreamEvent[];
}

/**
 * How to read the next reply: an XRANGE's entries as events, an XREAD's streams and their entries
 * (none when a blocking read timed out), or any reply as a plain value.
 */
export type ReplyShape = 'entries' | 'streams' | 'value';

const incomplete = -1;

/**
 * Replies in the order they come: `append` every chunk received, then take each reply with `next`
 * once it has fully arrived. Progress through an XRANGE reply is kept at entry boundaries, so a
 * large reply split over many chunks is scanned once. Input that is not a well-formed reply throws
 * RedisReplyError: the connection is then out of step.
 */
export class StreamReplyParser {
  private buffer = Buffer.alloc(0) as SliceableBuffer;
  private offset = 0;
  /** Entries still to read of the current XRANGE reply; -1 before its header. */
  private remaining = -1;
  private events: StreamEvent[] = [];
  /** Streams still to read of the current XREAD reply; -1 outside one. */
  private streamsRemaining = -1;
  private streams: StreamEntries[] = [];
  private readonly progressData: boolean;

  constructor(decoding: StreamDecoding = {}) {
    this.progressData = decoding.progressData ?? false;
  }

  /** True when no partly received reply, and nothing after the last reply taken, is held. */
  get idle(): boolean {
    return this.remaining === -1 && this.streamsRemaining === -1 && this.offset >= this.buffer.length;
  }

  append(chunk: Buffer) {
    this.buffer = (
      this.offset >= this.buffer.length ? chunk : Buffer.concat([this.buffer.subarray(this.offset), chunk])
    ) as SliceableBuffer;
    this.offset = 0;
  }

  /** The next reply read as `shape`, or undefined until all of it has arrived. */
  next(shape: ReplyShape): ParsedReply | undefined {
    if (this.streamsRemaining !== -1) return this.readStreams();
    if (this.remaining !== -1) return this.readEntries();
    const buf = this.buffer;
    const start = this.offset;
    if (start >= buf.length) return undefined;
    const type = buf[start];
    if (type === PLUS || type === MINUS || type === COLON) {
      const text = readLine(buf, start);
      if (cursor === incomplete) return undefined;
      this.offset = cursor;
      if (type === MINUS) return { kind: 'error', error: new RedisReplyError(text) };
      return { kind: 'status', text };
    }
    if (shape === 'value') {
      const value = readValue(buf, start);
      if (cursor === incomplete) return undefined;
      this.offset = cursor;
      return { kind: 'value', value };
    }
    if (type !== STAR) throw new RedisReplyError(`unexpected reply type ${String.fromCharCode(type!)}`);
    if (shape === 'streams') {
      const count = readLength(buf, start + 1);
      if (cursor === incomplete) return undefined;
      this.offset = cursor;
      // A blocking read that timed out answers a nil array.
      if (count <= 0) return { kind: 'streams', streams: [] };
      this.streamsRemaining = count;
      this.streams = [];
      return this.readStreams();
    }
    const entries = readLength(buf, start + 1);
    if (cursor === incomplete) return undefined;
    this.offset = cursor;
    this.remaining = Math.max(entries, 0);
    this.events = [];
    return this.readEntries();
  }

  /** Reads `[key, [entry, ...]]` pairs of an XREAD reply, each stream's entries as readEntries does. */
  private readStreams(): ParsedReply | undefined {
    while (this.streamsRemaining > 0) {
      if (this.remaining === -1) {
        // A stream's header, `*2 $<key> *<entries>`, is taken whole or not at all.
        const buf = this.buffer;
        const parts = readTyped(buf, this.offset, STAR);
        if (cursor === incomplete) return undefined;
        if (parts !== 2) throw new RedisReplyError(`a stream of ${parts} parts in an XREAD reply`);
        const keyLength = readTyped(buf, cursor, DOLLAR);
        if (cursor === incomplete) return undefined;
        const keyStart = cursor;
        if (keyStart + keyLength + 2 > buf.length) return undefined;
        const entries = readTyped(buf, keyStart + keyLength + 2, STAR);
        if (cursor === incomplete) return undefined;
        this.offset = cursor;
        this.streams.push({ key: buf.utf8Slice(keyStart, keyStart + keyLength), events: [] });
        this.remaining = Math.max(entries, 0);
        this.events = [];
      }
      const read = this.readEntries();
      if (read?.kind !== 'entries') return undefined;
      this.streams[this.streams.length - 1]!.events = read.events;
      this.streamsRemaining--;
    }
    const streams = this.streams;
    this.streams = [];
    this.streamsRemaining = -1;
    return { kind: 'streams', streams };
  }

  private readEntries(): ParsedReply | undefined {
    while (this.remaining > 0) {
      const next = this.readEntry(this.offset);
      if (next === incomplete) return undefined;
      this.offset = next;
      this.remaining--;
    }
    const events = this.events;
    this.events = [];
    this.remaining = -1;
    return { kind: 'entries', events };
  }

  /** Reads one `[id, [field, value, ...]]` entry at i; returns the offset after it, or incomplete. */
  private readEntry(start: number): number {
    const buf = this.buffer;
    const length = buf.length;
    const parts = readTyped(buf, start, STAR);
    if (cursor === incomplete) return incomplete;
    if (parts !== 2) throw new RedisReplyError(`a stream entry of ${parts} parts`);
    const idLength = readTyped(buf, cursor, DOLLAR);
    if (cursor === incomplete) return incomplete;
    const idStart = cursor;
    const idEnd = idStart + idLength;
    if (idEnd + 2 > length) return incomplete;
    let ms = 0;
    for (let k = idStart; k < idEnd; k++) {
      const c = buf[k]!;
      if (c < 48 || c > 57) break;
      ms = ms * 10 + (c - 48);
    }
    const fields = readTyped(buf, idEnd + 2, STAR);
    if (cursor === incomplete) return incomplete;
    let i = cursor;
    let event = '';
    let jobId = '';
    let name = '';
    let prev = '';
    let delay = '';
    // Where a `data` value lies: it is sliced only when the entry turns out to be a progress report.
    let dataStart = -1;
    let dataEnd = -1;
    for (let f = 0; f < fields; f += 2) {
      const keyLength = readTyped(buf, i, DOLLAR);
      if (cursor === incomplete) return incomplete;
      const keyStart = cursor;
      const valueLength = readTyped(buf, keyStart + keyLength + 2, DOLLAR);
      if (cursor === incomplete) return incomplete;
      if (valueLength < 0) throw new RedisReplyError('a nil field in a stream entry');
      const valueStart = cursor;
      const valueEnd = valueStart + valueLength;
      if (valueEnd + 2 > length) return incomplete;
      i = valueEnd + 2;
      if (keyLength === 5) {
        if (matches(buf, keyStart, EVENT)) event = word(buf, valueStart, valueEnd);
        else if (matches(buf, keyStart, JOB_ID)) jobId = buf.utf8Slice(valueStart, valueEnd);
        else if (event === 'delayed' && matches(buf, keyStart, DELAY))
          delay = buf.latin1Slice(valueStart, valueEnd);
      } else if (keyLength === 4) {
        if (matches(buf, keyStart, NAME)) name = buf.utf8Slice(valueStart, valueEnd);
        else if (matches(buf, keyStart, PREV)) prev = word(buf, valueStart, valueEnd);
        else if (this.progressData && matches(buf, keyStart, DATA)) {
          dataStart = valueStart;
          dataEnd = valueEnd;
        }
      }
    }
    let extra = prev;
    if (event === 'added') extra = name;
    else if (event === 'delayed') extra = delay;
    else if (event === 'progress' && dataStart !== -1) extra = buf.utf8Slice(dataStart, dataEnd);
    this.events.push({ id: buf.latin1Slice(idStart, idEnd), ms, event, jobId, extra });
    return i;
  }
}

/** Where the last `readLength` or `readValue` ended: the offset after its CRLF, or incomplete. */
let cursor = 0;

/** The text of the `+`, `-` or `:` line at i, after its type byte; sets `cursor` after its CRLF. */
function readLine(buf: SliceableBuffer, i: number): string {
  const end = buf.indexOf(CR, i);
  if (end === -1 || end + 1 >= buf.length) {
    cursor = incomplete;
    return '';
  }
  cursor = end + 2;
  return buf.utf8Slice(i + 1, end);
}

/** Reads any reply at i as a plain value and sets `cursor` after it (incomplete when cut short). */
function readValue(buf: SliceableBuffer, i: number): RespValue {
  if (i >= buf.length) {
    cursor = incomplete;
    return null;
  }
  const type = buf[i];
  if (type === PLUS || type === MINUS || type === COLON) {
    const text = readLine(buf, i);
    if (cursor === incomplete) return null;
    if (type === COLON) return Number(text);
    return type === MINUS ? new RedisReplyError(text) : text;
  }
  if (type === DOLLAR) {
    const length = readLength(buf, i + 1);
    if (cursor === incomplete || length < 0) return null;
    const start = cursor;
    if (start + length + 2 > buf.length) {
      cursor = incomplete;
      return null;
    }
    cursor = start + length + 2;
    return buf.utf8Slice(start, start + length);
  }
  if (type === STAR) {
    const count = readLength(buf, i + 1);
    if (cursor === incomplete || count < 0) return null;
    const items: RespValue[] = new Array(count);
    for (let k = 0; k < count; k++) {
      items[k] = readValue(buf, cursor);
      if (cursor === incomplete) return null;
    }
    return items;
  }
  throw new RedisReplyError(`unexpected reply type ${String.fromCharCode(type!)}`);
}

/**
 * Reads the decimal integer at i up to its CRLF and sets `cursor` after it (incomplete when the
 * buffer ends first). A plain function over locals: the parser's hot loop calls it for every length.
 */
function readLength(buf: Buffer, start: number): number {
  const length = buf.length;
  let i = start;
  let negative = false;
  if (i < length && buf[i] === MINUS) {
    negative = true;
    i++;
  }
  let value = 0;
  for (; i < length; i++) {
    const c = buf[i]!;
    if (c === CR) {
      if (i + 1 >= length) break;
      cursor = i + 2;
      return negative ? -value : value;
    }
    if (c < 48 || c > 57) throw new RedisReplyError('a malformed length in a reply');
    value = value * 10 + (c - 48);
  }
  cursor = incomplete;
  return 0;
}

/** Reads `<type><integer>\r\n` at i, like `readLength`; incomplete when the buffer ends at i. */
function readTyped(buf: Buffer, i: number, type: number): number {
  if (i >= buf.length) {
    cursor = incomplete;
    return 0;
  }
  if (buf[i] !== type)
    throw new RedisReplyError(
      `expected ${String.fromCharCode(type)} in a stream reply, got ${String.fromCharCode(buf[i]!)}`,
    );
  return readLength(buf, i + 1);
}

function matches(buf: Buffer, start: number, word: Buffer): boolean {
  for (let k = 0; k < word.length; k++) if (buf[start + k] !== word[k]) return false;
  return true;
}
