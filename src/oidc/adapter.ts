import { type Adapter, errors } from 'oidc-provider';
import { ukDate } from '../domain/dates.ts';
import type { Database } from '../storage/database.ts';
import { repositoriesOn } from '../storage/repositories/index.ts';
import type { ArtefactValues } from '../storage/repositories/oidc-artefacts.ts';
import { consumableLabel, type Payload, payloadOf, READ_TOGETHER } from './adapter-payload.ts';
import {
  type ClaimsUse,
  claimsUseOf,
  currentRequest,
  deferConsume,
  dropRows,
  leaveClaims,
  leaveRow,
  rowKey,
  type TogetherRow,
  takeDeferredConsume,
  takeRow,
} from './read-together.ts';
import { writtenArtefactsOf } from './written-artefacts.ts';

/**
 * Storage for oidc-provider's artefacts. PostgreSQL by default (durable: a node restart loses no session); Redis when
 * REDIS_URL is set, so several nodes share sessions with low latency. Both implement the library's adapter contract:
 * upsert/find/findByUid/findByUserCode/consume/destroy/revokeByGrantId. 'Client' is not stored here (see
 * services/clients.ts). The Redis one is in redis-adapter.ts; the statements are the repository's
 * (storage/repositories/oidc-artefacts.ts), one per adapter call as before.
 */

/**
 * @param ukDay the UK date now (YYYY-MM-DD), as the claims are built for it: the claims read together with a token are
 * used only for the same day.
 */
export function postgresAdapterFactory(
  db: Database,
  ukDay: () => string = () => ukDate(new Date()),
): (name: string) => Adapter {
  const memory = db.kind === 'pglite' ? writtenArtefactsOf(db) : null;
  const artefacts = repositoriesOn(db).oidcArtefacts;
  return (model: string) => {
    const adapter: Adapter = {
      async upsert(id: string, payload: Payload, expiresIn: number) {
        const ctx = currentRequest();
        dropRows(ctx);
        const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
        const json = JSON.stringify(payload);
        memory?.forget(model, id);
        const values: ArtefactValues = {
          model,
          id,
          json,
          grantId: payload.grantId ?? null,
          userCode: payload.userCode ?? null,
          uid: payload.uid ?? null,
          accountId: payload.accountId ?? null,
          expiresAt,
        };
        const deferred = takeDeferredConsume(ctx);
        let rows: { consumedAt: Date | null }[];
        if (deferred) {
          // The code (or refresh token) this request used, recorded in the same statement as the token it gives: written
          // only if this statement is the one that marked it used, so of two requests racing with one code exactly one
          // writes a token; the other is refused as a replay, as consume() below would refuse it.
          const used = await artefacts.upsertArtefactUsing(values, deferred);
          if (used.length !== 1) {
            memory?.forget(deferred.model, deferred.id);
            await refuseReplay(artefacts, deferred.model, deferred.id, (grantId) => adapter.revokeByGrantId(grantId));
          }
          memory?.consumed(deferred.model, deferred.id, Math.floor(Date.now() / 1000));
          rows = used;
        } else {
          rows = await artefacts.upsertArtefact(values);
        }
        memory?.remember(model, id, {
          json,
          grantId: payload.grantId ?? null,
          uid: payload.uid ?? null,
          expiresAt: expiresAt?.getTime() ?? null,
          consumed: consumedSeconds(rows[0]?.consumedAt ?? null),
        });
      },
      async find(id: string) {
        if (memory) return memory.find(model, id) ?? findWhere(artefacts, model, 'id', id);
        const ctx = currentRequest();
        const known = takeRow(ctx, rowKey.id(model, id));
        if (known) return payloadOf(known);
        if (ctx && READ_TOGETHER.has(model)) return readTogether(artefacts, ctx, model, id, ukDay());
        return findWhere(artefacts, model, 'id', id);
      },
      async findByUid(uid: string) {
        if (memory) return memory.findByUid(model, uid) ?? findWhere(artefacts, model, 'uid', uid);
        const known = takeRow(currentRequest(), rowKey.uid(model, uid));
        if (known) return payloadOf(known);
        return findWhere(artefacts, model, 'uid', uid);
      },
      async findByUserCode(userCode: string) {
        return findWhere(artefacts, model, 'user_code', userCode);
      },
      // Single use, atomically: of two requests racing with one code (or refresh token), only the one whose UPDATE marks
      // it consumed goes on; the other is refused as a replay and, as RFC 6749 §4.1.2 asks, the grant is revoked — the
      // library's own check (`consumed` on the artefact it read) cannot see a use that happened after that read.
      async consume(id: string) {
        const ctx = currentRequest();
        dropRows(ctx);
        // In a request of the provider, the use is recorded with the token the request writes next (the library writes
        // the access token straight after), in one statement and one commit; what the request does not follow with a
        // write is recorded when it ends (provider.ts). Outside a request it is recorded now.
        if (ctx) {
          await deferConsume(ctx, { model, id, now: () => consumeNow(id) });
          return;
        }
        await consumeNow(id);
      },
      // Forgotten before and after the delete: a write of the same artefact that finished in between is not kept.
      async destroy(id: string) {
        await takeDeferredConsume(currentRequest())?.now();
        dropRows(currentRequest());
        memory?.forget(model, id);
        try {
          await artefacts.deleteArtefact(model, id);
        } finally {
          memory?.forget(model, id);
        }
      },
      async revokeByGrantId(grantId: string) {
        await takeDeferredConsume(currentRequest())?.now();
        dropRows(currentRequest());
        memory?.forgetGrant(grantId);
        try {
          await artefacts.deleteGrantArtefacts(grantId);
        } finally {
          memory?.forgetGrant(grantId);
        }
      },
    };

    async function consumeNow(id: string): Promise<void> {
      let won = false;
      try {
        const consumedAt = await artefacts.consumeArtefact(model, id);
        won = consumedAt !== undefined;
        if (consumedAt) memory?.consumed(model, id, consumedSeconds(consumedAt) ?? Math.floor(Date.now() / 1000));
        else memory?.forget(model, id);
      } catch (err) {
        memory?.forget(model, id);
        throw err;
      }
      if (won) return;
      await refuseReplay(artefacts, model, id, (grantId) => adapter.revokeByGrantId(grantId));
    }

    return adapter;
  };
}

