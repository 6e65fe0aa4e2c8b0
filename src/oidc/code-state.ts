import type { Adapter, AdapterPayload } from 'oidc-provider';
import { currentRequest } from './read-together.ts';

/**
 * CIS2 ID tokens carry `s_hash`, the hash of the authorization request's `state` (DOMAIN §7). oidc-provider knows that
 * state only while it answers the authorization request, and issues ID tokens at the token endpoint (code flow only):
 * the authorization code keeps the state it was issued for. The adapter stores it beside the code's payload (which the
 * library reads only its own members of), and when the token endpoint finds the code it is left on that request for the
 * ID token's claims (provider.ts, findAccount().claims). Nothing outlives the code (60 seconds, single use).
 */
const STATE = 'urn:opencis:state';

/** A state longer than this is not kept (no s_hash): it is the relying party's own value, echoed only. */
const MAX_STATE = 2_048;

const foundState = new WeakMap<object, string>();

export function keepingCodeState(factory: (name: string) => Adapter): (name: string) => Adapter {
  return (name: string) => {
    const adapter = factory(name);
    if (name !== 'AuthorizationCode') return adapter;
    return Object.assign(Object.create(adapter) as Adapter, {
      upsert(id: string, payload: AdapterPayload, expiresIn: number) {
        const state = (currentRequest() as { oidc?: { params?: { state?: unknown } } } | undefined)?.oidc?.params
          ?.state;
        const kept = typeof state === 'string' && state.length > 0 && state.length <= MAX_STATE;
        return adapter.upsert(id, kept ? { ...payload, [STATE]: state } : payload, expiresIn);
      },
      async find(id: string) {
        const payload = await adapter.find(id);
        const ctx = currentRequest();
        const state = (payload as Record<string, unknown> | undefined)?.[STATE];
        if (ctx && typeof state === 'string') foundState.set(ctx, state);
        return payload;
      },
    });
  };
}

/** The state of the authorization request whose code this request (the token endpoint's) redeems, if any. */
export function stateOfRedeemedCode(ctx: object): string | undefined {
  return foundState.get(ctx);
}
