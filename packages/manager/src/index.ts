export * from './app.js';
export { errorBody } from './plugins/errors.js';
