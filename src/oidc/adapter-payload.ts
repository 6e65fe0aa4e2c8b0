import type { AdapterPayload } from 'oidc-provider';
import type { TogetherRow } from './read-together.ts';

/** An artefact as oidc-provider hands it to the adapters (adapter.ts, redis-adapter.ts). */
export type Payload = AdapterPayload & { accountId?: string };

/** Tokens and codes whose find reads their grant, session and claims with them (see read-together.ts). */
export const READ_TOGETHER = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken']);

/** How the library names a consumable artefact in its own "already consumed" errors. */
export function consumableLabel(model: string): string {
  return model === 'AuthorizationCode'
    ? 'authorization code'
    : model === 'RefreshToken'
      ? 'refresh token'
      : model === 'DeviceCode'
        ? 'device code'
        : model;
}

/** A row read together with a token: undefined when expired; `consumed` (seconds) when used. */
export function payloadOf(row: TogetherRow): Payload | undefined {
  if (row.expires_at !== null && row.expires_at <= Date.now()) return undefined;
  const payload = row.payload as Payload;
  return row.consumed_at !== null ? { ...payload, consumed: Math.floor(row.consumed_at / 1000) } : payload;
}
