import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { AppError } from '../../src/domain/errors.ts';
import { retryAfterSeconds, storeFailure } from '../../src/http/errors.ts';

/**
 * Which failures are a store being down or read-only (503 with Retry-After, the node recovering by itself) and which
 * are not (a 4xx of their own, or a bug: 500). The drivers' own errors where they can be had without a server.
 */
const sqlError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('a PostgreSQL that refuses connections is a store failure (the driver’s own error)', async () => {
  const client = new pg.Client({
    connectionString: 'postgres://postgres@127.0.0.1:1/none',
    connectionTimeoutMillis: 2_000,
  });
  const err = await client.connect().then(
    () => null,
    (e: unknown) => e,
  );
  await client.end().catch(() => {});
  assert.ok(err, 'nothing listens on port 1');
  assert.equal(storeFailure(err), 'unavailable');
});

test('a Redis that refuses connections is a store failure once ioredis gives up (the driver’s own error)', async () => {
  const redis = new Redis({ host: '127.0.0.1', port: 1, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  redis.on('error', () => {});
  try {
    const err = await redis.get('k').then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err);
    assert.equal(storeFailure(err), 'unavailable', String(err));
  } finally {
    redis.disconnect();
  }
});

test('PostgreSQL shutting down, connections cut or exhausted: unavailable; read-only or disk full: read_only', () => {
  for (const code of ['57P01', '57P02', '57P03', '08006', '08001', '53300', 'ECONNRESET', 'ETIMEDOUT']) {
    assert.equal(storeFailure(sqlError(code)), 'unavailable', code);
  }
  assert.equal(storeFailure(new Error('Connection terminated unexpectedly')), 'unavailable');
  assert.equal(storeFailure(new Error('timeout exceeded when trying to connect')), 'unavailable');
  assert.equal(
    storeFailure(new Error('Client has encountered a connection error and is not queryable')),
    'unavailable',
  );
  assert.equal(storeFailure(new AggregateError([sqlError('ECONNREFUSED'), sqlError('ECONNREFUSED')])), 'unavailable');
  assert.equal(storeFailure(new Error('LOADING Redis is loading the dataset in memory')), 'unavailable');
  assert.equal(storeFailure(sqlError('25006', 'cannot execute INSERT in a read-only transaction')), 'read_only');
  assert.equal(storeFailure(sqlError('53100', 'could not extend file: No space left on device')), 'read_only');
  assert.equal(retryAfterSeconds('unavailable'), 5);
  assert.equal(retryAfterSeconds('read_only'), 60);
});

test('everything else is not a store failure: constraint violations, application errors, bugs', () => {
  for (const err of [
    sqlError('23505', 'duplicate key value violates unique constraint'),
    sqlError('40001'),
    sqlError('22P02', 'invalid input syntax'),
    new AppError('person.not_found'),
    new TypeError("Cannot read properties of undefined (reading 'x')"),
    new Error('Connection is fine'),
    'a string',
    null,
    undefined,
  ]) {
    assert.equal(storeFailure(err), null, String(err));
  }
});
