import { z } from 'zod';
import { isLoopbackHttp, type UpstreamProvider } from '../authenticators/upstream/openid.ts';
import { AppError } from '../domain/errors.ts';
import { actorLabel, authorize } from '../domain/policy.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import type { UpstreamIdpRow } from '../storage/repositories/upstream.ts';
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

type Row = UpstreamIdpRow;

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
  return ctx.transaction(async (tx) => {
    const known = await tx.organisations.knownOdsCodes(i.allowedOdsCodes);
    const unknown = i.allowedOdsCodes.filter((c) => !known.includes(c));
    if (unknown.length > 0) throw new AppError('organisation.not_found', { odsCodes: unknown });
    if (await tx.upstream.upstreamIdpExists(i.idpId)) throw new AppError('upstream.idp_exists');
    const now = ctx.clock.now();
    await tx.upstream.insertUpstreamIdp({
      idpId: i.idpId,
      name: i.name,
      issuer: i.issuer,
      clientId: i.clientId,
      clientSecretSealed: ctx.sealer.seal(i.clientSecret, SECRET_PURPOSE),
      subjectClaim: i.subjectClaim,
      allowedOds: [...new Set(i.allowedOdsCodes)].sort(),
      createdBy: actorLabel(ctx.actor),
      now,
    });
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
  await ctx.transaction(async (tx) => {
    if (!(await tx.upstream.setUpstreamIdpStatus(idpId, status, ctx.clock.now()))) {
      throw new AppError('upstream.idp_not_found');
    }
    await appendAudit(tx, ctx, {
      action: `upstream.idp_${status}`,
      targetType: 'upstream_idp',
      targetId: idpId,
      before: null,
      after: { status },
    });
  });
}

export async function listUpstreamIdps(repos: Repositories, only?: 'active'): Promise<UpstreamIdp[]> {
  const rows = await repos.upstream.upstreamIdps(only !== undefined);
  return rows.map(fromRow);
}

/** An active provider with its client secret, for the sign-in itself. */
export async function activeUpstreamProvider(
  ctx: Pick<ServiceContext, 'repos' | 'sealer'>,
  idpId: string,
): Promise<UpstreamIdp & UpstreamProvider> {
  if (!/^[a-z0-9][a-z0-9-]{1,39}$/.test(idpId)) throw new AppError('upstream.idp_not_found');
  const row = await ctx.repos.upstream.activeUpstreamIdp(idpId);
  if (!row) throw new AppError('upstream.idp_not_found');
  return { ...fromRow(row), clientSecret: ctx.sealer.open(row.client_secret_sealed, SECRET_PURPOSE).toString() };
}
