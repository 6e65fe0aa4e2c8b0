import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { authenticationMethods } from '../domain/credentials/assurance.ts';
import { AppError } from '../domain/errors.ts';
import { actorLabel, authorize } from '../domain/policy.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { effectiveRoles } from './access.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { subtreeOf } from './organisations.ts';
import { refuse as refuseWith } from './refusals.ts';
import type { SignInResult } from './sessions.ts';
import { endSessionsOf } from './sessions.ts';
import { personTarget } from './targets.ts';
import type { UpstreamIdp } from './upstream-idps.ts';
import { parseInput } from './validation.ts';

/**
 * Links between an account at an upstream identity provider and a person's national record, and the sign-in through
 * such an account (DOMAIN §6: NHSmail with Microsoft Authenticator is AAL2). A link is made by an RA with power over
 * the person (policy statement authenticator:enrol, scoped to the person's organisations) or by the person themselves,
 * signed in, by signing in at the provider (then the account is proved, not typed). Either way the person must work
 * (a role profile in effect today) in an organisation the provider is registered for.
 */
export interface UpstreamLink {
  linkId: string;
  idpId: string;
  subject: string;
  createdAt: string;
  lastUsedAt: string | null;
}

const subjectSchema = z.string().trim().min(1).max(255);

/** Whether the person works, today, in one of the provider's organisations (or below one). */
export async function worksWhereProviderIsOffered(
  repos: Repositories,
  idp: Pick<UpstreamIdp, 'allowedOdsCodes'>,
  userId: string,
  now: Date,
): Promise<boolean> {
  const roles = await effectiveRoles(repos, userId, now);
  if (roles.length === 0) return false;
  const offered = new Set<string>();
  for (const root of idp.allowedOdsCodes) for (const c of await subtreeOf(repos, root)) offered.add(c);
  return roles.some((r) => offered.has(r.odsCode));
}

export async function linkUpstreamAccount(
  ctx: ServiceContext,
  idp: UpstreamIdp,
  input: { userId: string; subject: unknown },
): Promise<UpstreamLink> {
  const subject = parseInput(subjectSchema, input.subject);
  const self = ctx.actor.kind === 'person' && ctx.actor.userId === input.userId;
  if (!self) {
    authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.repos, ctx.clock, input.userId));
  }
  const person = await ctx.repos.people.findPersonByUserId(input.userId);
  if (person?.status !== 'active') throw new AppError('person.not_found');
  if (!(await worksWhereProviderIsOffered(ctx.repos, idp, person.userId, ctx.clock.now()))) {
    throw new AppError('upstream.organisation_not_allowed');
  }
  return ctx.transaction(async (tx) => {
    const taken = await tx.upstream.lockLiveLinks(idp.idpId, subject, person.userId);
    if (taken.length > 0) throw new AppError('upstream.already_linked');
    const link = {
      linkId: `upl_${randomBytes(9).toString('base64url')}`,
      idpId: idp.idpId,
      subject,
      createdAt: ctx.clock.now().toISOString(),
      lastUsedAt: null,
    };
    try {
      await tx.upstream.insertLink({
        linkId: link.linkId,
        idpId: idp.idpId,
        subject,
        userId: person.userId,
        linkedBy: actorLabel(ctx.actor),
        now: ctx.clock.now(),
      });
    } catch (err) {
      // Two links of the same account at once: the unique index lets one through.
      if ((err as { code?: string }).code === '23505') throw new AppError('upstream.already_linked');
      throw err;
    }
    await appendAudit(tx, ctx, {
      action: 'authenticator.upstream_linked',
      targetType: 'person',
      targetId: person.userId,
      before: null,
      after: { linkId: link.linkId, idpId: idp.idpId, subject, by: self ? 'holder' : 'ra' },
    });
    return link;
  });
}

/** Removes a link; the sessions signed in through it end (and with them the person's SSO at relying parties). */
export async function unlinkUpstreamAccount(ctx: ServiceContext, userId: string, linkId: string): Promise<void> {
  if (!(ctx.actor.kind === 'person' && ctx.actor.userId === userId)) {
    authorize(ctx.actor, 'authenticator:enrol', await personTarget(ctx.repos, ctx.clock, userId));
  }
  await ctx.transaction(async (tx) => {
    const removed = await tx.upstream.removeLink(linkId, userId, ctx.clock.now());
    if (!removed) throw new AppError('upstream.link_not_found');
    await endSessionsOf(tx, userId, ctx.clock.now(), 'authenticator_removed', `upstream:${linkId}`);
    await appendAudit(tx, ctx, {
      action: 'authenticator.upstream_unlinked',
      targetType: 'person',
      targetId: userId,
      before: { linkId, idpId: removed.idp_id, subject: removed.subject },
      after: null,
    });
  });
}

export async function upstreamLinksOf(repos: Repositories, userId: string): Promise<UpstreamLink[]> {
  const rows = await repos.upstream.liveLinksOf(userId);
  return rows.map((r) => ({
    linkId: r.link_id,
    idpId: r.idp_id,
    subject: r.subject,
    createdAt: new Date(r.created_at).toISOString(),
    lastUsedAt: r.last_used_at ? new Date(r.last_used_at).toISOString() : null,
  }));
}

/**
 * A sign-in through an upstream account whose ID token OpenCIS has verified: the linked person, if the link is live,
 * the person active and working where the provider is offered. AAL2, amr NHSMAIL (CIS2's AAL2_NHSMAIL).
 */
export async function signInWithUpstream(
  ctx: ServiceContext,
  idp: UpstreamIdp,
  subject: string,
): Promise<SignInResult> {
  const link = await ctx.repos.upstream.liveLinkOfSubject(idp.idpId, subject);
  const refuse = async (
    reason: string,
    code: 'upstream.not_linked' | 'upstream.organisation_not_allowed' | 'auth.failed',
  ) =>
    refuseWith(ctx, code, {
      action: 'signin.failed',
      targetType: 'person',
      targetId: link?.user_id ?? null,
      after: { method: 'upstream', idpId: idp.idpId, subject },
      reason,
    });
  if (!link) throw await refuse('not linked', 'upstream.not_linked');
  const person = await ctx.repos.people.findPersonByUserId(link.user_id);
  if (person?.status !== 'active') throw await refuse('person not active', 'auth.failed');
  if (!(await worksWhereProviderIsOffered(ctx.repos, idp, person.userId, ctx.clock.now()))) {
    throw await refuse('organisation not offered', 'upstream.organisation_not_allowed');
  }
  await ctx.repos.upstream.touchLink(link.link_id, ctx.clock.now());
  const method = authenticationMethods.upstream;
  return { userId: person.userId, aal: method.aal, amr: [method.amr], authenticatorId: `upstream:${link.link_id}` };
}
