// Workflows: a DAG of task submissions in one call. A node is submitted as an ordinary task (so the
// lifecycle metrics count it like any other) only once every parent completed; until then it exists
// only in the workflow's hash and is never available. Workers advance the workflow when a node
// finishes, in one script on that hash, before they settle the node's job: a worker that dies in
// between has its task run again and advances again, which changes nothing twice (node task ids are
// fixed, `<workflow id>.<node key>`, and a submitted id is never enqueued twice).
import type { Redis } from 'ioredis';
import type { SubmitRequest, TaskClient } from './client.js';
import type { SubmitResult, WorkflowView } from './schemas.js';

type WorkflowNodeView = WorkflowView['nodes'][number];

import { JobbersError } from './errors.js';
import { newTaskId, normalizeWorkflowId } from './ids.js';
import { sharedKey } from './keys.js';
import { scripts } from './lua/registry.js';
import { clusterMetrics } from './metrics/definitions.js';
import { metricHashKey } from './metrics/store.js';
import { partitionOfValue } from './routing.js';

/** What a failed node (an incident: no retries left) does to the rest of its workflow. */
export type NodeFailurePolicy = 'fail-workflow' | 'continue';

export interface WorkflowNodeRequest extends Omit<SubmitRequest, 'id' | 'traceparent'> {
  /** The node's name in its workflow: 1-64 of [A-Za-z0-9_-]. */
  key: string;
  /** Keys of the nodes that must complete first; their results reach this one as `ctx.parents`. */
  dependsOn?: string[];
  /** @default 'fail-workflow' */
  onFailure?: NodeFailurePolicy;
  /**
   * One node a params entry: the node becomes `<key>-0` ... `<key>-<n-1>`, and a node that depends
   * on `<key>` depends on all of them (its ctx.parents holds each by its own key).
   */
  fanOut?: FanOut;
}

/** How a fan-out spreads its nodes over queues the task allows. */
export interface FanOut {
  /** The params of each node (replaces `params`): 1..1000 entries. */
  params: unknown[];
  /** Queues to spread over (each must be one the task allows). Absent: the task's own routing. */
  queues?: string[];
  /** round-robin (default): node i on queues[i % n]; hash: by `params[hashBy]`, as partitionBy picks a partition, so equal values share a queue. */
  strategy?: 'round-robin' | 'hash';
  hashBy?: string;
}

export interface WorkflowRequest {
  /** What kind of workflow this is (the metrics' `workflow` label): 1-64 of [A-Za-z0-9_.-]. */
  name: string;
  /** Default: a new ULID. A repeated id answers the workflow already there and submits nothing. */
  id?: string;
  nodes: WorkflowNodeRequest[];
  traceparent?: string;
}

export type WorkflowState = 'running' | 'completed' | 'failed' | 'cancelled';
/** waiting: parents not all completed; ready: submitting; submitted: a task (see its own state). */
export type WorkflowNodeState =
  | 'waiting'
  | 'ready'
  | 'submitted'
  | 'completed'
  | 'failed'
  | 'skipped'
  | 'cancelled';

export interface WorkflowCreation {
  id: string;
  name: string;
  state: WorkflowState;
  /** False when a workflow with this id existed already: nothing was submitted. */
  created: boolean;
  /** The nodes submitted now (those with no parents). */
  submitted: SubmitResult[];
}

/** Where a node's job came from: carried in its payload, read by the worker. */
export interface WorkflowNodeRef {
  id: string;
  node: string;
}

export const maxWorkflowNodes = 10_000;
/** Workflows one listing page examines at most. */
const maxListExamined = 10_000;

/** How long a retry waits for failed nodes' tasks to leave active (their workers' last move). */
const settleWaitMs = 2000;
/** GET /v1/workflows/:id reads the tasks of at most this many submitted nodes. */
export const maxNodeDetails = 1000;
/** Distinct workflow names the metrics label as themselves; later ones are 'other'. */
export const maxWorkflowLabels = 100;
/** A node's result kept for its children's `ctx.parents`; larger ones are left out (read the task). */
export const maxParentResultBytes = 64 * 1024;
const nodeKeyPattern = /^[A-Za-z0-9_-]{1,64}$/;
const workflowNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const failurePolicies: readonly NodeFailurePolicy[] = ['fail-workflow', 'continue'];

