import type Provider from 'oidc-provider';
import type { StoreContext } from '../services/context.ts';
import type { Repositories } from '../storage/repositories/index.ts';

/** What the logout machinery needs of the store: the repositories, and the unit of work for claiming its rows. */
export type LogoutStore = Pick<StoreContext, 'repos' | 'transaction'>;

/**
 * Ending a person's single sign-on at relying parties (DOMAIN §7): for each session_end_events row, every OpenID
 * Connect session of the person is destroyed, the grants it holds (and with them refresh and access tokens) revoked,
 * and each relying party in it that registered a back-channel logout URI is sent a logout token. A delivery that fails
 * is retried with back-off for a day (oidc_logout_deliveries).
 */
export interface SessionIndex {
  /** The person's live OpenID Connect sessions: id and the clients signed in through each. */
  sessionsOf(
    accountId: string,
  ): Promise<{ id: string; uid?: string; authorizations: Record<string, { sid?: string; grantId?: string }> }[]>;
}

export function postgresSessionIndex(repos: Repositories): SessionIndex {
  return {
    async sessionsOf(accountId) {
      const rows = await repos.oidcArtefacts.liveSessionsOf(accountId);
      return rows.map((r) => {
        const p = (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as {
          uid?: string;
          authorizations?: Record<string, { sid?: string; grantId?: string }>;
        };
        return { id: r.id, uid: p.uid, authorizations: p.authorizations ?? {} };
      });
    },
  };
}

const RETRY_FOR_MS = 24 * 3_600_000;

interface LogoutCapableClient {
  backchannelLogoutUri?: string;
  backchannelLogout(sub: string, sid: string): Promise<void>;
}

async function findClient(provider: Provider, clientId: string): Promise<LogoutCapableClient | undefined> {
  return (await provider.Client.find(clientId)) as unknown as LogoutCapableClient | undefined;
}

async function deliver(
  provider: Provider,
  store: LogoutStore,
  clientId: string,
  accountId: string,
  sid: string,
  reason: string,
): Promise<void> {
  const client = await findClient(provider, clientId);
  if (!client?.backchannelLogoutUri) return;
  try {
    await client.backchannelLogout(accountId, sid);
  } catch (err) {
    await store.repos.oidcLogout.queueDelivery({
      clientId,
      accountId,
      sid,
      reason,
      error: (err as Error).message.slice(0, 300),
    });
  }
}

/** Ends every OpenID Connect session of a person now. Returns how many sessions were ended. */
export async function endOidcSessionsOf(
  provider: Provider,
  store: LogoutStore,
  index: SessionIndex,
  accountId: string,
  reason: string,
): Promise<number> {
  const sessions = await index.sessionsOf(accountId);
  for (const session of sessions) await endOne(provider, store, session, accountId, reason);
  return sessions.length;
}

/** Ends one browser's OpenID Connect session (the person signed out of OpenCIS in that browser). */
export async function endOidcSessionById(
  provider: Provider,
  store: LogoutStore,
  sessionId: string,
  reason: string,
): Promise<boolean> {
  const s = (await provider.Session.find(sessionId)) as unknown as
    | { accountId?: string; authorizations?: Record<string, { sid?: string; grantId?: string }> }
    | undefined;
  if (!s?.accountId) return false;
  await endOne(provider, store, { id: sessionId, authorizations: s.authorizations ?? {} }, s.accountId, reason);
  return true;
}

/** Revokes the session's grants and tokens, tells each relying party (back-channel), destroys the session. */
async function endOne(
  provider: Provider,
  store: LogoutStore,
  session: { id: string; authorizations: Record<string, { sid?: string; grantId?: string }> },
  accountId: string,
  reason: string,
): Promise<void> {
  for (const [clientId, auth] of Object.entries(session.authorizations)) {
    if (auth.grantId) {
      const grant = await provider.Grant.find(auth.grantId);
      await grant?.destroy();
      for (const model of [provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode]) {
        await (model as unknown as { revokeByGrantId(id: string): Promise<void> }).revokeByGrantId(auth.grantId);
      }
    }
    if (auth.sid) await deliver(provider, store, clientId, accountId, auth.sid, reason);
  }
  const s = await provider.Session.find(session.id);
  await s?.destroy();
}

/** Processes pending session-end events, each exactly once across the cluster. */
export async function processSessionEndEvents(
  provider: Provider,
  store: LogoutStore,
  index: SessionIndex,
  batch = 50,
): Promise<number> {
  const events = await store.transaction(async (tx) => {
    const rows = await tx.oidcLogout.lockPendingSessionEnds(batch);
    if (rows.length > 0) await tx.oidcLogout.markSessionEndsProcessed(rows.map((r) => r.eventId));
    return rows;
  });
  const done = new Set<string>();
  for (const e of events) {
    if (done.has(e.userId)) continue;
    done.add(e.userId);
    await endOidcSessionsOf(provider, store, index, e.userId, e.reason);
  }
  return events.length;
}

/** Retries failed back-channel deliveries that are due, with exponential back-off; gives up after a day. */
export async function retryLogoutDeliveries(provider: Provider, store: LogoutStore): Promise<number> {
  const due = await store.transaction(async (tx) => {
    const rows = await tx.oidcLogout.lockDueDeliveries();
    for (const r of rows) {
      await tx.oidcLogout.postponeDelivery(r.deliveryId, Math.min(3_600, 5 * 2 ** Number(r.attempts)));
    }
    return rows;
  });
  for (const d of due) {
    const client = await findClient(provider, d.clientId);
    try {
      if (!client?.backchannelLogoutUri) throw new Error('client has no back-channel logout URI any more');
      await client.backchannelLogout(d.accountId, d.sid);
      await store.repos.oidcLogout.markDelivered(d.deliveryId);
    } catch (err) {
      const giveUp = Date.now() - new Date(d.createdAt).getTime() > RETRY_FOR_MS;
      await store.repos.oidcLogout.recordFailedDelivery(d.deliveryId, (err as Error).message.slice(0, 300), giveUp);
    }
  }
  return due.length;
}

/** Records a delivery the library itself failed to make (RP-initiated logout), so it is retried. */
export async function queueFailedDelivery(
  store: LogoutStore,
  clientId: string,
  accountId: string,
  sid: string,
  error: string,
): Promise<void> {
  await store.repos.oidcLogout.queueRpInitiatedDelivery({
    clientId,
    accountId,
    sid,
    error: error.slice(0, 300),
  });
}
