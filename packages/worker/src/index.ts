export * from './process-metrics.js';
export * from './worker.js';
