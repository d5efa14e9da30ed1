// POST /v1/tasks/:id/retry resolves an incident: the failed task runs again on a real worker with a
// fresh set of retries while its attempt number keeps counting, and the exporter counts
// incident-raised and incident-resolved and closes the incident.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterMetric, taskInState, transitions, useManagerWithWorker } from './support/tasks.js';

const stack = useManagerWithWorker('incident');

const flaky = 'example.flaky';

test('example.flaky {failTimes: 3} with retries 2 becomes an incident; a retry completes it on attempt 4', async () => {
  const submitted = await stack.manager.request('POST', '/v1/tasks', {
    task: flaky,
    params: { failTimes: 3 },
    retries: 2,
  });
  assert.equal(submitted.status, 201);
  const id = submitted.body.id;

  const incident = await taskInState(stack.manager, id, ['failed', 'completed']);
  assert.equal(incident.state, 'failed');
  assert.equal(incident.attempts, 3);
  assert.match(incident.error.message, /flaky failure on attempt 3/);
  const listed = await stack.manager.request('GET', `/v1/tasks?state=failed&task=${flaky}`);
  assert.equal(listed.status, 200);
  assert.deepEqual(
    listed.body.tasks.map((t: { id: string }) => t.id),
    [id],
  );
  assert.equal(await transitions(stack.manager, stack.prefix, flaky, 'incident-raised'), 1);
  assert.equal(await clusterMetric(stack.manager, stack.prefix, 'jobbers_incidents', { task: flaky }), 1);

  const retried = await stack.manager.request('POST', `/v1/tasks/${id}/retry`);
  assert.equal(retried.status, 200, JSON.stringify(retried.body));
  assert.equal(retried.body.id, id);
  assert.equal(retried.body.error, undefined, 'the incident error is cleared');

  const done = await taskInState(stack.manager, id, ['completed']);
  assert.deepEqual(done.result, { attempt: 4 }, 'ctx.attempt counts across the incident retry');
  assert.equal(done.attempts, 4);
  assert.equal(await transitions(stack.manager, stack.prefix, flaky, 'incident-resolved'), 1);
  assert.equal(await clusterMetric(stack.manager, stack.prefix, 'jobbers_incidents', { task: flaky }), 0);
  assert.equal(
    await clusterMetric(stack.manager, stack.prefix, 'jobbers_jobs_available', { task: flaky }),
    0,
  );
  const stillListed = await stack.manager.request('GET', `/v1/tasks?state=failed&task=${flaky}`);
  assert.deepEqual(stillListed.body.tasks, []);
});

test('a retried incident gets a fresh set of retries: failTimes 5 with retries 2 completes on attempt 6', async () => {
  const submitted = await stack.manager.request('POST', '/v1/tasks', {
    task: flaky,
    params: { failTimes: 5 },
    retries: 2,
  });
  const id = submitted.body.id;
  const incident = await taskInState(stack.manager, id, ['failed']);
  assert.equal(incident.attempts, 3);
  const retried = await stack.manager.request('POST', `/v1/tasks/${id}/retry`);
  assert.equal(retried.status, 200);
  // Attempts 4 and 5 fail and are retried (2 retries again); attempt 6 succeeds.
  const done = await taskInState(stack.manager, id, ['completed', 'failed']);
  assert.equal(done.state, 'completed', JSON.stringify(done));
  assert.deepEqual(done.result, { attempt: 6 });
});

test('retrying a task that is not an incident is a 409 and changes nothing; an unknown id is a 404', async () => {
  const submitted = await stack.manager.request('POST', '/v1/tasks', {
    task: 'example.echo',
    params: { n: 1 },
  });
  const id = submitted.body.id;
  await taskInState(stack.manager, id, ['completed']);
  const resolvedBefore = await transitions(stack.manager, stack.prefix, 'example.echo', 'incident-resolved');
  const conflict = await stack.manager.request('POST', `/v1/tasks/${id}/retry`);
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error.code, 'TASK_STATE_CONFLICT');
  assert.deepEqual(conflict.body.error.details, { state: 'completed' });
  const after = await stack.manager.request('GET', `/v1/tasks/${id}`);
  assert.equal(after.body.state, 'completed');
  assert.deepEqual(after.body.result, { n: 1 });
  assert.equal(
    await transitions(stack.manager, stack.prefix, 'example.echo', 'incident-resolved'),
    resolvedBefore,
  );

  const unknown = await stack.manager.request('POST', '/v1/tasks/01J0000000000000000000NONE/retry');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error.code, 'TASK_NOT_FOUND');
  const invalid = await stack.manager.request('POST', '/v1/tasks/bad%20id/retry');
  assert.equal(invalid.status, 400);
  assert.equal(invalid.body.error.code, 'INVALID_TASK_ID');
});
