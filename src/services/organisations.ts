import { AppError } from '../domain/errors.ts';
import {
  isOdsCode,
  type NewOrganisation,
  newOrganisationSchema,
  normaliseOdsCode,
  type Organisation,
} from '../domain/organisations/organisation.ts';
import { authorize, type Target } from '../domain/policy.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { inputSchema, parseInput } from './validation.ts';

/** A new organisation as a service or a route receives it: a bad ODS code is `organisation.invalid_ods_code`. */
export const newOrganisationInput = inputSchema(newOrganisationSchema, (i) =>
  i.path[0] === 'odsCode' || i.path[0] === 'parentOdsCode' ? 'organisation.invalid_ods_code' : 'request.invalid',
);

export function validateNewOrganisation(input: unknown): NewOrganisation {
  return parseInput(newOrganisationInput, input);
}

/** The organisation with ODS code `odsCode` (`lock`: its row, for the rest of the transaction). */
export function findOrganisation(
  repos: Repositories,
  odsCode: string,
  lock = false,
): Promise<Organisation | undefined> {
  return repos.organisations.findOrganisation(odsCode, lock);
}

export type UpsertOutcome = 'created' | 'updated' | 'unchanged';

/**
 * Creates an organisation, or (with `upsert`) brings an existing one in line with the input. Used by the API and by
 * `opencis import orgs`, whose re-runs must be idempotent: an unchanged row writes nothing and audits nothing.
 */
export async function saveOrganisation(
  ctx: ServiceContext,
  input: unknown,
  options: { upsert?: boolean } = {},
): Promise<{ organisation: Organisation; outcome: UpsertOutcome }> {
  const org = validateNewOrganisation(input);
  return ctx.transaction(async (tx) => {
    const existing = await tx.organisations.findOrganisation(org.odsCode, true);
    // A new organisation goes below one of the actor's (one at the top of the hierarchy is the operator's). Moving one
    // needs the power over it and over where it goes: re-parenting must not hand a subtree, and the people in it, to
    // another RA, nor take one from them (Keycloak CVE-2026-9099, re-parenting a privileged group).
    const parent: Target = org.parentOdsCode
      ? { kind: 'organisation', odsCode: org.parentOdsCode }
      : { kind: 'national' };
    if (!existing) authorize(ctx.actor, 'organisation:create', parent);
    else {
      authorize(ctx.actor, 'organisation:update', { kind: 'organisation', odsCode: org.odsCode });
      if (existing.parentOdsCode !== org.parentOdsCode) authorize(ctx.actor, 'organisation:update', parent);
    }
    if (existing && !options.upsert) throw new AppError('organisation.exists');
    if (org.parentOdsCode) {
      if (org.parentOdsCode === org.odsCode) throw new AppError('organisation.hierarchy_cycle');
      if (!(await tx.organisations.findOrganisation(org.parentOdsCode))) {
        throw new AppError('organisation.parent_not_found', { parentOdsCode: org.parentOdsCode });
      }
      if (existing && (await tx.organisations.isInSubtree(org.odsCode, org.parentOdsCode))) {
        throw new AppError('organisation.hierarchy_cycle');
      }
    }
    const now = ctx.clock.now();
    if (existing) {
      if (existing.name === org.name && existing.type === org.type && existing.parentOdsCode === org.parentOdsCode) {
        return { organisation: existing, outcome: 'unchanged' as const };
      }
      const updated = await tx.organisations.updateOrganisation(org, now);
      await appendAudit(tx, ctx, {
        action: 'organisation.updated',
        targetType: 'organisation',
        targetId: org.odsCode,
        before: { name: existing.name, type: existing.type, parentOdsCode: existing.parentOdsCode },
        after: { name: updated.name, type: updated.type, parentOdsCode: updated.parentOdsCode },
      });
      return { organisation: updated, outcome: 'updated' as const };
    }
    const created = await tx.organisations.insertOrganisation(org, now);
    await appendAudit(tx, ctx, {
      action: 'organisation.created',
      targetType: 'organisation',
      targetId: org.odsCode,
      before: null,
      after: { name: created.name, type: created.type, parentOdsCode: created.parentOdsCode },
    });
    return { organisation: created, outcome: 'created' as const };
  });
}

export async function getOrganisation(ctx: ServiceContext, odsCode: string): Promise<Organisation> {
  const code = normaliseOdsCode(odsCode);
  if (!isOdsCode(code)) throw new AppError('organisation.invalid_ods_code');
  authorize(ctx.actor, 'organisation:read', { kind: 'organisation', odsCode: code });
  const org = await ctx.repos.organisations.findOrganisation(code);
  if (!org) throw new AppError('organisation.not_found');
  return org;
}

/** Is `candidate` the organisation `root` or below it? (An RA's powers reach its organisation's subtree.) */
export function isInSubtree(repos: Repositories, root: string, candidate: string): Promise<boolean> {
  return repos.organisations.isInSubtree(root, candidate);
}

/** Every organisation in the subtree under `root`, root included (ODS codes, sorted). */
export function subtreeOf(repos: Repositories, root: string): Promise<string[]> {
  return repos.organisations.subtreeOf(root);
}
