import type { Database } from '../storage/database.ts';
import type { Payload } from './adapter-payload.ts';

interface Written {
  json: string;
  grantId: string | null;
  uid: string | null;
  /** ms since the epoch, or null: no expiry. */
  expiresAt: number | null;
  /** When it was consumed (seconds since the epoch), as the library reads `consumed`. */
  consumed: number | null;
}

/**
 * Artefacts kept at most (~1–1.5 KB each: ≤ ~40 MB); the oldest written are dropped first (a dropped one is read from
 * the database again). A sign-in writes ~4 and its access token a fifth, so this covers ~5 000 sign-ins in flight.
 */
const WRITTEN_MAX = 25_000;

/**
 * The artefacts this process wrote, kept as written — on PGlite only. PGlite is one database in one process (the data
 * directory is locked against a second one), and every change to oidc_payloads goes through this adapter, so what is
 * kept here is exactly what the table holds: an artefact consumed, destroyed or revoked is forgotten (or marked) here
 * as the database is changed, and a relying party's next call sees it at once. What is not kept here (written before a
 * restart, or dropped for room) is read from the table. Reading back what the library wrote moments earlier was most
 * of its statements (the interaction, grant, code, session and access token, each read again by the next step). On
 * PostgreSQL, where other nodes change the same rows, nothing is kept.
 */
export class WrittenArtefacts {
  private readonly byKey = new Map<string, Written>();
  private readonly byUid = new Map<string, string>();
  private readonly byGrant = new Map<string, Set<string>>();
  private sweptAt = 0;

  remember(model: string, id: string, w: Written): void {
    const key = `${model}:${id}`;
    this.forget(model, id);
    if (this.byKey.size >= WRITTEN_MAX) this.dropOldest();
    this.byKey.set(key, w);
    if (w.uid) this.byUid.set(`${model}:${w.uid}`, key);
    if (w.grantId) {
      const set = this.byGrant.get(w.grantId) ?? new Set<string>();
      set.add(key);
      this.byGrant.set(w.grantId, set);
    }
  }

  find(model: string, id: string): Payload | undefined {
    return this.read(`${model}:${id}`);
  }

  findByUid(model: string, uid: string): Payload | undefined {
    const key = this.byUid.get(`${model}:${uid}`);
    return key ? this.read(key) : undefined;
  }

  consumed(model: string, id: string, at: number): void {
    const w = this.byKey.get(`${model}:${id}`);
    if (w) w.consumed = at;
  }

  forget(model: string, id: string): void {
    this.drop(`${model}:${id}`);
  }

  forgetGrant(grantId: string): void {
    for (const key of this.byGrant.get(grantId) ?? []) this.drop(key);
    this.byGrant.delete(grantId);
  }

  /** A kept artefact, as findWhere would read it; undefined when not kept (the caller reads the table). */
  private read(key: string): Payload | undefined {
    const w = this.byKey.get(key);
    if (!w) return undefined;
    // Expired: read the table, which answers "not found" the same way.
    if (w.expiresAt !== null && w.expiresAt <= Date.now()) {
      this.drop(key);
      return undefined;
    }
    const payload = JSON.parse(w.json) as Payload;
    return w.consumed !== null ? { ...payload, consumed: w.consumed } : payload;
  }

  private drop(key: string): void {
    const w = this.byKey.get(key);
    if (!w) return;
    this.byKey.delete(key);
    const model = key.slice(0, key.indexOf(':'));
    if (w.uid && this.byUid.get(`${model}:${w.uid}`) === key) this.byUid.delete(`${model}:${w.uid}`);
    if (w.grantId) {
      const set = this.byGrant.get(w.grantId);
      set?.delete(key);
      if (set?.size === 0) this.byGrant.delete(w.grantId);
    }
  }

  private dropOldest(): void {
    // Sweeping out the expired walks every entry: at most once a second, not at every write once full (that made each
    // write cost a walk of the whole map under load).
    const now = Date.now();
    if (now - this.sweptAt >= 1_000) {
      this.sweptAt = now;
      for (const [key, w] of this.byKey) {
        if (w.expiresAt !== null && w.expiresAt <= now) this.drop(key);
      }
    }
    while (this.byKey.size >= WRITTEN_MAX) {
      const oldest = this.byKey.keys().next().value;
      if (oldest === undefined) break;
      this.drop(oldest);
    }
  }
}

/** One per database, shared by every adapter (and provider) on it in this process. */
const writtenByDatabase = new WeakMap<Database, WrittenArtefacts>();

export function writtenArtefactsOf(db: Database): WrittenArtefacts {
  let w = writtenByDatabase.get(db);
  if (!w) {
    w = new WrittenArtefacts();
    writtenByDatabase.set(db, w);
  }
  return w;
}