/**
 * A code (or refresh token) used already: as RFC 6749 §4.1.2 asks, its grant is revoked (every token it gave), and the
 * request is refused as the library refuses a replay.
 */
async function refuseReplay(
  artefacts: Artefacts,
  model: string,
  id: string,
  revoke: (grantId: string) => Promise<unknown>,
): Promise<never> {
  const grantId = await artefacts.grantOfArtefact(model, id);
  if (grantId) await revoke(grantId);
  throw new errors.InvalidGrant(`${consumableLabel(model)} already consumed`);
}

function consumedSeconds(at: Date | string | null): number | null {
  return at ? Math.floor(new Date(at).getTime() / 1000) : null;
}

type Artefacts = ReturnType<typeof repositoriesOn>['oidcArtefacts'];

async function findWhere(
  artefacts: Artefacts,
  model: string,
  by: 'id' | 'uid' | 'user_code',
  value: string,
): Promise<Payload | undefined> {
  const row = await artefacts.findArtefact(model, by, value);
  if (!row) return undefined;
  if (row.expiresAt && new Date(row.expiresAt).getTime() <= Date.now()) return undefined;
  const payload = typeof row.payload === 'string' ? (JSON.parse(row.payload) as Payload) : (row.payload as Payload);
  return row.consumedAt ? { ...payload, consumed: Math.floor(new Date(row.consumedAt).getTime() / 1000) } : payload;
}

interface Together {
  artefact: TogetherRow;
  grant: TogetherRow | null;
  session: TogetherRow | null;
  claims: unknown;
  account_id: string | null;
  grant_id: string | null;
  session_uid: string | null;
}

/**
 * Finds a token or code with, in the same statement (oidc_read_together, migration 0015), its grant, the SSO session
 * it is bound to and — at the token and userinfo endpoints — its account's claims, and leaves those on the request
 * for the library's next reads (read-together.ts).
 */
async function readTogether(
  artefacts: Artefacts,
  ctx: object,
  model: string,
  id: string,
  day: string,
): Promise<Payload | undefined> {
  const use: ClaimsUse | null = claimsUseOf(ctx);
  const raw = (await artefacts.readArtefactTogether(model, id, day, use)) as Together | string | null;
  const found = typeof raw === 'string' ? (JSON.parse(raw) as Together) : raw;
  if (!found) return undefined;
  const artefact = payloadOf(found.artefact);
  if (!artefact) return undefined;
  if (found.grant && found.grant_id) leaveRow(ctx, rowKey.id('Grant', found.grant_id), found.grant);
  if (found.session && found.session_uid) leaveRow(ctx, rowKey.uid('Session', found.session_uid), found.session);
  if (use && found.account_id) leaveClaims(ctx, found.account_id, day, found.grant_id, use, found.claims);
  return artefact;
}
