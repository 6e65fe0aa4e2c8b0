/**
 * The RA console's search at national scale, once by hand: `node --import tsx bench/search-console.ts` against the
 * schema `npm run bench:search` (or `opencis seed --synthetic 1300000`) filled. Times each console search with its
 * total count (the page's "N people match"), next and previous pages, organisation and status filters and sorts.
 * Settings: BENCH_DATABASE_URL (loopback only), BENCH_SCHEMA, BENCH_ROUNDS.
 */
import { performance } from 'node:perf_hooks';
import { createSealer } from '../src/secrets/sealer.ts';
import { type ServiceContext, serviceContext, systemClock } from '../src/services/context.ts';
import { type SearchQuery, type SearchSort, searchPeople } from '../src/services/people.ts';
import { openPostgres } from '../src/storage/postgres.ts';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = process.env.BENCH_SCHEMA ?? 'opencis_bench';
const rounds = Number(process.env.BENCH_ROUNDS ?? 20);
if (!['127.0.0.1', 'localhost', '::1'].includes(new URL(url).hostname)) throw new Error('loopback databases only');

const db = await openPostgres({ url, schema, poolSize: 2 });
const ctx: ServiceContext = serviceContext({
  db,
  clock: systemClock,
  actor: { kind: 'operator', id: 'cli:bench' },
  requestId: null,
  allowExampleNiPrefix: true,
  sealer: createSealer(Buffer.alloc(32)),
});
const people = Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM people')).rows[0]!.n);
const trust = (await db.query<{ ods_code: string }>("SELECT ods_code FROM organisations WHERE type = 'trust' LIMIT 1"))
  .rows[0]!.ods_code;
const icb = (await db.query<{ ods_code: string }>("SELECT ods_code FROM organisations WHERE type = 'icb' LIMIT 1"))
  .rows[0]!.ods_code;
const practice = (
  await db.query<{ ods_code: string }>("SELECT ods_code FROM organisations WHERE type = 'gp_practice' LIMIT 1")
).rows[0]!.ods_code;
const someone = (
  await db.query<{ family_name: string; given_name: string; user_id: string }>(
    'SELECT family_name, given_name, user_id FROM people ORDER BY user_id LIMIT 1 OFFSET 777',
  )
).rows[0]!;

const cases: { name: string; query: SearchQuery; sort?: SearchSort }[] = [
  { name: 'family prefix, 2 letters ("Sm")', query: { familyName: 'Sm' } },
  { name: 'family name ("Smith")', query: { familyName: 'Smith' } },
  {
    name: 'family + given prefix',
    query: { familyName: someone.family_name, givenName: someone.given_name.slice(0, 3) },
  },
  { name: 'family name, sorted by date of birth', query: { familyName: 'Smith' }, sort: 'dob' },
  { name: 'family name, Z to A', query: { familyName: 'Jones' }, sort: 'name_desc' },
  { name: `family name in a trust (${trust} and its sites)`, query: { familyName: 'Sm', odsCode: trust } },
  { name: `everyone in a trust (${trust})`, query: { odsCode: trust } },
  { name: `everyone in an ICB (${icb}) and below`, query: { odsCode: icb } },
  { name: `everyone in a GP practice (${practice})`, query: { odsCode: practice } },
  { name: `everyone in a trust, by date of birth`, query: { odsCode: trust }, sort: 'dob' },
  { name: 'family prefix, suspended only', query: { familyName: 'Sm', status: 'suspended' } },
  { name: 'family prefix, active only', query: { familyName: 'Sm', status: 'active' } },
  { name: 'user ID', query: { userId: someone.user_id } },
];

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

console.log(
  `${people.toLocaleString('en-GB')} people in ${schema}; ${rounds} rounds per case (first page with count, then next, then previous)`,
);
console.log('| search | matches | first page + count p50 / p95 ms | next page p50 ms | previous page p50 ms |');
console.log('|---|--:|--:|--:|--:|');
for (const c of cases) {
  const first: number[] = [];
  const next: number[] = [];
  const prev: number[] = [];
  let label = '';
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    const p1 = await searchPeople(ctx, c.query, { limit: 20, sort: c.sort, withTotal: true });
    first.push(performance.now() - t);
    label = p1.total ? `${p1.total.more ? '> ' : ''}${p1.total.count.toLocaleString('en-GB')}` : '';
    if (!p1.next) continue;
    t = performance.now();
    const p2 = await searchPeople(ctx, c.query, { limit: 20, sort: c.sort, after: p1.next, withTotal: true });
    next.push(performance.now() - t);
    if (!p2.previous) continue;
    t = performance.now();
    await searchPeople(ctx, c.query, { limit: 20, sort: c.sort, before: p2.previous, withTotal: true });
    prev.push(performance.now() - t);
  }
  const s = (a: number[]) => a.sort((x, y) => x - y);
  const f = (n: number | undefined) => (n === undefined ? '—' : n.toFixed(1));
  console.log(
    `| ${c.name} | ${label} | ${f(pct(s(first), 50))} / ${f(pct(first, 95))} | ${f(next.length ? pct(s(next), 50) : undefined)} | ${f(prev.length ? pct(s(prev), 50) : undefined)} |`,
  );
}
await db.close();
