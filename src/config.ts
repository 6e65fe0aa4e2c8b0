import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * Every setting OpenCIS reads, from environment variables, with its default. README's configuration table lists
 * the same names; a test checks that the two agree.
 */
export const configSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000).describe('TCP port the server listens on.'),
  HOST: z
    .string()
    .default('127.0.0.1')
    .describe('Address to listen on (0.0.0.0 to accept connections from other hosts).'),
  PUBLIC_URL: z
    .url()
    .optional()
    .describe('The URL people and applications use to reach this server. Default http://localhost:PORT.'),
  DATA_DIR: z
    .string()
    .default('./data')
    .describe('Directory for the embedded PGlite database (used when DATABASE_URL is unset).'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional()
    .describe('PostgreSQL server to use instead of the embedded database, e.g. postgres://user@host:5432/opencis.'),
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/)
    .optional()
    .describe('Schema inside DATABASE_URL to keep OpenCIS tables in (created if missing). Default: the search path.'),
  DATABASE_POOL_SIZE: z.coerce
    .number()
    .int()
    .min(1)
    .max(200)
    .default(10)
    .describe('Connections to a PostgreSQL server.'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// URL')
    .optional()
    .describe('Redis for state shared by several OpenCIS nodes. Unset: single node, state kept in the database.'),
  SHUTDOWN_DRAIN_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(120)
    .default(0)
    .describe(
      'On SIGTERM, how long the node fails readiness while still serving before it stops accepting requests: longer than the load balancer takes to notice (HAProxy: fall × inter). 0 for a single node.',
    ),
  CIS1_ASSERTION_REUSE_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(30)
    .default(30)
    .describe(
      'CIS1: how long a signed role assertion may be handed again to the same application for the same ticket, after every live check has passed and nothing it says has changed (its ID and IssueInstant repeat). 0 signs every validation afresh.',
    ),
  OIDC_PATH: z
    .string()
    .regex(/^\/[A-Za-z0-9/_-]{0,200}[A-Za-z0-9_-]$/, 'must be a path such as /oidc')
    .default('/oidc')
    .describe('Path of the OpenID Connect issuer under PUBLIC_URL: the issuer is PUBLIC_URL + OIDC_PATH.'),
  TRUST_PROXY: z
    .string()
    .trim()
    .default('false')
    .transform((v, zctx): boolean | number | string[] => {
      if (v === 'true' || v === 'false') return v === 'true';
      if (/^[1-9][0-9]?$/.test(v)) return Number(v);
      const addresses = v.split(',').map((a) => a.trim());
      if (addresses.every((a) => isProxyAddress(a))) return addresses;
      zctx.addIssue({
        code: 'custom',
        message:
          'must be false, true, a number of proxy hops (1–99), or a comma-separated list of proxy addresses/CIDRs',
      });
      return z.NEVER;
    })
    .describe(
      "Which X-Forwarded-For/-Proto to believe: false (none), the load balancers' addresses or CIDRs (e.g. 10.0.0.5,10.1.0.0/16 — recommended), a hop count, or true (every hop: only if the load balancer replaces any X-Forwarded-For the client sent).",
    ),
  OUTBOUND_ALLOWED_RANGES: z
    .string()
    .trim()
    .default('')
    .refine((v) => v === '' || v.split(',').every((a) => isProxyAddress(a.trim())), {
      message: 'must be a comma-separated list of addresses or CIDR ranges, e.g. 10.20.0.0/16,fd00:20::/48',
    })
    .describe(
      "Address ranges the server may send its own requests to although they are not public (relying parties' jwks_uri and back-channel logout on a closed health network; tests): comma-separated addresses or CIDRs. Every other loopback, private, link-local (incl. 169.254.169.254), CGNAT, ULA, multicast or reserved address is refused, after DNS resolution, at registration and at connect time.",
    ),
  OUTBOUND_ALLOW_HTTP: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .describe(
      'Allow plain http (not https) for the server’s own requests to addresses in OUTBOUND_ALLOWED_RANGES only (tests, closed networks). Everything else is https only.',
    ),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Log detail.'),
  DEMO_DATA: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true')
    .describe('Seed demonstration data on first start of an empty database (demo organisations, positions, people).'),
  ALLOW_EXAMPLE_NI_PREFIX: z
    .enum(['true', 'false'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true'))
    .describe("Accept HMRC's example NI prefix QQ. Default: the value of DEMO_DATA."),
  SECRETS_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes, base64-encoded (openssl rand -base64 32)')
    .optional()
    .describe(
      'Key that encrypts stored secrets (CA keys, card unblock secrets, TOTP seeds). Default: DATA_DIR/secrets.key.',
    ),
  AUDIT_KEY_FILE: z
    .string()
    .optional()
    .describe(
      'File of the keys the audit trail is signed with (HMAC-SHA-256), one per line, newest first: a 32-byte base64 key (openssl rand -base64 32) or the word secrets-key (the key derived from SECRETS_KEY). The first signs new events and seals; the others only verify what they signed. Keep it away from the database and its backups. Default: the key derived from SECRETS_KEY.',
    ),
  AUDIT_SEAL_SINK: z
    .string()
    .optional()
    .describe(
      'File every audit seal is also appended to as one JSON line, outside the database (another disk or host, chattr +a, or a log shipper to write-once storage); audit verify then reports any seal the database has lost or changed. Default: none.',
    ),
  WEBAUTHN_RP_ID: z
    .string()
    .regex(/^[a-z0-9.-]{1,253}$/)
    .optional()
    .describe('WebAuthn relying-party ID (a registrable domain of PUBLIC_URL). Default: the host name of PUBLIC_URL.'),
  WEBAUTHN_AAL3_AAGUIDS: z
    .string()
    .default('')
    .describe(
      'Comma-separated AAGUIDs of security-key and platform-authenticator models whose attested, device-bound keys count as AAL3. Others count as AAL2.',
    ),
  WEBAUTHN_ATTESTATION_ROOTS: z
    .string()
    .optional()
    .describe(
      "PEM file of authenticator manufacturers' attestation root certificates (e.g. from the FIDO Metadata Service). A key is AAL3 only if its attestation chains to one of them (and its AAGUID is allowed). Re-read when the file changes.",
    ),
  CARD_TRANSPORT_SO_PIN: z
    .string()
    .regex(/^[\x21-\x7e]{4,64}$/, 'must be 4 to 64 printable characters')
    .optional()
    .describe(
      'The security-officer PIN blank cards arrive with from the card supplier. Issuing replaces it with a per-card secret. Unset: card issuing is off.',
    ),
  CARD_AGENT_URL: z
    .url()
    .default('http://127.0.0.1:7327')
    .describe("Where OpenCIS pages find the card agent on the user's computer."),
  NOTIFICATIONS_FILE: z
    .string()
    .optional()
    .describe(
      'File the default notification transport appends messages to (JSON lines). Default: DATA_DIR/outbox/notifications.jsonl.',
    ),
  RBAC_CATALOGUE: z
    .string()
    .optional()
    .describe('National RBAC catalogue file to load at start. Default: the bundled one.'),
});

export type RawConfig = z.output<typeof configSchema>;

export interface Config extends Omit<RawConfig, 'PUBLIC_URL' | 'ALLOW_EXAMPLE_NI_PREFIX'> {
  PUBLIC_URL: string;
  ALLOW_EXAMPLE_NI_PREFIX: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(Object.keys(configSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const res = configSchema.safeParse(known);
  if (!res.success) {
    throw new ConfigError(res.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const c = res.data;
  return {
    ...c,
    PUBLIC_URL: (c.PUBLIC_URL ?? `http://localhost:${c.PORT}`).replace(/\/+$/, ''),
    ALLOW_EXAMPLE_NI_PREFIX: c.ALLOW_EXAMPLE_NI_PREFIX ?? c.DEMO_DATA,
  };
}

/** The table README shows, generated from the schema so the two never drift. */
export function configTable(): string {
  const lines = ['| variable | default | meaning |', '|---|---|---|'];
  for (const [name, schema] of Object.entries(configSchema.shape)) {
    const parsed = schema.safeParse(undefined);
    const def = parsed.success && parsed.data !== undefined ? `\`${String(parsed.data)}\`` : '—';
    lines.push(`| \`${name}\` | ${def} | ${schema.description ?? ''} |`);
  }
  return lines.join('\n');
}

/**
 * Fastify's `trustProxy` for a TRUST_PROXY value: the named proxies only (an address list), the last N hops (a count:
 * trust the hop at index i < N, as proxy-addr does with a number), every hop, or none.
 */
export function trustProxyOption(
  value: boolean | number | string[],
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof value !== 'number') return value;
  return (_address, hop) => hop < value;
}

/** An IPv4 or IPv6 address, optionally with a /prefix (what Fastify's trustProxy accepts as a list). */
function isProxyAddress(value: string): boolean {
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length > 0 || !address) return false;
  const kind = isIP(address);
  if (kind === 0) return false;
  if (prefix === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (kind === 4 ? 32 : 128);
}
