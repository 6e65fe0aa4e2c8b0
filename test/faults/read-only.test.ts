import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HttpError } from '../../bench/load/http.ts';
import { errorCatalogue } from '../../src/domain/errors.ts';
import {
  admin,
  assertAuditVerifies,
  type FaultCluster,
  faultCluster,
  log,
  type RedisServer,
  startRedis,
} from './support.ts';

/**
 * The database turns read-only (a replica promoted late, a disk-full guard, an operator's
 * `ALTER DATABASE … SET default_transaction_read_only = on` during maintenance). Writes must be refused cleanly — 503
 * with a catalogued code, the node staying up — and reads must go on working. Then back to read-write, no restart.
 */
let redis: RedisServer;
let fc: FaultCluster;

before(async () => {
  redis = await startRedis({ persistent: false });
  fc = await faultCluster({ name: 'readonly', nodes: 2, basePort: 3340, redisUrl: redis.url });
});
after(async () => {
  await fc?.close();
  await redis?.close();
});

/** Sets the database read-only (or back) and cuts the nodes' connections, so their pools reconnect with it. */
async function readOnly(on: boolean): Promise<void> {
  await admin(`ALTER DATABASE ${fc.db.name} SET default_transaction_read_only = ${on ? 'on' : 'off'}`);
  await admin('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
    fc.db.name,
  ]);
}

async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; err: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    return { ok: false, err };
  }
}

/** Retries an operation over a short while: the first attempts after the connections are cut may meet a dead one. */
async function eventually<T>(
  fn: () => Promise<T>,
  tries = 10,
): Promise<{ ok: true; value: T } | { ok: false; err: unknown }> {
  let last: { ok: true; value: T } | { ok: false; err: unknown } = { ok: false, err: new Error('not tried') };
  for (let i = 0; i < tries; i++) {
    last = await outcome(fn());
    if (last.ok) return last;
    if (last.err instanceof HttpError && last.err.status !== 503) return last;
    if (last.err instanceof HttpError && last.err.code !== 'service.unavailable') return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  return last;
}

function describe(o: { ok: true } | { ok: false; err: unknown }): string {
  if (o.ok) return 'ok';
  return o.err instanceof HttpError ? `${o.err.status} ${o.err.code ?? o.err.body.slice(0, 120)}` : String(o.err);
}

test('read-only database: writes refused with a catalogued 503, reads still work, then back to read-write', async () => {
  const { flows, cluster, http } = fc;
  const tokens = (await flows.signIn('card')).tokens;
  await flows.raSearch();
  const before = await flows.raRegister(1);
  assert.match(before, /^[0-9]{12}$/);

  await readOnly(true);
  try {
    // Readiness stays green (the database answers reads): HAProxy keeps the nodes, so reads are served.
    const problems: string[] = [];
    const ready = await eventually(async () => {
      const r = await http.request(`${cluster.lbUrl}/health/ready`, 'GET');
      if (r.status !== 200) throw new HttpError('ready', r.status, r.body);
      return r;
    });
    if (!ready.ok) problems.push(`readiness: ${describe(ready)}`);

    // Reads
    const reads: [string, () => Promise<unknown>][] = [
      [
        'RBAC catalogue',
        async () => {
          const r = await http.request(`${cluster.lbUrl}/api/v1/rbac/catalogue`, 'GET');
          if (r.status !== 200) throw new HttpError('catalogue', r.status, r.body);
        },
      ],
      [
        'CA certificate',
        async () => {
          const r = await http.request(`${cluster.lbUrl}/pki/ca.crt`, 'GET');
          if (r.status !== 200) throw new HttpError('ca.crt', r.status, r.body);
        },
      ],
      ['userinfo', () => flows.userinfo(tokens.accessToken)],
      ['RA person search (existing session)', () => flows.raSearch()],
    ];
    for (const [name, fn] of reads) {
      const o = await eventually(fn);
      log(`read-only: ${name}: ${describe(o)}`);
      if (!o.ok) problems.push(`${name} (a read) failed: ${describe(o)}`);
    }

    // Writes: refused with 503 and a code from the catalogue; the node stays up.
    const writes: [string, () => Promise<unknown>][] = [
      ['RA registration', () => flows.raRegister(2)],
      ['smartcard sign-in', () => flows.signIn('card')],
    ];
    for (const [name, fn] of writes) {
      const o = await eventually(fn, 4);
      log(`read-only: ${name}: ${describe(o)}`);
      if (o.ok) {
        problems.push(`${name} (a write) succeeded on a read-only database`);
        continue;
      }
      const err = o.err;
      if (!(err instanceof HttpError)) {
        problems.push(`${name}: ${String(err)}`);
        continue;
      }
      if (err.status !== 503) problems.push(`${name}: HTTP ${err.status} ${err.code ?? ''} (wanted 503)`);
      if (!err.code || !Object.hasOwn(errorCatalogue, err.code)) {
        problems.push(`${name}: error code ${err.code} is not in the catalogue`);
      }
    }
    for (const n of cluster.nodes) {
      assert.equal(n.proc?.exitCode, null, `${n.name} is still running`);
    }
    assert.deepEqual(problems, []);
  } finally {
    await readOnly(false);
  }

  // Back to read-write without restarting anything.
  const again = await eventually(() => flows.raRegister(3));
  assert.ok(again.ok, `a write after the database is writable again: ${describe(again)}`);
  await assertAuditVerifies(fc);
});
