// The exporter's XRANGE decoder: whatever way the reply is cut into chunks it yields the same
// events, keeps only id, event, jobId and name (added) or prev (any other event), and refuses
// what is not a well-formed reply instead of guessing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisReplyError, StreamReplyParser } from '../src/metrics/stream-reply-parser.js';

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

function parseInChunks(bytes: Buffer, cuts: number[]) {
  const parser = new StreamReplyParser();
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    const result = parser.push(bytes.subarray(from, cut));
    from = cut;
    if (cut < bytes.length) assert.equal(result, undefined, `complete after only ${cut} bytes`);
    else return { result, idle: parser.idle };
  }
  throw new Error('unreachable');
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
  assert.deepEqual(new StreamReplyParser().push(Buffer.from('*0\r\n')), { kind: 'entries', events: [] });
  assert.deepEqual(new StreamReplyParser().push(Buffer.from('+OK\r\n')), { kind: 'status', text: 'OK' });
  assert.deepEqual(new StreamReplyParser().push(Buffer.from(':12\r\n')), { kind: 'status', text: '12' });
});

test('an error reply is thrown as RedisReplyError and leaves the parser ready for the next reply', () => {
  const parser = new StreamReplyParser();
  assert.equal(parser.push(Buffer.from('-WRONGTYPE Operation against a key')), undefined);
  assert.throws(() => parser.push(Buffer.from(' holding the wrong kind of value\r\n')), {
    name: 'RedisReplyError',
    message: 'WRONGTYPE Operation against a key holding the wrong kind of value',
  });
  assert.equal(parser.idle, true);
  assert.deepEqual(parser.push(reply([entry('5-0', ['event', 'waiting', 'jobId', 'x'])])), {
    kind: 'entries',
    events: [{ id: '5-0', ms: 5, event: 'waiting', jobId: 'x', extra: '' }],
  });
});

test('malformed replies are refused, not guessed at', () => {
  const cases: [string, string][] = [
    ['a reply type it does not read', '%1\r\n'],
    ['an entry that is not [id, fields]', '*1\r\n*3\r\n'],
    ['a bad length', '*1\r\n*2\r\n$x\r\n'],
    ['a nil field value', `*1\r\n*2\r\n${bulk('1-0')}*2\r\n${bulk('event')}$-1\r\n`],
    ['a field that is not a bulk string', `*1\r\n*2\r\n${bulk('1-0')}*2\r\n:1\r\n`],
  ];
  for (const [what, bytes] of cases)
    assert.throws(() => new StreamReplyParser().push(Buffer.from(bytes)), RedisReplyError, what);
});

test('bytes after a complete reply mean the connection is out of step', () => {
  assert.throws(() => new StreamReplyParser().push(Buffer.from('+OK\r\n+OK\r\n')), /more than one reply/);
});