export function workflowKey(prefix: string, id: string): string {
  return sharedKey(prefix, `workflow:${id}`);
}

/** Every workflow by creation time, for listings. */
export function workflowIndexKey(prefix: string): string {
  return sharedKey(prefix, 'workflows');
}

export function nodeTaskId(workflowId: string, key: string): string {
  return `${workflowId}.${key}`;
}

interface PreparedWorkflow {
  id: string;
  name: string;
  nodes: (WorkflowNodeRequest & { dependsOn: string[]; onFailure: NodeFailurePolicy; children: string[] })[];
}

/** Checks the shape of a workflow (names, keys, edges, no cycle); throws INVALID_WORKFLOW. */
export function prepareWorkflow(input: WorkflowRequest): PreparedWorkflow {
  const problems: string[] = [];
  const request = { ...input, nodes: expandFanOuts(input.nodes, problems) };
  if (typeof request.name !== 'string' || !workflowNamePattern.test(request.name))
    problems.push('name must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit');
  const nodes = Array.isArray(request.nodes) ? request.nodes : [];
  if (nodes.length === 0 || nodes.length > maxWorkflowNodes)
    problems.push(`a workflow has 1..${maxWorkflowNodes} nodes, got ${nodes.length}`);
  const keys = new Set<string>();
  for (const node of nodes) {
    if (typeof node.key !== 'string' || !nodeKeyPattern.test(node.key))
      problems.push(`node key "${String(node.key)}" must be 1-64 of [A-Za-z0-9_-]`);
    else if (keys.has(node.key)) problems.push(`node key "${node.key}" appears twice`);
    keys.add(node.key);
    if (node.onFailure !== undefined && !failurePolicies.includes(node.onFailure))
      problems.push(`node "${node.key}": onFailure must be ${failurePolicies.join(' or ')}`);
  }
  const children = new Map<string, string[]>([...keys].map((k) => [k, []]));
  for (const node of nodes) {
    for (const parent of node.dependsOn ?? []) {
      if (!keys.has(parent)) problems.push(`node "${node.key}" depends on "${parent}", which is not a node`);
      else if (parent === node.key) problems.push(`node "${node.key}" depends on itself`);
      else children.get(parent)!.push(node.key);
    }
  }
  if (problems.length === 0) {
    const cycle = findCycle(
      nodes.map((n) => n.key),
      children,
    );
    if (cycle) problems.push(`the dependencies form a cycle: ${cycle.join(' -> ')}`);
  }
  if (problems.length > 0)
    throw new JobbersError('INVALID_WORKFLOW', `invalid workflow: ${problems.join('; ')}`, problems);
  return {
    id: request.id === undefined ? newTaskId() : normalizeWorkflowId(request.id),
    name: request.name,
    nodes: nodes.map((n) => ({
      ...n,
      dependsOn: [...new Set(n.dependsOn ?? [])],
      onFailure: n.onFailure ?? 'fail-workflow',
      children: children.get(n.key)!,
    })),
  };
}

export const maxFanOut = 1000;

