// The dashboard picture in the README is drawn from the shipped dashboard, not from an older one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderLayout } from '../../scripts/render-dashboard-layout.mjs';

const root = new URL('../../', import.meta.url);

test('docs/dashboard-layout.svg matches the panels of deploy/grafana/dashboards/jobbers.json', () => {
  const dashboard = JSON.parse(readFileSync(new URL('deploy/grafana/dashboards/jobbers.json', root), 'utf8'));
  const committed = readFileSync(new URL('docs/dashboard-layout.svg', root), 'utf8');
  assert.ok(
    renderLayout(dashboard) === committed,
    'the dashboard changed: run `node scripts/render-dashboard-layout.mjs` and commit docs/dashboard-layout.*',
  );
});
