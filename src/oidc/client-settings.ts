import { z } from 'zod';
import { type AcrValue, supportedAcrValues } from '../domain/credentials/acr.ts';
import { AppError } from '../domain/errors.ts';
import { authorize } from '../domain/policy.ts';
import { appendAudit } from '../services/audit.ts';
import { clientTarget, forgetCachedClient } from '../services/clients.ts';
import type { ServiceContext } from '../services/context.ts';
import { parseInput } from '../services/validation.ts';

/**
 * The per-client settings where OpenCIS may be stricter than CIS2 (docs/cis2.md), changed after registration: whether
 * PKCE is demanded, the least assurance level, what a request naming no acr_values asks for. Relying parties
 * registered before these settings existed kept OpenCIS's stricter rules (migration 0019: PKCE required; minimum AAL as
 * registered); this is how an RA Manager (policy client:register) or the operator gives one CIS2's rules. Audited with
 * the values before and after; other nodes see the change within their client cache's 10 seconds.
 */
const settingsSchema = z
  .object({
    requirePkce: z.boolean().optional(),
    minimumAal: z.union([z.literal(1), z.literal(2), z.literal(3)]).optional(),
    defaultAcrValues: z
      .array(z.enum(supportedAcrValues as [AcrValue, ...AcrValue[]]))
      .min(1)
      .max(5)
      .optional(),
  })
  .refine((s) => Object.values(s).some((v) => v !== undefined), 'nothing to change');
export type ClientSettings = z.input<typeof settingsSchema>;

export async function updateClientSettings(ctx: ServiceContext, clientId: string, input: unknown): Promise<void> {
  const s = parseInput(settingsSchema, input);
  await ctx.transaction(async (tx) => {
    // The client's owner's RA Managers (or the operator) change its settings, as its status (policy client:manage).
    authorize(ctx.actor, 'client:manage', await clientTarget(tx, clientId));
    const row = await tx.clients.clientSettingsForUpdate(clientId);
    if (!row) throw new AppError('oidc.client_not_found');
    const metadata = row.metadata;
    if (!(metadata.grant_types as string[] | undefined)?.includes('authorization_code')) {
      throw new AppError('request.invalid', { problems: [{ field: 'clientId', message: 'not a sign-in client' }] });
    }
    const before = {
      requirePkce: metadata['urn:opencis:require_pkce'] === true,
      minimumAal: row.minimumAal,
      defaultAcrValues: (metadata.default_acr_values as string[] | undefined) ?? null,
    };
    const next = { ...metadata };
    if (s.requirePkce !== undefined) next['urn:opencis:require_pkce'] = s.requirePkce;
    if (s.defaultAcrValues !== undefined) next.default_acr_values = s.defaultAcrValues;
    const minimumAal = s.minimumAal ?? row.minimumAal;
    await tx.clients.updateClientSettings(clientId, { metadata: next, minimumAal, at: ctx.clock.now() });
    await appendAudit(tx, ctx, {
      action: 'oidc.client_settings_changed',
      targetType: 'oidc_client',
      targetId: clientId,
      before,
      after: {
        requirePkce: next['urn:opencis:require_pkce'] === true,
        minimumAal,
        defaultAcrValues: (next.default_acr_values as string[] | undefined) ?? null,
      },
    });
  });
  forgetCachedClient(clientId);
}
