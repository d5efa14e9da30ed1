// fast-check generators read from an OpenAPI document's schemas: values a schema accepts, and
// single-step mutations of a value that break one of its rules. Covers the JSON Schema the Jobbers
// document uses (types, bounds, lengths, patterns, enums, const, formats, objects, arrays, oneOf/anyOf).
import fc from 'fast-check';

export type Schema = Record<string, any>;

export class SchemaArbitraries {
  constructor(private readonly document: Schema) {}

  resolve(schema: Schema): Schema {
    if (typeof schema?.$ref !== 'string') return schema;
    const path = schema.$ref.replace(/^#\//, '').split('/');
    let node: any = this.document;
    for (const part of path) node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    return this.resolve(node);
  }

  /** Values the schema accepts; arrays and free-form values are kept small. */
  valid(input: Schema): fc.Arbitrary<unknown> {
    const schema = this.resolve(input);
    if ('const' in schema) return fc.constant(schema.const);
    if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
    if (Array.isArray(schema.oneOf)) return fc.oneof(...schema.oneOf.map((s: Schema) => this.valid(s)));
    if (Array.isArray(schema.anyOf) && schema.type === 'object') {
      const { anyOf, ...base } = schema;
      return fc.oneof(...anyOf.map((branch: Schema) => this.valid(mergeObject(base, branch))));
    }
    if (Array.isArray(schema.anyOf)) return fc.oneof(...schema.anyOf.map((s: Schema) => this.valid(s)));
    switch (schema.type) {
      case 'integer':
        return integerIn(schema.minimum ?? -(2 ** 31), schema.maximum ?? 2 ** 31 - 1);
      case 'number':
        return fc.double({ min: schema.minimum ?? -1e9, max: schema.maximum ?? 1e9, noNaN: true });
      case 'boolean':
        return fc.boolean();
      case 'string':
        return validString(schema);
      case 'array':
        return fc.array(this.valid(schema.items ?? {}), {
          minLength: schema.minItems ?? 0,
          maxLength: Math.min(schema.maxItems ?? 3, Math.max(schema.minItems ?? 0, 3)),
        });
      case 'object':
        return this.validObject(schema);
      default:
        return fc.jsonValue({ maxDepth: 2 });
    }
  }

  private validObject(schema: Schema): fc.Arbitrary<unknown> {
    const properties: Record<string, Schema> = schema.properties ?? {};
    if (Object.keys(properties).length === 0 && schema.additionalProperties === false) return fc.constant({});
    if (Object.keys(properties).length === 0) {
      return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
    }
    const model: Record<string, fc.Arbitrary<unknown>> = {};
    for (const [name, property] of Object.entries(properties)) model[name] = this.valid(property);
    return fc.record(model, { requiredKeys: schema.required ?? [] });
  }

  /**
   * Every single-rule break of `value` under `schema` this generator knows: a wrong type, one step
   * past a bound, a string too long or off its pattern or enum, an unknown or missing property, at
   * any depth. The caller confirms each with a validator: a break may be valid under another branch.
   */
  mutations(input: Schema, value: unknown, where = ''): [string, unknown][] {
    const schema = this.resolve(input);
    const out: [string, unknown][] = [];
    const wrongType = schema.type === 'string' ? 12345 : 'not-a-value';
    out.push([`${where} wrong type`, wrongType]);
    if (schema.type === 'integer' || schema.type === 'number') {
      if (schema.maximum !== undefined) out.push([`${where} above maximum`, schema.maximum + 1]);
      if (schema.minimum !== undefined) out.push([`${where} below minimum`, schema.minimum - 1]);
      if (schema.type === 'integer') out.push([`${where} not whole`, 1.5]);
    }
    if (schema.type === 'string') {
      if (schema.maxLength !== undefined) out.push([`${where} too long`, 'x'.repeat(schema.maxLength + 1)]);
      if (schema.minLength) out.push([`${where} empty`, '']);
      if (Array.isArray(schema.enum)) out.push([`${where} not in enum`, 'no.such-value']);
      if (schema.format === 'date-time') out.push([`${where} not a date-time`, 'yesterday']);
      if (schema.pattern) {
        const pattern = new RegExp(schema.pattern);
        for (const candidate of ['42', '-dash-first', 'has space', 'meta', 'é']) {
          if (!pattern.test(candidate)) out.push([`${where} off pattern (${candidate})`, candidate]);
        }
      }
    }
    if (Array.isArray(schema.oneOf)) {
      for (const branch of schema.oneOf) out.push(...this.mutations(branch, value, where));
    }
    if (schema.type === 'array' && Array.isArray(value)) {
      if (schema.minItems) out.push([`${where} too few items`, []]);
      value.forEach((item, index) => {
        for (const [what, broken] of this.mutations(schema.items ?? {}, item, `${where}/${index}`)) {
          out.push([what, value.map((v, i) => (i === index ? broken : v))]);
        }
      });
    }
    if (schema.type === 'object' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const object = value as Record<string, unknown>;
      if (schema.additionalProperties === false) {
        out.push([`${where} unknown property`, { ...object, unknownProperty: 1 }]);
      }
      for (const name of schema.required ?? []) {
        const { [name]: _dropped, ...rest } = object;
        out.push([`${where}/${name} missing`, rest]);
      }
      for (const [name, property] of Object.entries<Schema>(schema.properties ?? {})) {
        const current = name in object ? object[name] : undefined;
        for (const [what, broken] of this.mutations(property, current, `${where}/${name}`)) {
          out.push([what, { ...object, [name]: broken }]);
        }
      }
    }
    return out;
  }
}

function mergeObject(base: Schema, branch: Schema): Schema {
  return {
    ...base,
    required: [...(base.required ?? []), ...(branch.required ?? [])],
    properties: { ...base.properties, ...branch.properties },
  };
}

/** Integers across the whole range, with the bounds themselves and their neighbours likely. */
function integerIn(min: number, max: number): fc.Arbitrary<number> {
  const wide = fc.double({ min, max, noNaN: true }).map((v) => Math.min(max, Math.max(min, Math.round(v))));
  return fc.oneof(fc.constantFrom(min, max, Math.min(max, min + 1)), wide);
}

function validString(schema: Schema): fc.Arbitrary<string> {
  const minLength = schema.minLength ?? 0;
  const maxLength = schema.maxLength ?? 64;
  const lengthOk = (s: string) => s.length >= minLength && s.length <= maxLength;
  if (schema.format === 'date-time') {
    return fc
      .date({
        min: new Date('2000-01-01T00:00:00Z'),
        max: new Date('2100-01-01T00:00:00Z'),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString());
  }
  if (schema.pattern) {
    const pattern = new RegExp(schema.pattern);
    // fast-check cannot generate lookaheads: generate without them, keep what the whole pattern accepts.
    return fc
      .stringMatching(new RegExp(withoutLookaheads(schema.pattern)))
      .filter((s) => pattern.test(s) && lengthOk(s));
  }
  return fc.string({ minLength, maxLength: Math.min(maxLength, 80), unit: 'grapheme' });
}

/** The pattern with its `(?!...)` groups removed. */
export function withoutLookaheads(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '\\') {
      out += pattern.slice(i, i + 2);
      i++;
    } else if (pattern.startsWith('(?!', i)) {
      let depth = 0;
      for (; i < pattern.length; i++) {
        if (pattern[i] === '\\') i++;
        else if (pattern[i] === '(') depth++;
        else if (pattern[i] === ')' && --depth === 0) break;
      }
    } else {
      out += pattern[i];
    }
  }
  return out;
}
