import type { Adapter, AdapterPayload } from 'oidc-provider';

/**
 * The in-process store of the bare oidc-provider baselines (bench/oidc.ts, bench/side-by-side): a Map with expiry —
 * not the library's memory adapter, an LRU of 1,000 that evicts codes under load. Indexes by uid and grant as the
 * library's adapter contract needs.
 */
export class MapAdapter implements Adapter {
  static store = new Map<string, { payload: AdapterPayload; expiresAt: number }>();
  static byGrant = new Map<string, Set<string>>();
  static byUid = new Map<string, string>();
  constructor(private readonly model: string) {}
  private key(id: string): string {
    return `${this.model}:${id}`;
  }
  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.key(id);
    MapAdapter.store.set(key, {
      payload,
      expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY,
    });
    if (payload.grantId) {
      const set = MapAdapter.byGrant.get(payload.grantId) ?? new Set<string>();
      set.add(key);
      MapAdapter.byGrant.set(payload.grantId, set);
    }
    if (payload.uid) MapAdapter.byUid.set(payload.uid, id);
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    const hit = MapAdapter.store.get(this.key(id));
    if (!hit || hit.expiresAt <= Date.now()) return undefined;
    return hit.payload;
  }
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = MapAdapter.byUid.get(uid);
    return id ? this.find(id) : undefined;
  }
  async findByUserCode(): Promise<AdapterPayload | undefined> {
    return undefined;
  }
  async consume(id: string): Promise<void> {
    const hit = MapAdapter.store.get(this.key(id));
    if (hit) hit.payload = { ...hit.payload, consumed: Math.floor(Date.now() / 1000) };
  }
  async destroy(id: string): Promise<void> {
    MapAdapter.store.delete(this.key(id));
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    for (const key of MapAdapter.byGrant.get(grantId) ?? []) MapAdapter.store.delete(key);
    MapAdapter.byGrant.delete(grantId);
  }
  static sweep(): void {
    const now = Date.now();
    for (const [key, v] of MapAdapter.store) if (v.expiresAt <= now) MapAdapter.store.delete(key);
  }
}
