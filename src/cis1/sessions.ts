import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { type EffectiveRole, effectiveRoles } from '../services/access.ts';
import { appendAudit } from '../services/audit.ts';
import { type CardConfig, finishCardSignIn } from '../services/cards.ts';
import type { ServiceContext } from '../services/context.ts';
import { endSessionsOf, hashToken } from '../services/sessions.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { personActor, Refusal, withRefusals } from './refusals.ts';
import {
  type EndReason,
  endSessionRow,
  newSecret,
  newSessionId,
  SECRET_PATTERN,
  type SessionRow,
  sessionProblem,
  sessionTimes,
} from './session-store.ts';

/**
 * A workstation's card agent and its CIS1 session (DOMAIN §8). The agent signs in with the card — the same proof as
 * CIS2 smartcard sign-in: a server challenge signed on the card after the card checked the passcode — and gets a
 * session secret. With it, and only from the workstation it signed in from, it picks the role profile (and receives
 * the ticket), keeps the session alive while the card stays in, and ends it when the card is removed.
 */
export const WORKSTATION_ID_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

export interface RoleChoice {
  personRoleId: string;
  orgCode: string;
  orgName: string;
  positionName: string;
  roleCode: string;
  roleName: string;
}

export interface Cis1SessionView {
  sessionId: string;
  userId: string;
  expiresAt: string;
  idleExpiresAt: string;
  roles: RoleChoice[];
  selectedRoleId: string | null;
  /** False when the selected role profile has ended since: the user must pick another (no ticket validates). */
  selectedRoleEffective: boolean;
}

export type AgentEndReason = Extract<EndReason, 'card_removed' | 'signed_out' | 'agent_stopped'>;

const credentialsSchema = z.object({
  sessionSecret: z.string().regex(SECRET_PATTERN),
  workstationId: z.string().regex(WORKSTATION_ID_PATTERN),
});
export type AgentCredentials = z.infer<typeof credentialsSchema>;

const startSchema = z.object({
  challengeId: z.string().max(64),
  certificate: z.string().max(8_000),
  signature: z.string().max(1_000),
  algorithm: z.enum(['ES256', 'RS256']),
  workstationId: z.string().regex(WORKSTATION_ID_PATTERN),
});

function roleChoice(role: EffectiveRole): RoleChoice {
  const primary = role.jobRoles[0];
  return {
    personRoleId: role.personRoleId,
    orgCode: role.odsCode,
    orgName: role.orgName,
    positionName: role.positionName,
    roleCode: primary?.roleCode ?? '',
    roleName: primary?.roleName ?? '',
  };
}

function viewOf(
  row: Pick<SessionRow, 'session_id' | 'user_id' | 'authenticated_at' | 'last_seen_at'>,
  roles: EffectiveRole[],
  selectedRoleId: string | null,
): Cis1SessionView {
  const times = sessionTimes(row);
  return {
    sessionId: row.session_id,
    userId: row.user_id,
    expiresAt: times.expiresAt.toISOString(),
    idleExpiresAt: times.idleExpiresAt.toISOString(),
    roles: roles.map(roleChoice),
    selectedRoleId,
    selectedRoleEffective: selectedRoleId !== null && roles.some((r) => r.personRoleId === selectedRoleId),
  };
}

/**
 * Card sign-in for CIS1. One role profile in effect: it is selected and the ticket issued at once; several: the agent
 * asks the user and calls selectCis1Role; none: refused, as CIS2 refuses a person with no role profile.
 */
