/**
 * The relying-party registry's rows (oidc_clients): registration, status, settings, re-keying, and the lookup
 * oidc-provider makes on every request of a flow (services/clients.ts caches it).
 */
import type { Queryable } from '../database.ts';

type Json<T> = T | string;
const parsed = <T>(v: Json<T>): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

/** A registered client as the console and the API show it. */
export interface ClientRecord {
  clientId: string;
  name: string;
  metadata: Record<string, unknown>;
  minimumAal: number;
  status: 'active' | 'disabled';
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  odsCode: string | null;
  statusChangedBy: string | null;
}

interface ClientRow {
  client_id: string;
  name: string;
  metadata: Json<Record<string, unknown>>;
  minimum_aal: number;
  status: 'active' | 'disabled';
  created_by: string;
  created_at: Date;
  updated_at: Date;
  ods_code: string | null;
  status_changed_by: string | null;
}

const CLIENT_COLUMNS =
  'client_id, name, metadata, minimum_aal, status, created_by, created_at, updated_at, ods_code, status_changed_by';

function recordOf(r: ClientRow): ClientRecord {
  return {
    clientId: r.client_id,
    name: r.name,
    metadata: parsed(r.metadata),
    minimumAal: r.minimum_aal,
    status: r.status,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    odsCode: r.ods_code,
    statusChangedBy: r.status_changed_by,
  };
}

export async function clientExists(q: Queryable, clientId: string): Promise<boolean> {
  const exists = await q.query('SELECT 1 FROM oidc_clients WHERE client_id = $1', [clientId]);
  return exists.rows.length > 0;
}

export interface NewClient {
  clientId: string;
  name: string;
  metadata: Record<string, unknown>;
  secretSealed: string | null;
  minimumAal: number;
  createdBy: string;
  at: Date;
  odsCode: string | null;
}

export async function insertClient(q: Queryable, c: NewClient): Promise<void> {
  await q.query(
    `INSERT INTO oidc_clients (client_id, name, metadata, secret_sealed, minimum_aal, created_by, created_at, updated_at, ods_code)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)`,
    [c.clientId, c.name, JSON.stringify(c.metadata), c.secretSealed, c.minimumAal, c.createdBy, c.at, c.odsCode],
  );
}

/** Who owns a client and who last changed its status (what the policy needs). */
export async function clientOwnership(
  q: Queryable,
  clientId: string,
): Promise<{ odsCode: string | null; status: string; statusChangedBy: string | null } | undefined> {
  const { rows } = await q.query<{ ods_code: string | null; status: string; status_changed_by: string | null }>(
    'SELECT ods_code, status, status_changed_by FROM oidc_clients WHERE client_id = $1',
    [clientId],
  );
  const row = rows[0];
  return row && { odsCode: row.ods_code, status: row.status, statusChangedBy: row.status_changed_by };
}

export async function setClientStatus(
  q: Queryable,
  clientId: string,
  status: 'active' | 'disabled',
  changedBy: string,
  at: Date,
): Promise<void> {
  await q.query('UPDATE oidc_clients SET status = $2, status_changed_by = $3, updated_at = $4 WHERE client_id = $1', [
    clientId,
    status,
    changedBy,
    at,
  ]);
}

export interface ClientSummary {
  clientId: string;
  name: string;
  odsCode: string | null;
  metadata: Record<string, unknown>;
  minimumAal: number;
  status: 'active' | 'disabled';
}

/** The clients owned by the organisations given (null: every client), oldest first. */
export async function listClients(q: Queryable, odsCodes: readonly string[] | null): Promise<ClientSummary[]> {
  const { rows } = await q.query<{
    client_id: string;
    name: string;
    ods_code: string | null;
    metadata: Json<Record<string, unknown>>;
    minimum_aal: number;
    status: 'active' | 'disabled';
  }>(
    `SELECT client_id, name, ods_code, metadata, minimum_aal, status FROM oidc_clients
     WHERE $1::text[] IS NULL OR ods_code = ANY($1) ORDER BY created_at`,
    [odsCodes === null ? null : [...odsCodes]],
  );
  return rows.map((r) => ({
    clientId: r.client_id,
    name: r.name,
    odsCode: r.ods_code,
    metadata: parsed(r.metadata),
    minimumAal: r.minimum_aal,
    status: r.status,
  }));
}

