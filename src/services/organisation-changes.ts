/**
 * The organisation hierarchy through the REST API (issue 18): read a subtree, change an organisation's details, move
 * it to another parent. Each goes through the same service as the console and `opencis import orgs`
 * (saveOrganisation), so the same policy checks apply: organisation:update on the organisation, and on where it goes
 * when it moves (re-parenting must not hand a subtree, and the people in it, to another RA).
 */
import { z } from 'zod';
import { type Organisation, organisationTypes } from '../domain/organisations/organisation.ts';
import { isAllowed } from '../domain/policy.ts';
import { text } from '../domain/text.ts';
import type { OrganisationNode } from '../storage/repositories/hierarchy.ts';
import type { ServiceContext } from './context.ts';
import { getOrganisation, saveOrganisation, type UpsertOutcome } from './organisations.ts';
import { parseInput } from './validation.ts';

export const organisationChangeSchema = z
  .object({ name: text(200).optional(), type: z.enum(organisationTypes).optional() })
  .strict()
  .refine((c) => c.name !== undefined || c.type !== undefined, { message: 'give a name or a type' });

export const organisationMoveSchema = z
  .object({ parentOdsCode: z.string().max(10).nullable().describe('The new parent; null: the top of the hierarchy') })
  .strict();

/**
 * The organisation and everything below it, root first then level by level (each with its parent's ODS code). The
 * root's parent is given only to whoever may read it, as on the console's organisation page.
 */
export async function organisationTree(
  ctx: ServiceContext,
  odsCode: string,
): Promise<{ root: string; organisations: OrganisationNode[] }> {
  const org = await getOrganisation(ctx, odsCode);
  const rows = await ctx.repos.hierarchy.subtreeRows(org.odsCode);
  const parent = org.parentOdsCode;
  const parentShown =
    parent !== null && isAllowed(ctx.actor, 'organisation:read', { kind: 'organisation', odsCode: parent });
  return {
    root: org.odsCode,
    organisations: rows.map((r) =>
      r.odsCode === org.odsCode ? { ...r, parentOdsCode: parentShown ? parent : null } : r,
    ),
  };
}

export async function updateOrganisation(
  ctx: ServiceContext,
  odsCode: string,
  input: unknown,
): Promise<{ organisation: Organisation; outcome: UpsertOutcome }> {
  const org = await getOrganisation(ctx, odsCode);
  const change = parseInput(organisationChangeSchema, input);
  return saveOrganisation(
    ctx,
    {
      odsCode: org.odsCode,
      name: change.name ?? org.name,
      type: change.type ?? org.type,
      parentOdsCode: org.parentOdsCode,
    },
    { upsert: true },
  );
}

export async function moveOrganisation(
  ctx: ServiceContext,
  odsCode: string,
  input: unknown,
): Promise<{ organisation: Organisation; outcome: UpsertOutcome }> {
  const org = await getOrganisation(ctx, odsCode);
  const { parentOdsCode } = parseInput(organisationMoveSchema, input);
  return saveOrganisation(
    ctx,
    { odsCode: org.odsCode, name: org.name, type: org.type, parentOdsCode },
    { upsert: true },
  );
}
