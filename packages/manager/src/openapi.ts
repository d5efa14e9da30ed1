// The OpenAPI document: the route schemas, completed from the registered task types when the app is
// built, so a client generated from it is typed per task and every check core makes is stated.
import type { SwaggerOptions } from '@fastify/swagger';
import {
  ErrorBody,
  knownQueueFormat,
  type TaskRegistry,
  taskIdFormat,
  taskIdPattern,
  taskTypeFormat,
  workflowIdFormat,
  workflowIdPattern,
} from '@jobbers/core';

/** Stable operation ids of the two submit routes, whose bodies the document makes per task. */
export const submitOperationId = 'submitTask';
export const submitBatchOperationId = 'submitTasks';
export const retryIncidentsOperationId = 'retryIncidents';

type Schema = Record<string, any>;
type Document = Record<string, any>;

const submissionSchema = 'Submission';
const workflowNodeSchema = 'WorkflowNode';
export const submitWorkflowOperationId = 'submitWorkflow';
const submitSchemaName = (task: string) => `Submit.${task}`;
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

export function openapiOptions(registry: TaskRegistry, apiKeys: string[]): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Jobbers manager API',
        version: '0.1.0',
        description:
          'Submit, inspect and manage Jobbers tasks. Every error is `{error: {code, message, details?}}`.',
      },
      servers: [{ url: '/', description: 'the manager that serves this document' }],
      tags: [
        { name: 'tasks', description: 'Submit tasks, read them, list them, cancel them, retry incidents' },
        { name: 'queues', description: 'Queues: counts per state, available jobs per task type, pause' },
      ],
      // Without API keys the API is open: an empty security list says so.
      ...(apiKeys.length > 0
        ? {
            components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
            security: [{ bearer: [] }],
          }
        : { security: [] }),
    },
    convertConstToEnum: false,
    transformObject: ({ openapiObject }: { openapiObject?: Document }) =>
      completeDocument(openapiObject as Document, registry, apiKeys.length > 0),
  } as SwaggerOptions;
}

/** Spells out the formats core checks, and gives each registered task type its own submission schema. */
export function completeDocument(document: Document, registry: TaskRegistry, withAuth: boolean): Document {
  const taskNames = registry.names;
  if (withAuth) {
    for (const operation of operations(document)) Object.assign(operation.responses, authResponses);
  }
  visitSchemas(document.paths, (schema) => {
    if (schema.format === taskIdFormat) schema.pattern = taskIdPattern;
    if (schema.format === workflowIdFormat) schema.pattern = workflowIdPattern;
    if (schema.format === taskTypeFormat) schema.enum = taskNames;
    if (schema.format === knownQueueFormat) schema.enum = registry.queues;
  });
  const massRetry = findOperation(document, retryIncidentsOperationId);
  if (massRetry) {
    // Core refuses a mass retry that names no filter unless it says "all": true.
    massRetry.requestBody.content['application/json'].schema.anyOf = [
      ...['queue', 'task', 'before', 'after'].map((field) => ({ required: [field] })),
      { required: ['all'], properties: { all: { const: true } } },
    ];
  }
  const single = findOperation(document, submitOperationId);
  const batch = findOperation(document, submitBatchOperationId);
  if (!single || !batch) return document;
  const generic = single.requestBody.content['application/json'].schema as Schema;
  document.components ??= {};
  document.components.schemas ??= {};
  const schemas: Schema = document.components.schemas;
  const mapping: Record<string, string> = {};
  for (const def of registry.definitions) {
    const name = submitSchemaName(def.name);
    mapping[def.name] = ref(name).$ref;
    const paramsRequired = !registry.acceptsParams(def.name, {});
    schemas[name] = {
      ...generic,
      description: `Submit a task of type ${def.name} (queue ${def.queue})`,
      required: paramsRequired ? ['task', 'params'] : ['task'],
      properties: {
        ...generic.properties,
        task: { type: 'string', enum: [def.name] },
        params: openParams(def.params),
        queue: { ...generic.properties.queue, enum: [def.queue, ...(def.queues ?? [])] },
      },
    };
  }
  schemas[submissionSchema] = {
    description: 'A task to submit: its `task` names the type, which decides the schema of `params`',
    oneOf: registry.definitions.map((def) => ref(submitSchemaName(def.name))),
    discriminator: { propertyName: 'task', mapping },
  };
  single.requestBody.content['application/json'].schema = ref(submissionSchema);
  const batchBody = batch.requestBody.content['application/json'].schema as Schema;
  batchBody.properties.tasks.items = ref(submissionSchema);
  typeWorkflowNodes(document, registry, schemas);
  return document;
}