/** What oidc-provider's client lookup needs: metadata, sealed secret, status, least assurance level. */
export async function clientForProvider(
  q: Queryable,
  clientId: string,
): Promise<
  { metadata: Record<string, unknown>; secretSealed: string | null; status: string; minimumAal: number } | undefined
> {
  const { rows } = await q.query<{
    metadata: Json<Record<string, unknown>>;
    secret_sealed: string | null;
    status: string;
    minimum_aal: number;
  }>('SELECT metadata, secret_sealed, status, minimum_aal FROM oidc_clients WHERE client_id = $1', [clientId]);
  const row = rows[0];
  if (!row) return undefined;
  return {
    metadata: parsed(row.metadata),
    secretSealed: row.secret_sealed,
    status: row.status,
    minimumAal: row.minimum_aal,
  };
}

/** One client, locked for update when `lock` (a change that reads it first). */
export async function findClient(q: Queryable, clientId: string, lock = false): Promise<ClientRecord | undefined> {
  const { rows } = await q.query<ClientRow>(
    `SELECT ${CLIENT_COLUMNS}
     FROM oidc_clients WHERE client_id = $1${lock ? ' FOR UPDATE' : ''}`,
    [clientId],
  );
  return rows[0] && recordOf(rows[0]);
}

export async function updateClientRegistration(
  q: Queryable,
  clientId: string,
  change: { name: string; metadata: Record<string, unknown>; minimumAal: number; at: Date },
): Promise<ClientRecord> {
  const { rows } = await q.query<ClientRow>(
    `UPDATE oidc_clients SET name = $2, metadata = $3, minimum_aal = $4, updated_at = $5 WHERE client_id = $1
       RETURNING ${CLIENT_COLUMNS}`,
    [clientId, change.name, JSON.stringify(change.metadata), change.minimumAal, change.at],
  );
  return recordOf(rows[0]!);
}

/** New keys or a new sealed secret (null: keeps the secret it has). */
export async function rekeyClient(
  q: Queryable,
  clientId: string,
  change: { metadata: Record<string, unknown>; secretSealed: string | null; at: Date },
): Promise<ClientRecord> {
  const { rows } = await q.query<ClientRow>(
    `UPDATE oidc_clients SET metadata = $2, secret_sealed = COALESCE($3, secret_sealed), updated_at = $4
       WHERE client_id = $1
       RETURNING ${CLIENT_COLUMNS}`,
    [clientId, JSON.stringify(change.metadata), change.secretSealed, change.at],
  );
  return recordOf(rows[0]!);
}

/** A client's metadata and least assurance level, locked for a settings change. */
export async function clientSettingsForUpdate(
  q: Queryable,
  clientId: string,
): Promise<{ metadata: Record<string, unknown>; minimumAal: number } | undefined> {
  const { rows } = await q.query<{ metadata: Json<Record<string, unknown>>; minimum_aal: number }>(
    'SELECT metadata, minimum_aal FROM oidc_clients WHERE client_id = $1 FOR UPDATE',
    [clientId],
  );
  const row = rows[0];
  return row && { metadata: parsed(row.metadata), minimumAal: row.minimum_aal };
}

export async function updateClientSettings(
  q: Queryable,
  clientId: string,
  change: { metadata: Record<string, unknown>; minimumAal: number; at: Date },
): Promise<void> {
  await q.query('UPDATE oidc_clients SET metadata = $2, minimum_aal = $3, updated_at = $4 WHERE client_id = $1', [
    clientId,
    JSON.stringify(change.metadata),
    change.minimumAal,
    change.at,
  ]);
}

/** The longest access-token lifetime any active client is given (seconds; null when none sets one). */
export async function longestAccessTokenTtl(q: Queryable): Promise<number | null> {
  const { rows } = await q.query<{ ttl: number | string | null }>(
    "SELECT max((metadata->>'urn:opencis:access_token_ttl')::int) AS ttl FROM oidc_clients WHERE status = 'active'",
  );
  const ttl = rows[0]?.ttl;
  return ttl === null || ttl === undefined ? null : Number(ttl);
}
