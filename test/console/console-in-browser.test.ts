// The console at /ui in a real chromium, against a real jobbers-manager and jobbers-worker on a private
// Redis: every page shows real data, the actions work from the page, a task submitted over REST
// appears and completes on the open page without a reload (the event stream), and API keys apply.
// Screenshots go to artifacts/screenshots/.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { findChromium, launchChromium, screenshotDir } from '../support/browser.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  taskFinished,
  type WorkerProcess,
} from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const chromiumPath = findChromium();

describe('the console in a browser', {
  skip: chromiumPath ? false : 'no chromium (see the message above)',
}, () => {
  let redis: RedisServer;
  let manager: ManagerProcess;
  let worker: WorkerProcess;
  let browser: Browser;
  let page: Page;
  const shots = screenshotDir();

  before(async () => {
    redis = await startRedisServer();
    const env = { REDIS_URL: redis.url, JOBBERS_PREFIX: uniquePrefix('console') };
    manager = await startManagerProcess(env);
    worker = await startWorkerProcess({ ...env, WORKER_METRICS_PORT: '0' });
    browser = await launchChromium(chromiumPath!);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => process.stderr.write(`page error: ${error.message}\n`));
  });

  after(async () => {
    await browser?.close();
    await worker?.stop();
    await manager?.stop();
    await redis?.stop();
  });

  async function submit(body: Record<string, unknown>) {
    const reply = await manager.request('POST', '/v1/tasks', body);
    assert.ok(reply.status === 201, JSON.stringify(reply.body));
    return reply.body.id as string;
  }

  async function open(route: string) {
    await page.goto(`${manager.baseUrl}/ui/#/${route}`);
  }

  test('overview: per task type numbers and charts from the cluster metrics', async () => {
    const ids = await Promise.all([1, 2, 3].map((n) => submit({ task: 'example.echo', params: { n } })));
    for (const id of ids) await taskFinished(manager, id);
    await open('overview');
    const row = page.locator('tr[data-task="example.echo"]');
    await row.waitFor();
    await waitFor(
      async () => Number(await row.locator('[data-field="completedPerMinute"]').textContent()) > 0,
      {
        what: 'the overview to show completions',
        timeoutMs: 20_000,
      },
    );
    assert.equal(await row.locator('[data-field="available"]').textContent(), '0');
    assert.ok((await page.locator('.chart canvas').count()) >= 3, 'charts drawn');
    await page.screenshot({ path: path.join(shots, 'overview.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(shots, 'overview-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('tasks: a task submitted over REST appears and completes on the open page, without a reload', async () => {
    await open('tasks');
    await page.locator('table[aria-label="Tasks"]').waitFor();
    await page.locator('[data-live="live"]').waitFor();
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    const id = await submit({ task: 'example.sleep', params: { ms: 1500 } });
    const row = page.locator(`tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 10_000 });
    await row.locator('[data-state="completed"]').waitFor({ timeout: 15_000 });
    await waitFor(async () => (await row.locator('td').nth(6).textContent()) !== '–', {
      what: 'the finish time to show',
    });
    assert.equal(
      await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
      true,
    );
    await page.screenshot({ path: path.join(shots, 'tasks.png'), fullPage: true });

    await page.selectOption('#f-task', 'example.echo');
    await page.getByRole('button', { name: 'Search' }).click();
    const types = await waitFor(
      async () => {
        const shown = await page.locator('tr[data-id] td:nth-child(2)').allTextContents();
        return shown.length > 0 && shown.every((t) => t === 'example.echo') ? shown : undefined;
      },
      { what: 'only example.echo rows' },
    );
    assert.ok(!(await page.locator(`tr[data-id="${id}"]`).count()), 'the sleep task is filtered out');
    assert.ok(types.length >= 3);
  });

  test('task detail: cancel a delayed task, retry an incident; attempts name their worker', async () => {
    const delayed = await submit({ task: 'example.echo', params: {}, delay: 600_000 });
    await open(`task/${delayed}`);
    await page.locator('[data-state="delayed"]').waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByText('Cancelled.').waitFor();
    assert.equal((await manager.request('GET', `/v1/tasks/${delayed}`)).status, 404);

    const flaky = await submit({ task: 'example.flaky', params: { failTimes: 1 }, retries: 0 });
    assert.equal((await taskFinished(manager, flaky)).state, 'failed');
    await open(`task/${flaky}`);
    await page.locator('[data-state="failed"]').waitFor();
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.locator('[data-state="completed"]').waitFor({ timeout: 15_000 });
    assert.equal((await manager.request('GET', `/v1/tasks/${flaky}`)).body.state, 'completed');
    assert.equal(await page.locator('table[aria-label="Attempts"] tbody tr').count(), 2);
    const workerId = (await manager.request('GET', '/v1/workers')).body.workers[0].id;
    assert.ok((await page.locator('table[aria-label="Attempts"]').textContent())?.includes(workerId));
    await page.screenshot({ path: path.join(shots, 'task-detail.png'), fullPage: true });
  });

  test('incidents: the filter previews the matches, and retrying them all runs them', async () => {
    const ids = await Promise.all(
      [1, 2].map(() => submit({ task: 'example.flaky', params: { failTimes: 1 }, retries: 0 })),
    );
    for (const id of ids) assert.equal((await taskFinished(manager, id)).state, 'failed');
    await open('incidents');
    await page.selectOption('#f-task', 'example.flaky');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.locator('[data-matched="2"]').waitFor();
    await page.screenshot({ path: path.join(shots, 'incidents.png'), fullPage: true });
    await page.getByRole('button', { name: 'Retry all matching' }).click();
    await page.getByText('Retried 2 of 2 matching incidents.').waitFor();
    for (const id of ids) assert.equal((await taskFinished(manager, id)).state, 'completed');
    await page.locator('[data-matched="0"]').waitFor({ timeout: 10_000 });
  });

  test('queues: counts, pause and resume from the page', async () => {
    await open('queues');
    const row = page.locator('tr[data-queue="default"]');
    await row.waitFor();
    await page.getByRole('button', { name: 'Pause default' }).click();
    await row.locator('[data-field="status"]', { hasText: 'paused' }).waitFor();
    assert.equal((await manager.request('GET', '/v1/queues/default')).body.paused, true);
    await page.screenshot({ path: path.join(shots, 'queues.png'), fullPage: true });
    await page.getByRole('button', { name: 'Resume default' }).click();
    await row.locator('[data-field="status"]', { hasText: 'running' }).waitFor();
    assert.equal((await manager.request('GET', '/v1/queues/default')).body.paused, false);
  });

  test('workers: the live worker and the task it runs now', async () => {
    const id = await submit({ task: 'example.sleep', params: { ms: 4000 } });
    await open('workers');
    await page.locator(`tr[data-worker*=":${worker.child.pid}#"]`).waitFor();
    await page.locator(`[data-running="${id}"]`).waitFor({ timeout: 10_000 });
    await page.screenshot({ path: path.join(shots, 'workers.png'), fullPage: true });
    await taskFinished(manager, id);
  });

  test('with API keys the console asks for one, and works once it is given', async () => {
    const guarded = await startManagerProcess({
      REDIS_URL: redis.url,
      JOBBERS_PREFIX: uniquePrefix('console-keys'),
      JOBBERS_API_KEYS: 'console-test-key',
      JOBBERS_EXPORTER: 'off',
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const keyed = await context.newPage();
      await keyed.goto(`${guarded.baseUrl}/ui/#/queues`);
      await keyed.getByLabel('API key').waitFor();
      assert.equal(await keyed.locator('tr[data-queue]').count(), 0, 'no data without a key');
      await keyed.getByLabel('API key').fill('not-the-key');
      await keyed.getByRole('button', { name: 'Use this key' }).click();
      await keyed.getByText('That key was not accepted.').waitFor();
      await keyed.getByLabel('API key').fill('console-test-key');
      await keyed.getByRole('button', { name: 'Use this key' }).click();
      await keyed.locator('tr[data-queue="default"]').waitFor();
      await keyed.screenshot({ path: path.join(shots, 'queues-with-key.png') });
    } finally {
      await context.close();
      await guarded.stop();
    }
  });
});
