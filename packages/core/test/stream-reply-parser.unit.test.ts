// The exporter's reply decoder: whatever way the replies are cut into chunks it yields the same
// events, keeps only id, event, jobId and name (added) or prev (any other event), and for the
// lifecycle feed a progress entry's data (no other entry's), decodes the replies after an XRANGE in
// the same write (XINFO, ZRANGE) as plain values, and refuses what is not a well-formed reply
// instead of guessing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ParsedReply,
  RedisReplyError,
  type ReplyShape,
  type StreamDecoding,
  StreamReplyParser,
} from '../src/metrics/stream-reply-parser.js';

function bulk(value: string): string {
  return `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
}

function entry(id: string, fields: string[]): string {
  return `*2\r\n${bulk(id)}*${fields.length}\r\n${fields.map(bulk).join('')}`;
}

function reply(entries: string[]): Buffer {
  return Buffer.from(`*${entries.length}\r\n${entries.join('')}`);
}

const sample = reply([
  entry('1700000000000-0', ['event', 'added', 'jobId', 'j1', 'name', 'demo.echo']),
  entry('1700000000000-1', ['event', 'waiting', 'jobId', 'j1']),
  entry('1700000000001-0', ['event', 'active', 'jobId', 'j1', 'prev', 'waiting']),
  entry('1700000000002-0', [
    'event',
    'completed',
    'jobId',
    'j1',
    'returnvalue',
    JSON.stringify({ big: 'x'.repeat(3000), name: 'not the name' }),
    'prev',
    'active',
  ]),
  entry('1700000000003-0', ['event', 'drained', 'id', '1700000000003-0']),
  entry('1700000000004-7', ['event', 'added', 'jobId', 'ü-ß-7', 'name', 'démo.ünïcode']),
  entry('1700000000005-0', [
    'event',
    'failed',
    'jobId',
    'ü-ß-7',
    'failedReason',
    'boom\r\n*2',
    'prev',
    'active',
  ]),
  entry('1700000000006-0', ['event', 'activf', 'jobId', 'j2', 'prev', 'a-state-of-its-own']),
]);

const expected = [
  { id: '1700000000000-0', ms: 1700000000000, event: 'added', jobId: 'j1', extra: 'demo.echo' },
  { id: '1700000000000-1', ms: 1700000000000, event: 'waiting', jobId: 'j1', extra: '' },
  { id: '1700000000001-0', ms: 1700000000001, event: 'active', jobId: 'j1', extra: 'waiting' },
  { id: '1700000000002-0', ms: 1700000000002, event: 'completed', jobId: 'j1', extra: 'active' },
  { id: '1700000000003-0', ms: 1700000000003, event: 'drained', jobId: '', extra: '' },
  { id: '1700000000004-7', ms: 1700000000004, event: 'added', jobId: 'ü-ß-7', extra: 'démo.ünïcode' },
  { id: '1700000000005-0', ms: 1700000000005, event: 'failed', jobId: 'ü-ß-7', extra: 'active' },
  { id: '1700000000006-0', ms: 1700000000006, event: 'activf', jobId: 'j2', extra: 'a-state-of-its-own' },
];

/** Feeds `bytes` cut at `cuts`, taking replies of the given shapes as they complete. */
function parseInChunks(
  bytes: Buffer,
  cuts: number[],
  shapes: ReplyShape[] = ['entries'],
  decoding: StreamDecoding = {},
) {
  const parser = new StreamReplyParser(decoding);
  const replies: ParsedReply[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    parser.append(bytes.subarray(from, cut));
    from = cut;
    for (let reply = parser.next(shapes[replies.length]!); reply; ) {
      replies.push(reply);
      if (replies.length === shapes.length) break;
      reply = parser.next(shapes[replies.length]!);
    }
    if (cut < bytes.length)
      assert.ok(replies.length < shapes.length, `all ${shapes.length} replies after only ${cut} bytes`);
  }
  return { result: replies.length === 1 ? replies[0] : replies, idle: parser.idle };
}

/** One reply of `shape` from `bytes`, all in one chunk. */
function parseOne(bytes: string, shape: ReplyShape = 'entries') {
  const parser = new StreamReplyParser();
  parser.append(Buffer.from(bytes));
  return parser.next(shape);
}

test('a reply in one chunk gives every entry with only the fields the book uses', () => {
  const { result, idle } = parseInChunks(sample, []);
  assert.deepEqual(result, { kind: 'entries', events: expected });
  assert.equal(idle, true);
});

test('a reply cut at any byte, or into single bytes, gives the same events', () => {
  for (let cut = 1; cut < sample.length; cut++) {
    const { result } = parseInChunks(sample, [cut]);
    assert.deepEqual(result, { kind: 'entries', events: expected }, `cut at byte ${cut}`);
  }
  const everyByte = Array.from({ length: sample.length - 1 }, (_, k) => k + 1);
  assert.deepEqual(parseInChunks(sample, everyByte).result, { kind: 'entries', events: expected });
});

test('an empty range, a status and an integer reply', () => {
  assert.deepEqual(parseOne('*0\r\n'), { kind: 'entries', events: [] });
  assert.deepEqual(parseOne('+OK\r\n'), { kind: 'status', text: 'OK' });
  assert.deepEqual(parseOne(':12\r\n'), { kind: 'status', text: '12' });
});

test('an error reply is returned, not thrown, and leaves the parser ready for the next reply', () => {
  const parser = new StreamReplyParser();
  parser.append(Buffer.from('-WRONGTYPE Operation against a key'));
  assert.equal(parser.next('entries'), undefined);
  parser.append(Buffer.from(' holding the wrong kind of value\r\n'));
  const answer = parser.next('entries');
  assert.ok(answer?.kind === 'error' && answer.error instanceof RedisReplyError);
  assert.equal(answer.error.message, 'WRONGTYPE Operation against a key holding the wrong kind of value');
  assert.equal(parser.idle, true);
  parser.append(reply([entry('5-0', ['event', 'waiting', 'jobId', 'x'])]));
  assert.deepEqual(parser.next('entries'), {
    kind: 'entries',
    events: [{ id: '5-0', ms: 5, event: 'waiting', jobId: 'x', extra: '' }],
  });
});

// A turn's write: XRANGE, then XINFO STREAM (nested entries, integers, a nil), then ZRANGE.
const xinfo = `*8\r\n${bulk('length')}:3\r\n${bulk('entries-added')}:40\r\n${bulk('first-entry')}${entry('1700000000000-0', ['event', 'added', 'jobId', 'j1', 'name', 'démo'])}${bulk('max-deleted-entry-id')}$-1\r\n`;
const roles = `*4\r\n${bulk('default')}${bulk('1700000000009')}${bulk('rôle')}${bulk('5')}`;
const turn = Buffer.concat([sample, Buffer.from(xinfo), Buffer.from(roles)]);
const turnShapes: ReplyShape[] = ['entries', 'value', 'value'];
const turnReplies = [
  { kind: 'entries', events: expected },
  {
    kind: 'value',
    value: [
      'length',
      3,
      'entries-added',
      40,
      'first-entry',
      ['1700000000000-0', ['event', 'added', 'jobId', 'j1', 'name', 'démo']],
      'max-deleted-entry-id',
      null,
    ],
  },
  { kind: 'value', value: ['default', '1700000000009', 'rôle', '5'] },
];

test('replies of one write, cut at any byte, come out in order, each read as asked', () => {
  assert.deepEqual(parseInChunks(turn, [], turnShapes), { result: turnReplies, idle: true });
  for (let cut = 1; cut < turn.length; cut++)
    assert.deepEqual(parseInChunks(turn, [cut], turnShapes).result, turnReplies, `cut at byte ${cut}`);
  const everyByte = Array.from({ length: turn.length - 1 }, (_, k) => k + 1);
  assert.deepEqual(parseInChunks(turn, everyByte, turnShapes).result, turnReplies);
});

test('read as plain values: an error reply, and an error inside an array, are values', () => {
  const parser = new StreamReplyParser();
  parser.append(Buffer.from(`-ERR no such key\r\n*2\r\n:1\r\n-ERR inner\r\n${bulk('after')}`));
  const first = parser.next('value');
  assert.ok(first?.kind === 'error' && first.error.message === 'ERR no such key');
  const second = parser.next('value');
  assert.ok(second?.kind === 'value' && Array.isArray(second.value));
  assert.equal(second.value[0], 1);
  assert.ok(second.value[1] instanceof RedisReplyError && second.value[1].message === 'ERR inner');
  assert.deepEqual(parser.next('value'), { kind: 'value', value: 'after' });
  assert.equal(parser.idle, true);
});

test('malformed replies are refused, not guessed at', () => {
  const cases: [string, string, ReplyShape][] = [
    ['a reply type it does not read', '%1\r\n', 'entries'],
    ['a reply type it does not read, as a value', '*1\r\n%1\r\n', 'value'],
    ['an entry that is not [id, fields]', '*1\r\n*3\r\n', 'entries'],
    ['a bad length', '*1\r\n*2\r\n$x\r\n', 'entries'],
    ['a bad length, as a value', '*1\r\n$x\r\n', 'value'],
    ['a nil field value', `*1\r\n*2\r\n${bulk('1-0')}*2\r\n${bulk('event')}$-1\r\n`, 'entries'],
    ['a field that is not a bulk string', `*1\r\n*2\r\n${bulk('1-0')}*2\r\n:1\r\n`, 'entries'],
  ];
  for (const [what, bytes, shape] of cases)
    assert.throws(() => parseOne(bytes, shape), RedisReplyError, what);
});

test('bytes after the replies taken are held, not dropped: the reader checks the parser is idle', () => {
  const parser = new StreamReplyParser();
  parser.append(Buffer.from('+OK\r\n+OK\r\n'));
  assert.deepEqual(parser.next('entries'), { kind: 'status', text: 'OK' });
  assert.equal(parser.idle, false);
  assert.deepEqual(parser.next('entries'), { kind: 'status', text: 'OK' });
  assert.equal(parser.idle, true);
});

// XREAD: the streams that have entries, each `[key, [entry, ...]]`; a blocking read that timed out
// answers a nil array.
const secondStream = [
  entry('1700000000010-0', ['event', 'waiting', 'jobId', 'k1', 'prev', 'delayed']),
  entry('1700000000011-0', ['event', 'removed', 'jobId', 'k1', 'prev', 'waiting']),
];
const xread = Buffer.concat([
  Buffer.from(`*2\r\n*2\r\n${bulk('bull:q:events')}`),
  sample,
  Buffer.from(`*2\r\n${bulk('bull:ü:events')}*${secondStream.length}\r\n${secondStream.join('')}`),
  Buffer.from(':7\r\n'),
]);
const xreadReplies = [
  {
    kind: 'streams',
    streams: [
      { key: 'bull:q:events', events: expected },
      {
        key: 'bull:ü:events',
        events: [
          { id: '1700000000010-0', ms: 1700000000010, event: 'waiting', jobId: 'k1', extra: 'delayed' },
          { id: '1700000000011-0', ms: 1700000000011, event: 'removed', jobId: 'k1', extra: 'waiting' },
        ],
      },
    ],
  },
  { kind: 'status', text: '7' },
];

test('an XREAD reply, cut at any byte, gives each stream with its events; a timed-out read none', () => {
  const shapes: ReplyShape[] = ['streams', 'value'];
  assert.deepEqual(parseInChunks(xread, [], shapes), { result: xreadReplies, idle: true });
  for (let cut = 1; cut < xread.length; cut++)
    assert.deepEqual(parseInChunks(xread, [cut], shapes).result, xreadReplies, `cut at byte ${cut}`);
  const everyByte = Array.from({ length: xread.length - 1 }, (_, k) => k + 1);
  assert.deepEqual(parseInChunks(xread, everyByte, shapes).result, xreadReplies);
  assert.deepEqual(parseOne('*-1\r\n', 'streams'), { kind: 'streams', streams: [] });
  assert.deepEqual(parseOne(`*1\r\n*2\r\n${bulk('s')}*0\r\n`, 'streams'), {
    kind: 'streams',
    streams: [{ key: 's', events: [] }],
  });
  assert.throws(() => parseOne(`*1\r\n*3\r\n${bulk('s')}*0\r\n`, 'streams'), RedisReplyError);
});

// BullMQ's progress entries: `event progress jobId <id> data <the value as JSON>`. Other entries may
// carry a field named data too (written by other code): only a progress entry's is kept.
const withProgress = reply([
  entry('1700000000020-0', ['event', 'progress', 'jobId', 'j1', 'data', '{"step":1,"note":"ünï \\"q\\""}']),
  entry('1700000000021-0', ['event', 'active', 'jobId', 'j2', 'data', 'not kept', 'prev', 'waiting']),
  entry('1700000000022-0', ['data', '42', 'jobId', 'j1', 'event', 'progress']),
  entry('1700000000023-0', ['event', 'progress', 'jobId', 'j1']),
  entry('1700000000024-0', ['event', 'added', 'jobId', 'j3', 'name', 'demo.echo', 'data', 'x']),
  entry('1700000000025-0', ['event', 'delayed', 'jobId', 'j3', 'delay', '1700000060000']),
]);

test("with progressData, a progress entry's data is its extra, whatever the cut; no other entry's (a delayed one's is its delay)", () => {
  const kept = [
    {
      id: '1700000000020-0',
      ms: 1700000000020,
      event: 'progress',
      jobId: 'j1',
      extra: '{"step":1,"note":"ünï \\"q\\""}',
    },
    { id: '1700000000021-0', ms: 1700000000021, event: 'active', jobId: 'j2', extra: 'waiting' },
    { id: '1700000000022-0', ms: 1700000000022, event: 'progress', jobId: 'j1', extra: '42' },
    { id: '1700000000023-0', ms: 1700000000023, event: 'progress', jobId: 'j1', extra: '' },
    { id: '1700000000024-0', ms: 1700000000024, event: 'added', jobId: 'j3', extra: 'demo.echo' },
    { id: '1700000000025-0', ms: 1700000000025, event: 'delayed', jobId: 'j3', extra: '1700000060000' },
  ];
  const decoding = { progressData: true };
  assert.deepEqual(parseInChunks(withProgress, [], ['entries'], decoding), {
    result: { kind: 'entries', events: kept },
    idle: true,
  });
  for (let cut = 1; cut < withProgress.length; cut++)
    assert.deepEqual(
      parseInChunks(withProgress, [cut], ['entries'], decoding).result,
      { kind: 'entries', events: kept },
      `cut at byte ${cut}`,
    );
  // The exporter's parser (the default) keeps no data at all.
  assert.deepEqual(parseInChunks(withProgress, []).result, {
    kind: 'entries',
    events: kept.map((e) => (e.event === 'progress' ? { ...e, extra: '' } : e)),
  });
});
