/**
 * Audited writes under concurrency: `node --import tsx bench/audit.ts`.
 *
 * Every audited write appends to the audit trail inside its own transaction and holds its lane's head locked until
 * commit. Measures, with 1 and BENCH_CONCURRENCY callers, a small transaction (one row inserted) with its audit event
 * — each about a different person, as sign-ins are, so spread over the lanes — next to the same transaction with every
 * event about one person (one lane: how every audited write behaved when the trail was one chain) and the same
 * transaction without an audit event (the floor). Verifies the whole trail at the end.
 *
 * Settings (environment): BENCH_DATABASE_URL (PostgreSQL on a loopback address; default: in-memory PGlite, which runs
 * one transaction at a time anyway), BENCH_CONCURRENCY (default 16), BENCH_SECONDS (each measurement, default 5).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createSealer } from '../src/secrets/sealer.ts';
import { appendAudit } from '../src/services/audit.ts';
import { verifyAuditChain } from '../src/services/audit-verify.ts';
import { systemClock } from '../src/services/context.ts';
import type { Database, Queryable } from '../src/storage/database.ts';
import { migrate } from '../src/storage/migrate.ts';
import { openPglite } from '../src/storage/pglite.ts';
import { dropPostgresSchema, openPostgres } from '../src/storage/postgres.ts';
import { repositoriesOn, unitOfWork } from '../src/storage/repositories/index.ts';

const url = process.env.BENCH_DATABASE_URL || null;
const concurrency = Number(process.env.BENCH_CONCURRENCY || 16);
const seconds = Number(process.env.BENCH_SECONDS || 5);
if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error('BENCH_CONCURRENCY must be a whole number ≥ 1');
if (!(seconds > 0 && seconds <= 60)) throw new Error('BENCH_SECONDS must be between 0 and 60');
if (url && !['127.0.0.1', 'localhost', '::1', '[::1]'].includes(new URL(url).hostname)) {
  throw new Error('BENCH_DATABASE_URL must point at a loopback address');
}

const schema = url ? `bench_audit_${process.pid}` : null;
const db: Database = url
  ? await openPostgres({ url, schema: schema!, poolSize: Math.max(10, concurrency + 2) })
  : await openPglite();
await migrate(db);
await db.exec('CREATE TABLE bench_writes (id bigserial PRIMARY KEY, target text NOT NULL, at timestamptz NOT NULL)');

const sealer = createSealer(randomBytes(32));
const ctx = { clock: systemClock, actor: { kind: 'system' as const, id: 'system:bench' }, requestId: null, sealer };

async function write(tx: Queryable, target: string): Promise<void> {
  await tx.query('INSERT INTO bench_writes (target, at) VALUES ($1, now())', [target]);
}

type Op = (i: number) => Promise<void>;
const ops: Record<string, Op> = {
  'write + audit event, a different person each time': (i) =>
    unitOfWork(db)(async (tx) => {
      const target = `${100_000_000_000 + i}`;
      await write(tx.handle, target);
      await appendAudit(tx, ctx, {
        action: 'bench.write',
        targetType: 'person',
        targetId: target,
        before: null,
        after: { i },
      });
    }),
  'write + audit event, always the same person (one chain)': (i) =>
    unitOfWork(db)(async (tx) => {
      await write(tx.handle, 'same');
      await appendAudit(tx, ctx, {
        action: 'bench.write',
        targetType: 'person',
        targetId: '999999999999',
        before: null,
        after: { i },
      });
    }),
  'write without audit event (floor)': () => db.transaction((tx) => write(tx, 'none')),
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

async function measure(name: string, op: Op, callers: number): Promise<void> {
  let next = 0;
  for (let i = 0; i < 20; i++) await op(next++ + 1_000_000_000);
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await op(next++);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: callers }, loop));
  const wall = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(58)} ${String(callers).padStart(7)} ${String(latencies.length).padStart(7)} ` +
      `${Math.round(latencies.length / wall)
        .toString()
        .padStart(
          7,
        )} ${percentile(latencies, 0.5).toFixed(2).padStart(8)} ${percentile(latencies, 0.95).toFixed(2).padStart(8)}`,
  );
}

try {
  console.log(`Audited writes on ${db.kind}${url ? ` (${new URL(url).host})` : ''}, ${seconds} s each`);
  console.log(`${'measurement'.padEnd(58)} callers     ops   ops/s   p50 ms   p95 ms`);
  for (const callers of [1, concurrency]) {
    for (const [name, op] of Object.entries(ops)) await measure(name, op, callers);
  }
  const res = await verifyAuditChain(repositoriesOn(db), sealer.auditKeys);
  console.log(res.ok ? `Audit trail verifies: ${res.events} events.` : `Audit trail BROKEN: ${JSON.stringify(res)}`);
  if (!res.ok) process.exitCode = 1;
} finally {
  await db.close();
  if (url && schema) await dropPostgresSchema(url, schema);
}
