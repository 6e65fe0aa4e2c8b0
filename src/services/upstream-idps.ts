import { z } from 'zod';
import { isLoopbackHttp, type UpstreamProvider } from '../authenticators/upstream/openid.ts';
import { AppError } from '../domain/errors.ts';
import { actorLabel, authorize } from '../domain/policy.ts';
import type { Queryable } from '../storage/database.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { parseInput } from './validation.ts';

/**
 * Upstream OpenID Connect identity providers (federated sign-in, CIS2's AAL2_NHSMAIL): an organisation's own provider
 * — NHSmail is Microsoft Entra ID — through which its people may sign in once their account there is linked to their
 * national record. Registered by the operator only (policy statement idp:register, which no RA role grants): the
 * issuer, OpenCIS's client credentials there (the secret sealed), the claim that names an account, and the
 * organisations (each with its subtree) whose people may use it.
 */
const SECRET_PURPOSE = 'upstream.client-secret';

export const upstreamIdpInputSchema = z.object({
  idpId: z.string().regex(/^[a-z0-9][a-z0-9-]{1,39}$/, 'lower-case letters, digits and hyphens, 2–40'),
  name: z.string().trim().min(1).max(100),
  issuer: z
    .url()
    .max(500)
    .refine((u) => u.startsWith('https://') || isLoopbackHttp(u), 'https only (http for localhost)')
    .refine((u) => !new URL(u).hash && !new URL(u).search, 'no query or fragment'),
  clientId: z.string().min(1).max(200),
  clientSecret: z.string().min(16, 'at least 16 characters').max(500),
  subjectClaim: z.enum(['sub', 'oid']).default('sub'),
  allowedOdsCodes: z
    .array(z.string().regex(/^[A-Z0-9]{3,6}$/))
    .min(1)
    .max(100),
});
export type UpstreamIdpInput = z.input<typeof upstreamIdpInputSchema>;

export interface UpstreamIdp {
  idpId: string;
  name: string;
  issuer: string;
  clientId: string;
  subjectClaim: 'sub' | 'oid';
  allowedOdsCodes: string[];
  status: 'active' | 'disabled';
}

interface Row {
  idp_id: string;
  name: string;
  issuer: string;
  client_id: string;
  client_secret_sealed: string;
  subject_claim: 'sub' | 'oid';
  allowed_ods: string[];
  status: 'active' | 'disabled';
}

function fromRow(r: Row): UpstreamIdp {
  return {
    idpId: r.idp_id,
    name: r.name,
    issuer: r.issuer,
    clientId: r.client_id,
    subjectClaim: r.subject_claim,
    allowedOdsCodes: r.allowed_ods,
    status: r.status,
  };
}

export async function registerUpstreamIdp(ctx: ServiceContext, input: unknown): Promise<UpstreamIdp> {
  authorize(ctx.actor, 'idp:register', { kind: 'national' });
  const i = parseInput(upstreamIdpInputSchema, input);
  return ctx.db.transaction(async (tx) => {
    const { rows: orgs } = await tx.query<{ ods_code: string }>(
      'SELECT ods_code FROM organisations WHERE ods_code = ANY($1)',
      [i.allowedOdsCodes],
    );
    const unknown = i.allowedOdsCodes.filter((c) => !orgs.some((o) => o.ods_code === c));
    if (unknown.length > 0) throw new AppError('organisation.not_found', { odsCodes: unknown });
    const exists = await tx.query('SELECT 1 FROM upstream_idps WHERE idp_id = $1', [i.idpId]);
    if (exists.rows.length > 0) throw new AppError('upstream.idp_exists');
    const now = ctx.clock.now();
    await tx.query(
      `INSERT INTO upstream_idps (idp_id, name, issuer, client_id, client_secret_sealed, subject_claim, allowed_ods,
         created_by, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`,
      [
        i.idpId,
        i.name,
        i.issuer,
        i.clientId,
        ctx.sealer.seal(i.clientSecret, SECRET_PURPOSE),
        i.subjectClaim,
        [...new Set(i.allowedOdsCodes)].sort(),
        actorLabel(ctx.actor),
        now,
      ],
    );
    const idp: UpstreamIdp = {
      idpId: i.idpId,
      name: i.name,
      issuer: i.issuer,
      clientId: i.clientId,
      subjectClaim: i.subjectClaim,
      allowedOdsCodes: [...new Set(i.allowedOdsCodes)].sort(),
      status: 'active',
    };
    await appendAudit(tx, ctx, {
      action: 'upstream.idp_registered',
      targetType: 'upstream_idp',
      targetId: i.idpId,
      before: null,
      after: { ...idp, clientSecret: 'sealed' },
    });
    return idp;
  });
}

export async function setUpstreamIdpStatus(
  ctx: ServiceContext,
  idpId: string,
  status: 'active' | 'disabled',
): Promise<void> {
  authorize(ctx.actor, 'idp:register', { kind: 'national' });
  await ctx.db.transaction(async (tx) => {
    const { rowCount } = await tx.query('UPDATE upstream_idps SET status = $2, updated_at = $3 WHERE idp_id = $1', [
      idpId,
      status,
      ctx.clock.now(),
    ]);
    if (rowCount === 0) throw new AppError('upstream.idp_not_found');
    await appendAudit(tx, ctx, {
      action: `upstream.idp_${status}`,
      targetType: 'upstream_idp',
      targetId: idpId,
      before: null,
      after: { status },
    });
  });
}

export async function listUpstreamIdps(q: Queryable, only?: 'active'): Promise<UpstreamIdp[]> {
  const { rows } = await q.query<Row>(
    `SELECT * FROM upstream_idps ${only ? "WHERE status = 'active'" : ''} ORDER BY name, idp_id`,
  );
  return rows.map(fromRow);
}

/** An active provider with its client secret, for the sign-in itself. */
export async function activeUpstreamProvider(
  ctx: Pick<ServiceContext, 'db' | 'sealer'>,
  idpId: string,
): Promise<UpstreamIdp & UpstreamProvider> {
  if (!/^[a-z0-9][a-z0-9-]{1,39}$/.test(idpId)) throw new AppError('upstream.idp_not_found');
  const { rows } = await ctx.db.query<Row>("SELECT * FROM upstream_idps WHERE idp_id = $1 AND status = 'active'", [
    idpId,
  ]);
  const row = rows[0];
  if (!row) throw new AppError('upstream.idp_not_found');
  return { ...fromRow(row), clientSecret: ctx.sealer.open(row.client_secret_sealed, SECRET_PURPOSE).toString() };
}
