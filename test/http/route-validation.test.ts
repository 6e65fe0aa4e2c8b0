import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { installErrorHandling } from '../../src/http/errors.ts';
import { installRouteValidation, openApiTransform, proofBody } from '../../src/http/validation.ts';
import { inputSchema } from '../../src/services/validation.ts';

/** Route validation (issue 16 acceptance 4): requests are checked against the route's zod schemas before its handler. */
async function appWith(register: (app: FastifyInstance, calls: unknown[]) => void) {
  const app: FastifyInstance = Fastify({ logger: false });
  installErrorHandling(app);
  installRouteValidation(app);
  const calls: unknown[] = [];
  register(app, calls);
  await app.ready();
  return { app, calls };
}

const dates = inputSchema(z.object({ endDate: z.iso.date(), reason: z.string().min(1) }), (i) =>
  i.path[0] === 'endDate' ? 'role_profile.invalid_dates' : 'request.invalid',
);

test('a body the route schema refuses never reaches the handler: 400 with the schema’s own code and every problem', async () => {
  const { app, calls } = await appWith((a, c) => {
    a.post('/x', { schema: { body: dates } }, async (req) => {
      c.push(req.body);
      return { ok: true };
    });
  });
  const bad = await app.inject({ method: 'POST', url: '/x', payload: { endDate: 'soon', reason: '' } });
  assert.equal(bad.statusCode, 400);
  const err = bad.json().error;
  assert.equal(err.code, 'role_profile.invalid_dates');
  assert.deepEqual(
    err.details.problems.map((p: { field: string }) => p.field),
    ['endDate', 'reason'],
  );
  const missing = await app.inject({ method: 'POST', url: '/x' });
  assert.equal(missing.statusCode, 400, 'an absent body is validated as {}');
  assert.equal(missing.json().error.code, 'role_profile.invalid_dates');
  assert.equal(calls.length, 0, 'the handler never ran');

  const good = await app.inject({
    method: 'POST',
    url: '/x',
    payload: { endDate: '2027-01-01', reason: 'r', extra: 1 },
  });
  assert.equal(good.statusCode, 200);
  assert.deepEqual(calls, [{ endDate: '2027-01-01', reason: 'r', extra: 1 }], 'the handler gets the body as it came');
  await app.close();
});

test('query strings and path parameters are validated too', async () => {
  const { app, calls } = await appWith((a, c) => {
    a.get(
      '/y/:id',
      {
        schema: {
          params: z.object({ id: z.string().regex(/^[0-9]+$/) }),
          querystring: z.object({ limit: z.coerce.number().int().max(10).optional() }),
        },
      },
      async (req) => {
        c.push(req.query);
        return {};
      },
    );
  });
  assert.equal((await app.inject({ url: '/y/abc' })).json().error.code, 'request.invalid');
  assert.equal((await app.inject({ url: '/y/1?limit=11' })).statusCode, 400);
  assert.equal((await app.inject({ url: '/y/1?limit=3' })).statusCode, 200);
  assert.equal(calls.length, 1);
  await app.close();
});

test('a request schema that is not zod is refused when the route is registered', async () => {
  const app: FastifyInstance = Fastify({ logger: false });
  installRouteValidation(app);
  app.post('/z', { schema: { body: { type: 'object', properties: { a: { type: 'string' } } } } }, async () => ({}));
  await assert.rejects(async () => {
    await app.ready();
  }, /body schema must be a zod schema/);
});

test('OpenAPI gets each zod request schema as the JSON Schema of its input; proof bodies document what the service refuses', () => {
  const out = openApiTransform({
    url: '/x',
    schema: {
      body: proofBody({ grant: { type: 'string' } }, ['grant']),
      querystring: z.object({ limit: z.coerce.number().int().optional() }),
    },
  }).schema as Record<string, Record<string, unknown>>;
  assert.deepEqual(out.body!.required, ['grant']);
  assert.deepEqual((out.body!.properties as Record<string, unknown>).grant, { type: 'string' });
  assert.equal(out.querystring!.type, 'object');
});