export async function startCis1Session(
  ctx: ServiceContext,
  card: CardConfig,
  input: unknown,
  client: { ip: string | null },
): Promise<{ sessionSecret: string; ticket: string | null; session: Cis1SessionView }> {
  return withRefusals(ctx, async () => {
    const parsed = startSchema.safeParse(input);
    if (!parsed.success) {
      throw new Refusal('request.invalid', { action: 'cis1.signin_refused', reason: 'malformed request' });
    }
    const { workstationId, ...proof } = parsed.data;
    // Checks the certificate, the card, the person and the signature; audits its own failures (auth.failed).
    const result = await finishCardSignIn(ctx, card, proof);
    const userId = result.userId;
    const cardId = result.authenticatorId.slice('card:'.length);
    const presentedSerial = new X509Certificate(Buffer.from(proof.certificate, 'base64')).serialNumber.toLowerCase();
    const now = ctx.clock.now();
    const holder = { ...ctx, actor: personActor(userId) };
    return ctx.transaction(async (tx) => {
      const roles = await effectiveRoles(tx, userId, now);
      if (roles.length === 0) {
        throw new Refusal('cis1.no_role_profile', {
          action: 'cis1.signin_refused',
          userId,
          actor: holder.actor,
          reason: 'no role profile in effect',
        });
      }
      const current = await tx.cards.lockCard(cardId);
      if (current?.status !== 'active' || current.certificate_serial?.toLowerCase() !== presentedSerial) {
        throw new Refusal('auth.failed', {
          action: 'cis1.signin_refused',
          userId,
          reason: 'the card changed during sign-in',
        });
      }
      // A card is in one reader at a time: signing in with it ends its sessions anywhere else.
      const others = await tx.cis1Sessions.liveSessionsOfCard(cardId);
      for (const other of others) await endSessionRow(tx, holder, other, 'replaced');
      const sessionSecret = newSecret();
      const selected = roles.length === 1 ? roles[0]!.personRoleId : null;
      const ticket = selected ? newSecret() : null;
      const sessionId = newSessionId();
      await tx.cis1Sessions.insertSession({
        sessionId,
        userId,
        cardId,
        certificateSerial: current.certificate_serial,
        workstationId,
        amr: result.amr,
        agentSecretHash: hashToken(sessionSecret),
        ticketHash: ticket ? hashToken(ticket) : null,
        personRoleId: selected,
        at: now,
        roleSelectedAt: selected ? now : null,
        ip: client.ip,
      });
      await appendAudit(tx, holder, {
        action: 'cis1.session_started',
        targetType: 'person',
        targetId: userId,
        before: null,
        after: {
          sessionId,
          cardId,
          workstationId,
          aal: result.aal,
          amr: result.amr,
          selectedRoleId: selected,
          roleProfiles: roles.length,
          ip: client.ip,
        },
      });
      const row = { session_id: sessionId, user_id: userId, authenticated_at: now, last_seen_at: now };
      return { sessionSecret, ticket, session: viewOf(row, roles, selected) };
    });
  });
}

/** The agent's live session, checked: its secret, its workstation, and everything sessionProblem reads. */
async function agentSession(tx: Repositories, credentials: unknown, now: Date, live = true): Promise<SessionRow> {
  const parsed = credentialsSchema.safeParse(credentials);
  if (!parsed.success) {
    throw new Refusal('cis1.agent_session_invalid', { action: 'cis1.agent_refused', reason: 'malformed credentials' });
  }
  const row = await tx.cis1Sessions.lockSessionBySecret(hashToken(parsed.data.sessionSecret));
  if (!row) {
    throw new Refusal('cis1.agent_session_invalid', { action: 'cis1.agent_refused', reason: 'unknown session secret' });
  }
  const about = { userId: row.user_id, after: { sessionId: row.session_id } };
  if (row.workstation_id !== parsed.data.workstationId) {
    throw new Refusal('cis1.workstation_mismatch', {
      action: 'cis1.agent_refused',
      ...about,
      reason: 'session secret presented from another workstation',
    });
  }
  if (!live) return row;
  if (row.ended_at) {
    throw new Refusal('cis1.session_ended', {
      action: 'cis1.agent_refused',
      ...about,
      reason: `session already ended (${row.end_reason})`,
    });
  }
  const problem = sessionProblem(row, now);
  if (problem) {
    const expired = problem === 'idle_timeout' || problem === 'max_age';
    throw new Refusal(
      expired ? 'cis1.ticket_expired' : 'cis1.session_ended',
      { action: 'cis1.agent_refused', ...about, reason: problem },
      { row, reason: problem },
    );
  }
  return row;
}

const roleSchema = z.object({ personRoleId: z.string().regex(/^[0-9]{12}$/) });

