// Route validation: bodies are taken as sent (no type coercion: `"priority": true` is an error, not 1);
// querystrings and path parameters arrive as text, so numbers and booleans there are read from it.

import { knownQueueFormat, taskIdFormat, taskTypeFormat, workflowIdFormat } from '@jobbers/core';
import { Ajv, type ErrorObject, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function newAjv(coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = addFormats(
    new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false }),
  );
  // Core checks these with their own codes (INVALID_TASK_ID, UNKNOWN_TASK_TYPE, UNKNOWN_QUEUE, INVALID_FILTER); the
  // document states them (openapi.ts), and the property-based test holds the two to agreement.
  for (const format of [taskIdFormat, workflowIdFormat, taskTypeFormat, knownQueueFormat, 'date-time'])
    ajv.addFormat(format, true);
  return ajv;
}

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const asSent = newAjv(false);
  const fromText = newAjv('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? asSent : fromText).compile(schema as object);
}

/**
 * One readable message for Ajv's errors: alternatives of constants become "must be one of: a, b"
 * (not one "must be equal to constant" per alternative), unknown properties are named.
 */
export function formatSchemaErrors(errors: Partial<ErrorObject>[], dataVar: string): Error {
  const allowed = new Map<string, unknown[]>();
  const messages: string[] = [];
  for (const error of errors) {
    const where = `${dataVar}${error.instancePath ?? ''}`;
    const params = (error.params ?? {}) as Record<string, unknown>;
    if (error.keyword === 'const' || error.keyword === 'enum') {
      const values = error.keyword === 'const' ? [params.allowedValue] : (params.allowedValues as unknown[]);
      allowed.set(where, [...(allowed.get(where) ?? []), ...values]);
    } else if (error.keyword === 'additionalProperties') {
      messages.push(`${where} must not have property "${String(params.additionalProperty)}"`);
    } else if (error.keyword !== 'anyOf' || !allowed.has(where)) {
      messages.push(`${where} ${error.message}`);
    }
  }
  for (const [where, values] of allowed) messages.unshift(`${where} must be one of: ${values.join(', ')}`);
  return new Error([...new Set(messages)].join('; '));
}
