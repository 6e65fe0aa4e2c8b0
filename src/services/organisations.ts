import { AppError } from '../domain/errors.ts';
import {
  isOdsCode,
  type NewOrganisation,
  newOrganisationSchema,
  normaliseOdsCode,
  type Organisation,
} from '../domain/organisations/organisation.ts';
import { authorize, type Target } from '../domain/policy.ts';
import type { Queryable } from '../storage/database.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { parseInput } from './validation.ts';

interface OrgRow {
  ods_code: string;
  name: string;
  type: Organisation['type'];
  parent_ods_code: string | null;
  status: Organisation['status'];
  created_at: Date;
  updated_at: Date;
}

function fromRow(r: OrgRow): Organisation {
  return {
    odsCode: r.ods_code,
    name: r.name,
    type: r.type,
    parentOdsCode: r.parent_ods_code,
    status: r.status,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

export function validateNewOrganisation(input: unknown): NewOrganisation {
  return parseInput(newOrganisationSchema, input, (i) =>
    i.path[0] === 'odsCode' || i.path[0] === 'parentOdsCode' ? 'organisation.invalid_ods_code' : 'request.invalid',
  );
}

export async function findOrganisation(q: Queryable, odsCode: string, lock = false): Promise<Organisation | undefined> {
  const { rows } = await q.query<OrgRow>(
    `SELECT * FROM organisations WHERE ods_code = $1${lock ? ' FOR UPDATE' : ''}`,
    [odsCode],
  );
  return rows[0] && fromRow(rows[0]);
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
  return ctx.db.transaction(async (tx) => {
    const existing = await findOrganisation(tx, org.odsCode, true);
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
      if (!(await findOrganisation(tx, org.parentOdsCode))) {
        throw new AppError('organisation.parent_not_found', { parentOdsCode: org.parentOdsCode });
      }
      if (existing && (await isInSubtree(tx, org.odsCode, org.parentOdsCode))) {
        throw new AppError('organisation.hierarchy_cycle');
      }
    }
    const now = ctx.clock.now();
    if (existing) {
      if (existing.name === org.name && existing.type === org.type && existing.parentOdsCode === org.parentOdsCode) {
        return { organisation: existing, outcome: 'unchanged' as const };
      }
      const { rows } = await tx.query<OrgRow>(
        `UPDATE organisations SET name = $2, type = $3, parent_ods_code = $4, updated_at = $5 WHERE ods_code = $1
         RETURNING *`,
        [org.odsCode, org.name, org.type, org.parentOdsCode, now],
      );
      const updated = fromRow(rows[0]!);
      await appendAudit(tx, ctx, {
        action: 'organisation.updated',
        targetType: 'organisation',
        targetId: org.odsCode,
        before: { name: existing.name, type: existing.type, parentOdsCode: existing.parentOdsCode },
        after: { name: updated.name, type: updated.type, parentOdsCode: updated.parentOdsCode },
      });
      return { organisation: updated, outcome: 'updated' as const };
    }
    const { rows } = await tx.query<OrgRow>(
      `INSERT INTO organisations (ods_code, name, type, parent_ods_code, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $5) RETURNING *`,
      [org.odsCode, org.name, org.type, org.parentOdsCode, now],
    );
    const created = fromRow(rows[0]!);
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
  const org = await findOrganisation(ctx.db, code);
  if (!org) throw new AppError('organisation.not_found');
  return org;
}

/** Is `candidate` the organisation `root` or below it? (An RA's powers reach its organisation's subtree.) */
export async function isInSubtree(q: Queryable, root: string, candidate: string): Promise<boolean> {
  const { rows } = await q.query<{ found: boolean }>(
    `WITH RECURSIVE up AS (
       SELECT ods_code, parent_ods_code, 1 AS depth FROM organisations WHERE ods_code = $2
       UNION ALL
       SELECT o.ods_code, o.parent_ods_code, up.depth + 1 FROM organisations o JOIN up ON o.ods_code = up.parent_ods_code
       WHERE up.depth < 50
     )
     SELECT EXISTS (SELECT 1 FROM up WHERE ods_code = $1) AS found`,
    [root, candidate],
  );
  return rows[0]?.found === true;
}

/** Every organisation in the subtree under `root`, root included (ODS codes, sorted). */
export async function subtreeOf(q: Queryable, root: string): Promise<string[]> {
  const { rows } = await q.query<{ ods_code: string }>(
    `WITH RECURSIVE down AS (
       SELECT ods_code, 1 AS depth FROM organisations WHERE ods_code = $1
       UNION ALL
       SELECT o.ods_code, down.depth + 1 FROM organisations o JOIN down ON o.parent_ods_code = down.ods_code
       WHERE down.depth < 50
     )
     SELECT ods_code FROM down ORDER BY ods_code`,
    [root],
  );
  return rows.map((r) => r.ods_code);
}
