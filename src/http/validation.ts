import type { FastifyInstance, FastifySchema } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../services/validation.ts';
import { jsonSchemaOf } from './openapi.ts';

/**
 * Route validation (issue 16 acceptance 4): a route's `body`, `querystring`, `params` and `headers` are zod schemas —
 * the very ones its service parses with — and Fastify validates each request against them before the handler runs,
 * refusing with the catalogued error the service would give (`parseInput`: `request.invalid` and every field's problem,
 * or the codes the schema was registered with, `inputSchema` in services/validation.ts). The OpenAPI document is generated from the same
 * schemas (`openApiTransform`). A request schema that is not zod is refused when the route is registered, so no route
 * can document one shape and accept another.
 *
 * The request is left as it came (the handler's service parses it again, with defaults and transforms): validation
 * decides only whether the handler runs. Responses keep Fastify's serialiser, on JSON Schemas made from zod schemas
 * (`jsonSchemaOf`): a field not in the schema is never sent.
 */

function isZod(schema: unknown): schema is z.ZodType {
  return schema instanceof z.ZodType;
}

export function installRouteValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, method, url, httpPart }) => {
    if (!isZod(schema)) {
      throw new Error(`${method} ${url}: the ${httpPart} schema must be a zod schema (src/http/validation.ts)`);
    }
    return (data: unknown) => {
      // An absent body is validated as the handlers read it (`req.body ?? {}`).
      const input = data ?? (httpPart === 'body' ? {} : data);
      try {
        parseInput(schema, input);
        return { value: data };
      } catch (err) {
        return { error: err as Error };
      }
    };
  });
}

const PARTS = ['body', 'querystring', 'params', 'headers'] as const;

/** @fastify/swagger's `transform`: each zod request schema as the JSON Schema of its input. */
export function openApiTransform({ schema, url }: { schema: FastifySchema; url: string }): {
  schema: FastifySchema;
  url: string;
} {
  if (!schema) return { schema, url };
  const out: Record<string, unknown> = { ...schema };
  for (const part of PARTS) {
    const s = (schema as Record<string, unknown>)[part];
    if (isZod(s)) out[part] = jsonSchemaOf(s, 'input');
  }
  return { schema: out as FastifySchema, url };
}

/**
 * A field a service must see whatever it holds, because it audits a malformed value as a refused attempt (a card's
 * proof of possession, a card agent's grant): the route documents it (`json`) and leaves its refusal to the service.
 */
export function proofField(json: Record<string, unknown>): z.ZodType {
  return z.unknown().optional().meta(json);
}

/** A body of `proofField`s: documented field by field (`required` too), every refusal the service's (see proofField). */
export function proofBody(properties: Record<string, Record<string, unknown>>, required: string[]): z.ZodObject {
  return z
    .object(Object.fromEntries(Object.entries(properties).map(([k, json]) => [k, proofField(json)])))
    .meta({ required });
}