/** Replaces each fan-out node by its nodes, and dependencies on it by dependencies on all of them. */
function expandFanOuts(nodes: WorkflowNodeRequest[] | undefined, problems: string[]): WorkflowNodeRequest[] {
  if (!Array.isArray(nodes)) return [];
  const expanded = new Map<string, string[]>();
  const out: WorkflowNodeRequest[] = [];
  for (const node of nodes) {
    const { fanOut, ...rest } = node ?? ({} as WorkflowNodeRequest);
    if (fanOut === undefined) {
      out.push(rest);
      continue;
    }
    const where = `fan-out "${String(node.key)}"`;
    if (!Array.isArray(fanOut.params) || fanOut.params.length === 0 || fanOut.params.length > maxFanOut) {
      problems.push(`${where}: params must list 1..${maxFanOut} entries`);
      continue;
    }
    const strategy = fanOut.strategy ?? 'round-robin';
    if (strategy !== 'round-robin' && strategy !== 'hash')
      problems.push(`${where}: strategy must be round-robin or hash`);
    if (strategy === 'hash' && typeof fanOut.hashBy !== 'string')
      problems.push(`${where}: strategy hash needs hashBy`);
    if (fanOut.queues !== undefined && (!Array.isArray(fanOut.queues) || fanOut.queues.length === 0))
      problems.push(`${where}: queues must list at least one queue`);
    if (rest.params !== undefined) problems.push(`${where}: give params or fanOut.params, not both`);
    if (rest.queue !== undefined && fanOut.queues !== undefined)
      problems.push(`${where}: give queue or fanOut.queues, not both`);
    const keys = fanOut.params.map((_, i) => `${node.key}-${i}`);
    expanded.set(node.key, keys);
    fanOut.params.forEach((params, i) => {
      const queues = fanOut.queues;
      let queue = rest.queue;
      if (queues?.length) {
        const value = (params as Record<string, unknown> | null)?.[fanOut.hashBy ?? ''];
        queue =
          queues[strategy === 'hash' ? partitionOfValue(value ?? null, queues.length) : i % queues.length];
      }
      out.push({ ...rest, key: keys[i]!, params, ...(queue === undefined ? {} : { queue }) });
    });
  }
  if (expanded.size === 0) return out;
  return out.map((node) =>
    node.dependsOn
      ? { ...node, dependsOn: node.dependsOn.flatMap((parent) => expanded.get(parent) ?? [parent]) }
      : node,
  );
}

function findCycle(keys: string[], children: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  // Iterative depth-first search: a workflow of 10,000 nodes in a chain must not overflow the stack.
  for (const start of keys) {
    if (state.has(start)) continue;
    const stack: { key: string; next: number }[] = [{ key: start, next: 0 }];
    state.set(start, 'open');
    path.push(start);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const child = children.get(top.key)![top.next++];
      if (child === undefined) {
        state.set(top.key, 'done');
        stack.pop();
        path.pop();
      } else if (state.get(child) === 'open') {
        return [...path.slice(path.indexOf(child)), child];
      } else if (!state.has(child)) {
        state.set(child, 'open');
        path.push(child);
        stack.push({ key: child, next: 0 });
      }
    }
  }
  return undefined;
}

// The workflow hash and its scripts: lua/workflow-create.lua, workflow-advance.lua and
// workflow-mark-submitted.lua.

export interface NodeAdvance {
  /** The workflow's metric label: its name, or 'other' past the label limit. */
  name: string;
  /** The workflow's state after this step. */
  state: WorkflowState;
  /** This step finished the workflow (completed or failed): count it once. */
  finished: boolean;
  createdAtMs: number;
  submitted: SubmitResult[];
}

