import type { ServiceContext } from '../../src/services/context.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';

/**
 * The organisation trees the RA tests work in: trust RR8 with site RR813 under ICB QWO (in scope of RR8's RA staff),
 * and trust RX1 under ICB Y51 (out of their scope).
 */
export async function saveTestOrganisations(ctx: ServiceContext): Promise<void> {
  for (const o of [
    { odsCode: 'QWO', name: 'Test ICB', type: 'icb' },
    { odsCode: 'RR8', name: 'Test Trust', type: 'trust', parentOdsCode: 'QWO' },
    { odsCode: 'RR813', name: 'Test Site', type: 'site', parentOdsCode: 'RR8' },
    { odsCode: 'Y51', name: 'Other ICB', type: 'icb' },
    { odsCode: 'RX1', name: 'Other Trust', type: 'trust', parentOdsCode: 'Y51' },
  ]) {
    await saveOrganisation(ctx, o);
  }
}
