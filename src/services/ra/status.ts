/**
 * A person's status (DOMAIN §2, §5.4): suspend and restore, mark a leaver (every profile ended, every card and
 * authenticator cancelled, every session ended, in one transaction) and take a re-joiner back under the same user ID.
 */
import type { RoleProfile } from '../../domain/access/role-profile.ts';
import { laterDate, ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { canChangeStatus, type Person, type PersonStatus } from '../../domain/identity/person.ts';
import { authorize } from '../../domain/policy.ts';
import { revokeCertificate } from '../../pki/ca.ts';
import type { Queryable } from '../../storage/database.ts';
import { personOrgCodes, updatePersonStatus } from '../../storage/people.ts';
import { appendAudit } from '../audit.ts';
import { cancelCardIn } from '../cards.ts';
import type { ServiceContext } from '../context.ts';
import { endSessionsOf } from '../sessions.ts';
import { parseInput } from '../validation.ts';
import { PROFILE_SELECT, type ProfileRow, profileFromRow, reasonSchema } from './changes.ts';
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
    return ctx.db.transaction(async (tx) => {
      const before = await lockPerson(tx, userId);
      authorize(ctx.actor, 'person:change_status', { userId, odsCodes: await personOrgCodes(tx, userId) });
      if (!change.from.includes(before.status) || !canChangeStatus(before.status, change.to)) {
        throw new AppError('person.invalid_status_change', { from: before.status, to: change.to });
      }
      const now = ctx.clock.now();
      const after = await updatePersonStatus(tx, userId, change.to, now);
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
  roleProfilesEnded: string[];
  cardsCancelled: string[];
  certificatesRevoked: number;
  authenticatorsRemoved: string[];
  requestsWithdrawn: string[];
  sessionsEnded: number;
}

/**
 * Marks a leaver, in one transaction (DOMAIN §2, §5.4): every role profile ended, every card cancelled (certificates
 * revoked), every other authenticator removed, outstanding enrolment links and pending requests closed, every session
 * ended, and the person's status 'left'. Row locks are all taken before the first audit append (which locks the audit
 * head), so this never waits on the audit head while holding it against another writer.
 */
export async function markLeaver(ctx: ServiceContext, userId: string, input: unknown): Promise<LeaverOutcome> {
  return raAction(ctx, 'person.leaver', { targetType: 'person', targetId: userId }, async () => {
    requireUserId(userId);
    const { reason } = parseInput(reasonSchema, input);
    return ctx.db.transaction(async (tx) => {
      const before = await lockPerson(tx, userId);
      authorize(ctx.actor, 'person:leaver', { userId, odsCodes: await personOrgCodes(tx, userId) });
      if (!canChangeStatus(before.status, 'left')) {
        throw new AppError('person.invalid_status_change', { from: before.status, to: 'left' });
      }
      const now = ctx.clock.now();
      const today = ukDate(now);
      const cards = await lockedIds(
        tx,
        "SELECT card_id AS id FROM cards WHERE user_id = $1 AND status <> 'cancelled' ORDER BY card_id FOR UPDATE",
        userId,
      );
      const profiles = (
        await tx.query<ProfileRow>(
          `${PROFILE_SELECT} WHERE rp.user_id = $1 AND rp.status = 'active' ORDER BY rp.person_roleid FOR UPDATE OF rp`,
          [userId],
        )
      ).rows.map(profileFromRow);
      const certificates = await lockedIds(
        tx,
        "SELECT serial AS id FROM pki_certificates WHERE user_id = $1 AND status = 'valid' ORDER BY serial FOR UPDATE",
        userId,
      );
      const requests = await lockPendingRequestsOf(tx, userId);
      const webauthn = await lockedIds(
        tx,
        "UPDATE webauthn_credentials SET status = 'removed' WHERE user_id = $1 AND status = 'active' RETURNING 'webauthn:' || credential_id AS id",
        userId,
      );
      const totp = await lockedIds(
        tx,
        "UPDATE totp_authenticators SET status = 'removed' WHERE user_id = $1 AND status <> 'removed' RETURNING 'totp:' || totp_id AS id",
        userId,
      );
      await tx.query('UPDATE enrolment_invitations SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL', [
        userId,
        now,
      ]);
      await tx.query('UPDATE one_time_codes SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL', [userId, now]);
      const ended: RoleProfile[] = [];
      for (const p of profiles) {
        const endDate = laterDate(p.endDate != null && p.endDate < today ? p.endDate : today, p.startDate);
        await tx.query(
          "UPDATE role_profiles SET status = 'ended', end_date = $2, updated_at = $3 WHERE person_roleid = $1",
          [p.personRoleId, endDate, now],
        );
        ended.push({ ...p, status: 'ended', endDate });
      }
      const after = await updatePersonStatus(tx, userId, 'left', now);
      const sessionsEnded = await endSessionsOf(tx, userId, now, 'leaver');
      // From here on, audit appends: the card service writes its own events.
      for (const cardId of cards) await cancelCardIn(tx, ctx, cardId, 'leaver');
      // Certificates not on a card any more (or on none) are revoked too: a leaver keeps no valid certificate.
      for (const serial of certificates) await revokeCertificate(tx, ctx, serial, 'affiliationChanged');
      for (const r of requests) await closeRequest(tx, ctx, r, 'withdrawn', 'the person has left');
      for (const p of ended) {
        await appendAudit(tx, ctx, {
          action: 'role_profile.ended',
          targetType: 'person',
          targetId: userId,
          before: { ...p, status: 'active' },
          after: p,
          reason: 'leaver',
        });
      }
      const outcome: Omit<LeaverOutcome, 'person'> = {
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
    });
  });
}

async function lockedIds(tx: Queryable, sql: string, userId: string): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(sql, [userId]);
  return rows.map((r) => r.id);
}