export class Workflows {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly client: TaskClient,
  ) {}

  /**
   * Validates the whole workflow (its shape and every node's task, params and options) before
   * anything is written; then stores it and submits the nodes without parents.
   */
  async create(request: WorkflowRequest): Promise<WorkflowCreation> {
    const workflow = prepareWorkflow(request);
    const problems: { node: string; code: string; message: string }[] = [];
    for (const node of workflow.nodes) {
      try {
        this.client.prepare(this.nodeSubmission(workflow.id, node));
      } catch (error) {
        if (!(error instanceof JobbersError)) throw error;
        problems.push({ node: node.key, code: error.code, message: error.message });
      }
    }
    if (problems.length > 0)
      throw new JobbersError(
        'INVALID_WORKFLOW',
        `${problems.length} of ${workflow.nodes.length} nodes are invalid; nothing was submitted`,
        problems,
      );
    const args: (string | number)[] = [workflow.id, workflow.name, Date.now(), maxWorkflowLabels];
    for (const n of workflow.nodes) {
      const { children: _children, ...submission } = n;
      args.push(
        n.key,
        n.task,
        n.dependsOn.join(','),
        n.children.join(','),
        n.onFailure,
        JSON.stringify(submission),
      );
    }
    const created = await scripts.workflowCreate.run(
      this.redis,
      [
        workflowKey(this.prefix, workflow.id),
        workflowIndexKey(this.prefix),
        sharedKey(this.prefix, 'workflow-labels'),
        metricHashKey(this.prefix, clusterMetrics.workflowsStarted),
      ],
      args,
    );
    if (created === 0) {
      const existing = await this.get(workflow.id);
      return { id: existing.id, name: existing.name, state: existing.state, created: false, submitted: [] };
    }
    const roots = workflow.nodes.filter((n) => n.dependsOn.length === 0);
    const submitted = await this.submitNodes(workflow.id, roots, request.traceparent);
    return { id: workflow.id, name: workflow.name, state: 'running', created: true, submitted };
  }

  /**
   * Records a node's final outcome (a failure only once no retry is left) and submits the nodes it
   * made ready. Safe to repeat: a second call for the same node submits what the first could not.
   */
  async advance(
    ref: WorkflowNodeRef,
    outcome: 'completed' | 'failed',
    result?: unknown,
  ): Promise<NodeAdvance | undefined> {
    const key = workflowKey(this.prefix, ref.id);
    let encoded = '';
    if (outcome === 'completed') {
      encoded = JSON.stringify(result ?? null);
      if (encoded.length > maxParentResultBytes)
        encoded = JSON.stringify({ omitted: true, bytes: encoded.length });
    }
    const reply = await scripts.workflowAdvance.run(
      this.redis,
      [key],
      [ref.node, outcome, Date.now(), encoded],
    );
    if (reply.length === 0) return undefined;
    const [ready, state, finished] = reply;
    // Most steps make nothing ready and finish nothing: they cost the script call alone.
    const [[name, createdAt], definition] = await Promise.all([
      finished === 1 ? this.redis.hmget(key, 'label', 'createdAt') : Promise.resolve([null, null]),
      ready ? this.nodeDefinitions(ref.id, ready.split(',')) : Promise.resolve([]),
    ]);
    const submitted = await this.submitNodes(ref.id, definition);
    return {
      state,
      finished: finished === 1,
      name: name ?? '',
      createdAtMs: Number(createdAt ?? 0),
      submitted,
    };
  }

  /**
   * Cancels a running workflow: nodes not yet submitted are skipped, submitted tasks that have not
   * started are cancelled, running ones finish (nothing after them is submitted). 409 unless running.
   */
  async cancel(id: string): Promise<WorkflowView> {
    const key = workflowKey(this.prefix, id);
    const [before, submitted] = await scripts.workflowCancel.run(this.redis, [key], [Date.now()]);
    if (before === '') throw new JobbersError('WORKFLOW_NOT_FOUND', `no workflow "${id}"`);
    if (before !== 'running')
      throw new JobbersError(
        'TASK_STATE_CONFLICT',
        `workflow "${id}" is ${before}: only a running workflow is cancelled`,
      );
    const cancelled: string[] = [];
    for (const node of submitted ? submitted.split(',') : []) {
      try {
        await this.client.cancelTask(nodeTaskId(id, node));
        cancelled.push(node);
      } catch (error) {
        // Started or finished meanwhile (409), or gone (404): it runs to its end or is over.
        if (
          !(error instanceof JobbersError && ['TASK_STATE_CONFLICT', 'TASK_NOT_FOUND'].includes(error.code))
        )
          throw error;
      }
    }
    if (cancelled.length > 0)
      await scripts.workflowMarkCancelled.run(this.redis, [key], [Date.now(), ...cancelled]);
    return this.get(id);
  }

  /**
   * Runs a failed workflow again from where it failed: failed nodes are retried (as incidents),
   * skipped ones wait again for their parents. 409 unless failed.
   */
  async retry(id: string): Promise<WorkflowView> {
    const key = workflowKey(this.prefix, id);
    await this.untilFailedNodesSettle(id, key);
    const [before, failed, ready] = await scripts.workflowRetry.run(this.redis, [key], []);
    if (before === '') throw new JobbersError('WORKFLOW_NOT_FOUND', `no workflow "${id}"`);
    if (before !== 'failed')
      throw new JobbersError(
        'TASK_STATE_CONFLICT',
        `workflow "${id}" is ${before}: only a failed workflow is retried`,
      );
    for (const node of failed ? failed.split(',') : []) await this.client.retryTask(nodeTaskId(id, node));
    if (ready) await this.submitNodes(id, await this.nodeDefinitions(id, ready.split(',')));
    return this.get(id);
  }

  /**
   * Waits (up to settleWaitMs) until no failed node's task is still active. A node's worker records
   * its failure in the workflow just before it moves the task to failed; a retry in between would
   * reopen the workflow and then find the task not yet retryable. Waiting before reopening keeps
   * the workflow failed, and retryable, should the task not settle in time.
   */
  private async untilFailedNodesSettle(id: string, key: string): Promise<void> {
    const fields = await this.redis.hgetall(key);
    const failed = Object.keys(fields).filter((f) => f.startsWith('s:') && fields[f] === 'failed');
    const deadline = Date.now() + settleWaitMs;
    for (const field of failed) {
      const taskId = nodeTaskId(id, field.slice(2));
      while (Date.now() < deadline) {
        const view = await this.client.getTask(taskId).catch((error: unknown) => {
          if (error instanceof JobbersError && error.code === 'TASK_NOT_FOUND') return undefined;
          throw error;
        });
        if (view?.state !== 'active') break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  /** The results of a node's parents, for `ctx.parents`. */
  async parentResults(ref: WorkflowNodeRef): Promise<Record<string, unknown>> {
    const key = workflowKey(this.prefix, ref.id);
    const parents = (await this.redis.hget(key, `d:${ref.node}`)) ?? '';
    if (!parents) return {};
    const keys = parents.split(',');
    const values = await this.redis.hmget(key, ...keys.map((k) => `r:${k}`));
    return Object.fromEntries(keys.map((k, i) => [k, values[i] == null ? null : JSON.parse(values[i]!)]));
  }

  /**
   * The workflow with, for each node submitted (up to maxNodeDetails of them), its task's state,
   * attempts and times: one read per node, 32 at a time.
   */
  async getWithTasks(id: string): Promise<WorkflowView> {
    const view = await this.get(id);
    const submitted = view.nodes.filter((n) => !['waiting', 'ready', 'skipped'].includes(n.state));
    if (submitted.length > maxNodeDetails) return { ...view, tasksOmitted: true };
    for (let i = 0; i < submitted.length; i += 32) {
      await Promise.all(
        submitted.slice(i, i + 32).map(async (node) => {
          try {
            const task = await this.client.getTask(node.taskId);
            node.taskState = task.state;
            node.attempts = task.attempts;
            if (task.startedAt) node.startedAt = task.startedAt;
            if (task.finishedAt) node.finishedAt = task.finishedAt;
          } catch (error) {
            // Cancelled, or removed by the cleaner: the node's own state says what it was.
            if (!(error instanceof JobbersError && error.code === 'TASK_NOT_FOUND')) throw error;
          }
        }),
      );
    }
    return view;
  }

  async get(id: string): Promise<WorkflowView> {
    const key = workflowKey(this.prefix, id);
    const [fields, history] = await Promise.all([
      this.redis.hgetall(key),
      this.redis.lrange(`${key}:history`, 0, -1),
    ]);
    if (!fields.name) throw new JobbersError('WORKFLOW_NOT_FOUND', `no workflow "${id}"`);
    const nodes: WorkflowNodeView[] = Object.keys(fields)
      .filter((f) => f.startsWith('s:'))
      .map((f) => f.slice(2))
      .map((node) => ({
        key: node,
        task: fields[`t:${node}`]!,
        taskId: nodeTaskId(id, node),
        state: fields[`s:${node}`] as WorkflowNodeState,
        dependsOn: fields[`d:${node}`] ? fields[`d:${node}`]!.split(',') : [],
        onFailure: fields[`f:${node}`] as NodeFailurePolicy,
      }));
    return {
      id,
      name: fields.name,
      state: fields.state as WorkflowState,
      createdAt: new Date(Number(fields.createdAt)).toISOString(),
      ...(fields.finishedAt ? { finishedAt: new Date(Number(fields.finishedAt)).toISOString() } : {}),
      nodes,
      frontier: nodes.filter((n) => n.state === 'submitted' || n.state === 'ready').map((n) => n.key),
      history: history.map((line) => {
        const entry = JSON.parse(line) as {
          key: string;
          state: 'completed' | 'failed' | 'skipped' | 'cancelled';
          at: number;
        };
        return { key: entry.key, state: entry.state, at: new Date(entry.at).toISOString() };
      }),
    };
  }

  /**
   * Workflows newest first, optionally of one name and in one state; `before` is the cursor (a
   * creation time in ms) of the next page. A page examines at most 10,000 workflows, so with narrow
   * filters it may be short and still carry a cursor.
   */
  async list(
    limit = 50,
    before?: number,
    filter: { name?: string; state?: WorkflowState } = {},
  ): Promise<{ workflows: WorkflowView[]; nextCursor?: string }> {
    const workflows: WorkflowView[] = [];
    let cursor = before;
    let examined = 0;
    while (workflows.length < limit && examined < maxListExamined) {
      const window = await this.redis.zrevrangebyscore(
        workflowIndexKey(this.prefix),
        cursor === undefined ? '+inf' : `(${cursor}`,
        '-inf',
        'WITHSCORES',
        'LIMIT',
        0,
        200,
      );
      if (window.length === 0) return { workflows };
      const ids = window.filter((_, i) => i % 2 === 0);
      const heads = await Promise.all(
        ids.map((id) => this.redis.hmget(workflowKey(this.prefix, id), 'name', 'state')),
      );
      for (const [i, id] of ids.entries()) {
        examined++;
        cursor = Number(window[i * 2 + 1]);
        const [name, state] = heads[i]!;
        // Removed between the index read and now: left out of the page.
        if (name === null) continue;
        if ((filter.name && name !== filter.name) || (filter.state && state !== filter.state)) continue;
        workflows.push(await this.get(id));
        if (workflows.length === limit) break;
      }
      if (window.length < 400) {
        if (workflows.length < limit) return { workflows };
        break;
      }
    }
    return { workflows, ...(cursor === undefined ? {} : { nextCursor: String(cursor) }) };
  }

  private nodeSubmission(workflowId: string, node: WorkflowNodeRequest, traceparent?: string): SubmitRequest {
    const { key, dependsOn: _parents, onFailure: _policy, ...submission } = node;
    return {
      ...submission,
      id: nodeTaskId(workflowId, key),
      workflow: { id: workflowId, node: key },
      traceparent,
    };
  }

  /** The definitions of nodes about to be submitted, read back from the stored workflow request. */
  private async nodeDefinitions(workflowId: string, keys: string[]): Promise<WorkflowNodeRequest[]> {
    const stored = await this.redis.hmget(workflowKey(this.prefix, workflowId), ...keys.map((k) => `n:${k}`));
    return stored.flatMap((json) => (json ? [JSON.parse(json) as WorkflowNodeRequest] : []));
  }

  private async submitNodes(
    workflowId: string,
    nodes: WorkflowNodeRequest[],
    traceparent?: string,
  ): Promise<SubmitResult[]> {
    if (nodes.length === 0) return [];
    const key = workflowKey(this.prefix, workflowId);
    const results: SubmitResult[] = [];
    for (let i = 0; i < nodes.length; i += 1000) {
      const batch = nodes.slice(i, i + 1000);
      results.push(
        ...(await this.client.submitBatch(batch.map((n) => this.nodeSubmission(workflowId, n, traceparent)))),
      );
      await scripts.workflowMarkSubmitted.run(
        this.redis,
        [key],
        batch.map((n) => n.key),
      );
    }
    return results;
  }
}
