/**
 * A person's status (DOMAIN §2, §5.4): suspend and restore, mark a leaver (nationally, or from the actor's
 * organisations only) and take a re-joiner back under the same user ID.
 */

import { z } from 'zod';
import type { RoleProfile } from '../../domain/access/role-profile.ts';
import { laterDate, ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { canChangeStatus, type Person, type PersonStatus } from '../../domain/identity/person.ts';
import { authorize, isAllowed } from '../../domain/policy.ts';
import type { Repositories } from '../../storage/repositories/index.ts';
import { appendAudit } from '../audit.ts';
import { cancelCardIn } from '../cards.ts';
import { revokeCertificate } from '../certificates.ts';
import type { ServiceContext } from '../context.ts';
import { endSessionsOf, recordSessionEnd } from '../sessions.ts';
import { type PersonTargetFacts, personFacts, personTarget } from '../targets.ts';
import { parseInput } from '../validation.ts';
import { reasonSchema } from './changes.ts';
import { lockPerson, raAction, requireUserId } from './common.ts';
import { closeRequest, lockPendingRequestsOf } from './requests.ts';

async function changeStatus(
  ctx: ServiceContext,
  userId: string,
  input: unknown,
  change: { action: string; from: readonly PersonStatus[]; to: PersonStatus; endSessions: boolean },
): Promise<Person> {
  return raAction(ctx, change.action, { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    const { reason } = parseInput(reasonSchema, input);
    return ctx.transaction(async (tx) => {
      const before = await lockPerson(tx, userId);
      // A person's status is national: it needs the power in every organisation where they hold access, or an RA
      // Manager's national decision, and the power to appoint what they hold (policy).
      authorize(ctx.actor, 'person:change_status', await personTarget(tx, ctx.clock, userId));
      if (!change.from.includes(before.status) || !canChangeStatus(before.status, change.to)) {
        throw new AppError('person.invalid_status_change', { from: before.status, to: change.to });
      }
      const now = ctx.clock.now();
      const after = await tx.people.updatePersonStatus(userId, change.to, now);
      const ended = change.endSessions ? await endSessionsOf(tx, userId, now, change.action) : 0;
      await appendAudit(tx, ctx, {
        action: 'person.status_changed',
        targetType: 'person',
        targetId: userId,
        before: { status: before.status },
        after: { status: after.status, sessionsEnded: ended },
        reason,
      });
      return after;
    });
  });
}

/** Suspends a person: no access until restored (their profiles stop being effective; their sessions end now). */
export function suspend(ctx: ServiceContext, userId: string, input: unknown): Promise<Person> {
  return changeStatus(ctx, userId, input, {
    action: 'person.suspend',
    from: ['active'],
    to: 'suspended',
    endSessions: true,
  });
}

export function restore(ctx: ServiceContext, userId: string, input: unknown): Promise<Person> {
  return changeStatus(ctx, userId, input, {
    action: 'person.restore',
    from: ['suspended'],
    to: 'active',
    endSessions: false,
  });
}

/** A leaver who comes back keeps their user ID (DOMAIN §2); their access is requested again. */
export function rejoin(ctx: ServiceContext, userId: string, input: unknown): Promise<Person> {
  return changeStatus(ctx, userId, input, {
    action: 'person.rejoin',
    from: ['left'],
    to: 'active',
    endSessions: false,
  });
}

export interface LeaverOutcome {
  person: Person;
  /**
   * 'national': the person has left everywhere (every profile ended, cards cancelled, status 'left'). 'organisations':
   * they left the actor's organisations only and keep their access, cards and status elsewhere (`keptIn`).
   */
  scope: 'national' | 'organisations';
  keptIn: string[];
  roleProfilesEnded: string[];
  cardsCancelled: string[];
  certificatesRevoked: number;
  authenticatorsRemoved: string[];
  requestsWithdrawn: string[];
  sessionsEnded: number;
}

export const leaverSchema = reasonSchema.extend({
  /**
   * true: a national leaver (the person leaves every organisation), which needs the power in every organisation
   * where they hold access, or an RA Manager's national decision; false: the actor's organisations only. Absent:
   * national when the actor may decide it, else their organisations only.
   */
  national: z.boolean().optional(),
});

/**
 * Marks a leaver (DOMAIN §2, §5.4). In CIS an RA ends access in their own organisations; the person keeps the others (a
 * locum leaving one trust still works at another). So a leaver is national — every role profile ended, every card
 * cancelled (certificates revoked), every other authenticator removed, outstanding enrolment links and pending
 * requests closed, every session ended, the status 'left' — only when the actor holds the power for every
 * organisation where the person holds access, or is an RA Manager there deciding it nationally; otherwise it ends
 * the person's role profiles in the actor's organisations and nothing else. One transaction either way.
 */
export async function markLeaver(ctx: ServiceContext, userId: string, input: unknown): Promise<LeaverOutcome> {
  return raAction(ctx, 'person.leaver', { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    const { reason, national } = parseInput(leaverSchema, input);
    return ctx.transaction(async (tx) => {
      const before = await lockPerson(tx, userId);
      const facts = await personFacts(tx, ctx.clock, userId);
      const nationally = isAllowed(ctx.actor, 'person:leaver', { kind: 'person', person: facts });
      if (national === true || (national === undefined && nationally)) {
        authorize(ctx.actor, 'person:leaver', { kind: 'person', person: facts });
        return nationalLeaver(tx, ctx, before, reason);
      }
      return organisationLeaver(tx, ctx, before, facts, reason);
    });
  });
}

async function endProfiles(tx: Repositories, ctx: ServiceContext, profiles: readonly RoleProfile[], reason: string) {
  const now = ctx.clock.now();
  const today = ukDate(now);
  const ended: RoleProfile[] = [];
  for (const p of profiles) {
    const endDate = laterDate(p.endDate != null && p.endDate < today ? p.endDate : today, p.startDate);
    await tx.roleProfiles.markRoleProfileEnded(p.personRoleId, endDate, now);
    ended.push({ ...p, status: 'ended', endDate });
  }
  return {
    ended,
    /** Audit appends come last (they lock a lane head): the caller calls this after every row lock is taken. */
    audit: async () => {
      for (const p of ended) {
        await appendAudit(tx, ctx, {
          action: 'role_profile.ended',
          targetType: 'person',
          targetId: p.userId,
          before: { ...p, status: 'active', endDate: profiles.find((x) => x.personRoleId === p.personRoleId)?.endDate },
          after: p,
          reason,
        });
      }
    },
  };
}

/**
 * The person leaves the actor's organisations: every role profile there ends (each needs the power to end it, what it
 * appoints included — one the actor may not end refuses the whole leaver), and pending requests for positions there
 * are withdrawn. Cards, other authenticators and the status stay: the person still works elsewhere.
 */
async function organisationLeaver(
  tx: Repositories,
  ctx: ServiceContext,
  person: Person,
  facts: PersonTargetFacts,
  reason: string,
): Promise<LeaverOutcome> {
  const now = ctx.clock.now();
  const profiles = await tx.roleProfiles.liveProfilesForUpdate(person.userId, ukDate(now));
  const mine: RoleProfile[] = [];
  for (const p of profiles) {
    if (!isAllowed(ctx.actor, 'person:leaver', { kind: 'organisation', odsCode: p.odsCode })) continue;
    const position = await tx.positions.findPosition(p.positionId);
    if (!position) throw new AppError('role_profile.not_found');
    authorize(ctx.actor, 'person:leaver', {
      kind: 'role_profile',
      person: facts,
      profile: await tx.accessFacts.positionFacts(position),
    });
    mine.push(p);
  }
  // Nothing of theirs here: refused as the national leaver it would otherwise have to be.
  if (mine.length === 0) authorize(ctx.actor, 'person:leaver', { kind: 'person', person: facts });
  const orgs = new Set(mine.map((p) => p.odsCode));
  const requests = (await lockPendingRequestsOf(tx, person.userId)).filter((r) => orgs.has(r.odsCode));
  const { ended, audit } = await endProfiles(tx, ctx, mine, 'leaver');
  // CIS2: removing a role ends the sessions (and refresh tokens) that may carry it.
  await recordSessionEnd(tx, person.userId, 'role_removed', now);
  for (const r of requests) await closeRequest(tx, ctx, r, 'withdrawn', 'the person has left this organisation');
  await audit();
  const keptIn = [...new Set(profiles.filter((p) => !mine.includes(p)).map((p) => p.odsCode))].sort();
  const outcome: Omit<LeaverOutcome, 'person'> = {
    scope: 'organisations',
    keptIn,
    roleProfilesEnded: ended.map((p) => p.personRoleId),
    cardsCancelled: [],
    certificatesRevoked: 0,
    authenticatorsRemoved: [],
    requestsWithdrawn: requests.map((r) => r.requestId),
    sessionsEnded: 0,
  };
  await appendAudit(tx, ctx, {
    action: 'person.left_organisations',
    targetType: 'person',
    targetId: person.userId,
    before: { status: person.status },
    after: { status: person.status, organisations: [...orgs].sort(), ...outcome },
    reason,
  });
  return { person, ...outcome };
}

/**
 * The national leaver. Row locks are all taken before the first audit append (which locks an audit lane head), so
 * this never waits on a lane head while holding it against another writer.
 */
async function nationalLeaver(
  tx: Repositories,
  ctx: ServiceContext,
  before: Person,
  reason: string,
): Promise<LeaverOutcome> {
  const userId = before.userId;
  if (!canChangeStatus(before.status, 'left')) {
    throw new AppError('person.invalid_status_change', { from: before.status, to: 'left' });
  }
  const now = ctx.clock.now();
  const cards = await tx.leavers.lockCardsOf(userId);
  const profiles = await tx.roleProfiles.activeProfilesForUpdate(userId);
  const certificates = await tx.leavers.lockValidCertificatesOf(userId);
  const requests = await lockPendingRequestsOf(tx, userId);
  const webauthn = await tx.leavers.removeWebauthnCredentialsOf(userId);
  const totp = await tx.leavers.removeTotpAuthenticatorsOf(userId);
  await tx.leavers.useUpInvitationsAndCodesOf(userId, now);
  const { ended, audit } = await endProfiles(tx, ctx, profiles, 'leaver');
  const after = await tx.people.updatePersonStatus(userId, 'left', now);
  const sessionsEnded = await endSessionsOf(tx, userId, now, 'leaver');
  // From here on, audit appends: the card service writes its own events.
  for (const cardId of cards) await cancelCardIn(tx, ctx, cardId, 'leaver');
  // Certificates not on a card any more (or on none) are revoked too: a leaver keeps no valid certificate.
  for (const serial of certificates) await revokeCertificate(tx, ctx, serial, 'affiliationChanged');
  for (const r of requests) await closeRequest(tx, ctx, r, 'withdrawn', 'the person has left');
  await audit();
  const outcome: Omit<LeaverOutcome, 'person'> = {
    scope: 'national',
    keptIn: [],
    roleProfilesEnded: ended.map((p) => p.personRoleId),
    cardsCancelled: cards,
    certificatesRevoked: certificates.length,
    authenticatorsRemoved: [...webauthn, ...totp],
    requestsWithdrawn: requests.map((r) => r.requestId),
    sessionsEnded,
  };
  await appendAudit(tx, ctx, {
    action: 'person.left',
    targetType: 'person',
    targetId: userId,
    before: { status: before.status },
    after: { status: after.status, ...outcome },
    reason,
  });
  return { person: after, ...outcome };
}
