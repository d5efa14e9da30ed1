#!/usr/bin/env node
// Committed so that npm links `jobbers-manager` at install time, before dist/ is built.
import('../dist/bin.js').catch((error) => {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('/dist/bin.js')) {
    process.stderr.write('jobbers-manager is not built yet: run `npm run build` at the repository root\n');
    process.exit(1);
  }
  throw error;
});
