import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AppError } from '../../src/domain/errors.ts';
import { actorLabel } from '../../src/domain/policy.ts';
import { recordUnaudited } from '../../src/services/refusals.ts';
import { backend } from '../support/db.ts';
import { type RaWorld, startRaWorld } from '../support/ra-world.ts';

/*
 * The one refusal path (issue 16: deny → audit → error), door by door. Each row is a refusal DOMAIN §5 demands (an RA
 * role acting outside its organisation, a person with no RA role in the console, an API client acting for another
 * trust), asked through one door; each must be answered with its catalogued status and code AND leave exactly one
 * record of the refusal in the audit trail, against the caller — not none (an unaudited door) and not two (a refusal
 * recorded by the service and again by the door).
 */
let w: RaWorld;
before(async () => {
  w = await startRaWorld();
});
after(() => w.close());

interface Rec {
  action: string;
  actor: string;
  reason: string | null;
  after: { what?: string; code?: string; action?: string } | null;
}

async function lastSeq(): Promise<number> {
  const { rows } = await w.server.t.db.query<{ seq: string | null }>('SELECT max(seq)::text AS seq FROM audit_events');
  return Number(rows[0]?.seq ?? 0);
}

async function refusalsSince(seq: number): Promise<Rec[]> {
  const { rows } = await w.server.t.db.query<Rec>(
    `SELECT action, actor, reason, after FROM audit_events
      WHERE seq > $1 AND (action LIKE '%refused' OR action = 'signin.failed') ORDER BY seq`,
    [seq],
  );
  return rows;
}

test(`[${backend}] REST API: an API client of RR8 reading an RX1 person is refused 403 and the refusal is recorded once, as the client's`, async () => {
  const theirs = await w.personIn('nurseX');
  const client = await w.apiToken();
  const mark = await lastSeq();
  const res = await w.call(client, 'GET', `/api/v1/people/${theirs.userId}/authenticators`);
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'auth.forbidden');
  const recs = await refusalsSince(mark);
  assert.equal(recs.length, 1, JSON.stringify(recs));
  assert.equal(recs[0]!.action, 'access.refused');
  assert.equal(recs[0]!.actor, `client:${w.apiClient.clientId}`);
  assert.equal(recs[0]!.after?.code, 'auth.forbidden');
  assert.equal(recs[0]!.after?.what, 'GET /api/v1/people/:userId/authenticators');
});

test(`[${backend}] REST API: an RA action refused inside its service (RA Agent of RX1 suspending an RR8 person) is recorded once, by the action`, async () => {
  const nurse = await w.personIn('nurse');
  const agentX = await w.personIn('agentX');
  const caller = await w.signIn(agentX.userId);
  const mark = await lastSeq();
  const res = await w.call(caller, 'POST', `/api/v1/people/${nurse.userId}/suspend`, {
    reason: 'not theirs to suspend',
  });
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'auth.forbidden');
  const recs = await refusalsSince(mark);
  assert.equal(recs.length, 1, `one record, not one per layer: ${JSON.stringify(recs)}`);
  assert.equal(recs[0]!.actor, `person:${agentX.userId}`);
  const { rows } = await w.server.t.db.query<{ status: string }>('SELECT status FROM people WHERE user_id = $1', [
    nurse.userId,
  ]);
  assert.equal(rows[0]!.status, 'active', 'nothing changed');
});

test(`[${backend}] console: a person with no RA role opening the RA console gets the 403 page and the refusal is recorded once`, async () => {
  const caller = await w.signIn(w.people.nonRa);
  const mark = await lastSeq();
  const res = await fetch(`${w.url}/ra`, { headers: { ...caller.headers, accept: 'text/html' }, redirect: 'manual' });
  assert.equal(res.status, 403);
  await res.text();
  const recs = await refusalsSince(mark);
  assert.equal(recs.length, 1, JSON.stringify(recs));
  assert.equal(recs[0]!.action, 'access.refused');
  assert.equal(recs[0]!.actor, `person:${w.people.nonRa}`);
  assert.match(recs[0]!.after?.what ?? '', /^GET \/ra/);
});

test(`[${backend}] console JSON: a person with no RA role calling the console's scripts is refused 403, recorded once, nothing issued`, async () => {
  const caller = await w.signIn(w.people.nonRa);
  const nurse = await w.personIn('nurse');
  const cards = async () =>
    (
      await w.server.t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM cards WHERE user_id = $1', [
        nurse.userId,
      ])
    ).rows[0]!.n;
  const mark = await lastSeq();
  const res = await w.call(caller, 'POST', `/ra/people/${nurse.userId}/cards`, { kind: 'physical' });
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'auth.forbidden');
  const recs = await refusalsSince(mark);
  assert.equal(recs.length, 1, JSON.stringify(recs));
  assert.equal(recs[0]!.actor, `person:${w.people.nonRa}`);
  assert.equal(recs[0]!.after?.what, 'POST /ra/people/:userId/cards');
  assert.equal(await cards(), 0, 'no card was started');
});

test(`[${backend}] a sign-in refusal (a card proof that is not one) is recorded once, by the service, and the door adds nothing`, async () => {
  const caller = await w.signIn(w.people.nonRa);
  const mark = await lastSeq();
  const res = await w.call(caller, 'POST', '/signin/card/verify', {
    challengeId: '00000000-0000-4000-8000-000000000000',
    certificate: 'AAAA',
    signature: 'AAAA',
    algorithm: 'ES256',
  });
  assert.equal(res.status, 401, JSON.stringify(res.body));
  const recs = await refusalsSince(mark);
  assert.equal(recs.length, 1, JSON.stringify(recs));
  assert.equal(recs[0]!.action, 'signin.failed');
});

test(`[${backend}] CLI: the CLI door records a refusal no service recorded, once, as the operator`, async () => {
  // The operator holds every power (DOMAIN §5), so no CLI command is refused by the policy today; what the CLI door
  // does with one (withOperatorContext → recordUnaudited) is shown on the operator's own context.
  const ctx = w.op();
  const mark = await lastSeq();
  const err = new AppError('auth.forbidden', { statement: 'person:read' });
  await recordUnaudited(ctx, err, 'opencis person show');
  await recordUnaudited(ctx, err, 'opencis person show');
  const recs = await refusalsSince(mark);
  assert.equal(recs.length, 1, `recorded once however often it is passed on: ${JSON.stringify(recs)}`);
  assert.equal(recs[0]!.action, 'access.refused');
  assert.equal(recs[0]!.actor, actorLabel(ctx.actor));
  assert.equal(recs[0]!.after?.what, 'opencis person show');
});

test(`[${backend}] an answer that is not a refusal (400, 404) leaves no refusal record`, async () => {
  const client = await w.apiToken();
  const mark = await lastSeq();
  assert.equal((await w.call(client, 'GET', '/api/v1/people/123/identity-checks')).status, 400);
  assert.equal((await w.call(client, 'GET', '/api/v1/people/999999999999/identity-checks')).status === 403, false);
  assert.deepEqual(await refusalsSince(mark), []);
});
