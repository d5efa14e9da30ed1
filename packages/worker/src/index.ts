export * from './capacity.js';
export * from './flags.js';
export * from './process-metrics.js';
export * from './supervisor.js';
export * from './worker.js';