/** Selects (or switches to) a role profile in effect now. The first selection issues the ticket. Audited. */
export async function selectCis1Role(
  ctx: ServiceContext,
  credentials: unknown,
  input: unknown,
): Promise<{ ticket: string | null; session: Cis1SessionView }> {
  return withRefusals(ctx, () =>
    ctx.transaction(async (tx) => {
      const now = ctx.clock.now();
      const row = await agentSession(tx, credentials, now);
      const holder = { ...ctx, actor: personActor(row.user_id) };
      const parsed = roleSchema.safeParse(input);
      const roles = await effectiveRoles(tx, row.user_id, now);
      const role = parsed.success ? roles.find((r) => r.personRoleId === parsed.data.personRoleId) : undefined;
      if (!role) {
        throw new Refusal('cis1.role_not_effective', {
          action: 'cis1.role_refused',
          userId: row.user_id,
          actor: holder.actor,
          reason: parsed.success ? 'not a role profile of this person in effect now' : 'malformed role profile ID',
          after: { sessionId: row.session_id, personRoleId: parsed.success ? parsed.data.personRoleId : null },
        });
      }
      const ticket = row.ticket_hash ? null : newSecret();
      await tx.cis1Sessions.selectRole(row.session_id, role.personRoleId, now, ticket ? hashToken(ticket) : null);
      await appendAudit(tx, holder, {
        action: row.person_roleid === null ? 'cis1.role_selected' : 'cis1.role_switched',
        targetType: 'person',
        targetId: row.user_id,
        before: { sessionId: row.session_id, personRoleId: row.person_roleid },
        after: { sessionId: row.session_id, personRoleId: role.personRoleId, orgCode: role.odsCode },
      });
      return { ticket, session: viewOf({ ...row, last_seen_at: now }, roles, role.personRoleId) };
    }),
  );
}

/** The agent's heartbeat while the card is in the reader: renews the idle limit (never the 12-hour one). */
export async function renewCis1Session(ctx: ServiceContext, credentials: unknown): Promise<Cis1SessionView> {
  return withRefusals(ctx, () =>
    ctx.transaction(async (tx) => {
      const now = ctx.clock.now();
      const row = await agentSession(tx, credentials, now);
      await tx.cis1Sessions.touchSession(row.session_id, now);
      const roles = await effectiveRoles(tx, row.user_id, now);
      return viewOf({ ...row, last_seen_at: now }, roles, row.person_roleid);
    }),
  );
}

const endSchema = z.enum(['card_removed', 'signed_out', 'agent_stopped']);

/**
 * Ends the session: card removed, signed out, or the agent stopping. The ticket stops validating with this commit.
 * Card removal also ends the person's CIS2 sessions signed in with that card and asks relying parties to log them out
 * (back-channel). Ending an ended session again is not an error.
 */
export async function endCis1Session(ctx: ServiceContext, credentials: unknown, reason: unknown): Promise<void> {
  const why = endSchema.safeParse(reason);
  await withRefusals(ctx, () =>
    ctx.transaction(async (tx) => {
      const row = await agentSession(tx, credentials, ctx.clock.now(), false);
      if (!why.success) {
        throw new Refusal('request.invalid', {
          action: 'cis1.agent_refused',
          userId: row.user_id,
          reason: 'unknown end reason',
        });
      }
      if (row.ended_at) return;
      const holder = { ...ctx, actor: personActor(row.user_id) };
      await endSessionRow(tx, holder, row, why.data);
      if (why.data === 'card_removed') {
        await endSessionsOf(tx, row.user_id, ctx.clock.now(), 'card_removed', `card:${row.card_id}`);
      }
    }),
  );
}

const agentEventSchema = z.object({
  event: z.literal('request_refused'),
  path: z.string().max(100),
  code: z.string().regex(/^[a-z0-9_.]{1,60}$/),
  origin: z.string().max(200).nullable(),
  address: z.string().max(60).nullable(),
  suppressed: z.number().int().min(0).max(1_000_000),
});

/**
 * The agent reports a caller it refused on its CIS1 paths (a web page of another origin, another host name, a
 * non-loopback address) while a session is open: recorded in the audit trail against that session.
 */
export async function recordAgentEvent(ctx: ServiceContext, credentials: unknown, input: unknown): Promise<void> {
  await withRefusals(ctx, () =>
    ctx.transaction(async (tx) => {
      const row = await agentSession(tx, credentials, ctx.clock.now(), false);
      const parsed = agentEventSchema.safeParse(input);
      if (!parsed.success) {
        throw new Refusal('request.invalid', {
          action: 'cis1.agent_refused',
          userId: row.user_id,
          reason: 'bad event',
        });
      }
      await appendAudit(tx, ctx, {
        action: 'cis1.agent_request_refused',
        targetType: 'person',
        targetId: row.user_id,
        before: null,
        after: { sessionId: row.session_id, workstationId: row.workstation_id, ...parsed.data },
        reason: `the card agent refused a caller (${parsed.data.code})`,
      });
    }),
  );
}
