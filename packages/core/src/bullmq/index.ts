// The seam to BullMQ: the only code that knows how BullMQ stores jobs or uses its protected API.
// test/bullmq-contract.test.ts pins each behaviour relied on, so a BullMQ upgrade fails there first.
export * from './gated-worker.js';
export * from './job-counts.js';
export * from './job-hash.js';
export * from './keys.js';
export * from './lock.js';
export * from './rate-limited-move.js';
export * from './schedulers.js';
export * from './scripts.js';
