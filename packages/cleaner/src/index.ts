export * from './cleaner.js';
export * from './options.js';
export * from './queues.js';
export * from './removal.js';
export * from './report.js';
export * from './sources.js';