/** A workflow's nodes, typed per task as submissions are (a node is a submission without its id). */
function typeWorkflowNodes(document: Document, registry: TaskRegistry, schemas: Schema): void {
  const submit = findOperation(document, submitWorkflowOperationId);
  if (!submit) return;
  const body = submit.requestBody.content['application/json'].schema as Schema;
  const generic = body.properties.nodes.items as Schema;
  const mapping: Record<string, string> = {};
  for (const def of registry.definitions) {
    const name = `WorkflowNode_${def.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
    mapping[def.name] = ref(name).$ref;
    const task = schemas[submitSchemaName(def.name)] as Schema;
    // A node runs once, as itself: it takes neither an id nor deduplication.
    const { id: _id, dedupKey: _key, dedup: _mode, dedupWindow: _window, ...properties } = task.properties;
    const fanOut = structuredClone(generic.properties.fanOut) as Schema;
    fanOut.properties.params.items = properties.params;
    fanOut.properties.queues.items = { ...fanOut.properties.queues.items, enum: properties.queue.enum };
    const paramsRequired = task.required.includes('params');
    schemas[name] = {
      ...generic,
      description: `A node running a task of type ${def.name}`,
      required: ['key', 'task'],
      properties: { ...generic.properties, ...properties, fanOut },
      // Params are required by this task: given once, or per node of a fan-out.
      ...(paramsRequired
        ? {
            anyOf: [
              { required: ['params'], properties: { params: {} } },
              { required: ['fanOut'], properties: { fanOut: {} } },
            ],
          }
        : {}),
      allOf: [
        // A fan-out's params are each node's: not both.
        { not: { required: ['params', 'fanOut'], properties: { params: {}, fanOut: {} } } },
        // A fan-out spreads its nodes over fanOut.queues, or all run on `queue`: not both.
        {
          not: {
            required: ['queue', 'fanOut'],
            properties: { queue: {}, fanOut: { required: ['queues'], properties: { queues: {} } } },
          },
        },
      ],
    };
  }
  schemas[workflowNodeSchema] = {
    description:
      'A node of the workflow: a task submission with a key; dependsOn names earlier nodes by key and must not form a cycle',
    oneOf: registry.definitions.map((def) => ref(mapping[def.name]!.split('/').pop()!)),
    discriminator: { propertyName: 'task', mapping },
  };
  body.properties.nodes.items = ref(workflowNodeSchema);
}

/**
 * The task's params schema. An object schema that names no properties takes any (JSON Schema's
 * default); said outright, so generators that read silence as "no properties" type it as open.
 */
function openParams(params: Schema): Schema {
  const schema = structuredClone(params);
  if (schema.type === 'object' && !schema.properties && schema.additionalProperties === undefined) {
    schema.additionalProperties = true;
  }
  return schema;
}

function operations(document: Document): Schema[] {
  return Object.values<Schema>(document.paths ?? {}).flatMap((pathItem) =>
    Object.values<Schema>(pathItem).filter((operation) => typeof operation?.operationId === 'string'),
  );
}

function findOperation(document: Document, operationId: string): Schema | undefined {
  return operations(document).find((operation) => operation.operationId === operationId);
}

const errorContent = { 'application/json': { schema: ErrorBody } };
/** With API keys every /v1 operation can refuse the caller. */
const authResponses = {
  401: { description: 'No API key, or a malformed Authorization header', content: errorContent },
  403: { description: 'The API key is not accepted', content: errorContent },
};

function visitSchemas(node: unknown, visit: (schema: Schema) => void): void {
  if (Array.isArray(node)) {
    for (const item of node) visitSchemas(item, visit);
  } else if (node !== null && typeof node === 'object') {
    visit(node as Schema);
    for (const child of Object.values(node)) visitSchemas(child, visit);
  }
}
