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
  NOTIFICATIONS_TRANSPORT: z
    .enum(['file', 'smtp', 'notify'])
    .default('file')
    .describe(
      'How messages to people (one-time codes, unlock codes, expiry warnings) are sent: `smtp` (email through SMTP_HOST), `notify` (GOV.UK Notify: email, and SMS with NOTIFY_SMS_TEMPLATE_ID), or `file` (development: appended to NOTIFICATIONS_FILE).',
    ),
  NOTIFICATIONS_FILE: z
    .string()
    .optional()
    .describe(
      'File the `file` notification transport appends messages to (JSON lines). Default: DATA_DIR/outbox/notifications.jsonl.',
    ),
  NOTIFICATIONS_MAX_ATTEMPTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(50)
    .default(10)
    .describe(
      'Tries to deliver a message (backoff from 30 s doubling to at most an hour between them) before it is marked failed and shown to the RA.',
    ),
  SMTP_HOST: z
    .string()
    .regex(/^[A-Za-z0-9.:[\]-]{1,253}$/, 'must be a host name or address')
    .optional()
    .describe('Mail server for NOTIFICATIONS_TRANSPORT=smtp.'),
  SMTP_PORT: z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .optional()
    .describe('Mail server port. Default: 587 with STARTTLS, 465 with SMTP_SECURITY=tls, 25 with none.'),
  SMTP_SECURITY: z
    .enum(['starttls', 'tls', 'none'])
    .default('starttls')
    .describe(
      '`starttls` (the server must offer STARTTLS; the message is never sent in clear), `tls` (TLS from the first byte, port 465), or `none` (only to a relay on this machine: 127.0.0.1, ::1, localhost).',
    ),
  SMTP_USER: z.string().max(256).optional().describe('User name for SMTP authentication (with SMTP_PASSWORD).'),
  SMTP_PASSWORD: z.string().max(1024).optional().describe('Password for SMTP authentication (with SMTP_USER).'),
  SMTP_FROM: z
    .string()
    .regex(/^([^<>\r\n]{0,100}<[^\s@<>]+@[^\s@<>]+>|[^\s@<>]+@[^\s@<>]+)$/, 'must be an address, or Name <address>')
    .optional()
    .describe('Sender of the emails, e.g. `OpenCIS <no-reply@cis.example.nhs.uk>`. Required with smtp.'),
  SMTP_CA_FILE: z
    .string()
    .optional()
    .describe("PEM file of the CA certificates the mail server's certificate must chain to. Default: the system's."),
  NOTIFY_API_KEY: z
    .string()
    .regex(
      /^[A-Za-z0-9_ -]*-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      'must be a GOV.UK Notify API key: name-SERVICE_ID-SECRET (two UUIDs)',
    )
    .optional()
    .describe('GOV.UK Notify API key for NOTIFICATIONS_TRANSPORT=notify.'),
  NOTIFY_EMAIL_TEMPLATE_ID: z
    .uuid('must be a template ID (a UUID)')
    .optional()
    .describe(
      'Notify email template whose subject is `((subject))` and whose body is `((body))`. Required with notify.',
    ),
  NOTIFY_SMS_TEMPLATE_ID: z
    .uuid('must be a template ID (a UUID)')
    .optional()
    .describe(
      'Notify text message template whose body is `((body))`. Unset: no SMS, one-time codes go to the verified email.',
    ),
  NOTIFY_BASE_URL: z
    .url()
    .default('https://api.notifications.service.gov.uk')
    .describe('GOV.UK Notify API (https; http only to this machine).'),
  CARD_EXPIRY_SPREAD_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .max(60)
    .default(14)
    .describe(
      'Card certificates (new and renewed) expire on the least busy day within ± this many days of two years, so certificates issued together do not expire together. 0: exactly 730 days.',
    ),
  CARD_EXPIRY_ALERT_PERCENT: z.coerce
    .number()
    .min(0.1)
    .max(100)
    .default(5)
    .describe(
      "Share of the next 12 months' certificate expiries one day may hold before the expiry-wave alert metric fires (and the forecast marks the day).",
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
  const problems = notificationProblems(c);
  if (problems.length > 0) throw new ConfigError(problems);
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

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** Settings of the notification transports that only make sense together; each problem names its variable. */
function notificationProblems(c: RawConfig): string[] {
  const problems: string[] = [];
  const smtpSet = (
    ['SMTP_HOST', 'SMTP_PORT', 'SMTP_USER', 'SMTP_PASSWORD', 'SMTP_FROM', 'SMTP_CA_FILE'] as const
  ).filter((k) => c[k] !== undefined);
  const notifySet = (['NOTIFY_API_KEY', 'NOTIFY_EMAIL_TEMPLATE_ID', 'NOTIFY_SMS_TEMPLATE_ID'] as const).filter(
    (k) => c[k] !== undefined,
  );
  if (c.NOTIFICATIONS_TRANSPORT !== 'smtp' && smtpSet.length > 0) {
    problems.push(`NOTIFICATIONS_TRANSPORT: is ${c.NOTIFICATIONS_TRANSPORT} but ${smtpSet.join(', ')} set (smtp?)`);
  }
  if (c.NOTIFICATIONS_TRANSPORT !== 'notify' && notifySet.length > 0) {
    problems.push(`NOTIFICATIONS_TRANSPORT: is ${c.NOTIFICATIONS_TRANSPORT} but ${notifySet.join(', ')} set (notify?)`);
  }
  if (c.NOTIFICATIONS_TRANSPORT === 'smtp') {
    if (!c.SMTP_HOST) problems.push('SMTP_HOST: required with NOTIFICATIONS_TRANSPORT=smtp');
    if (!c.SMTP_FROM) problems.push('SMTP_FROM: required with NOTIFICATIONS_TRANSPORT=smtp');
    if (c.SMTP_USER !== undefined && c.SMTP_PASSWORD === undefined) {
      problems.push('SMTP_PASSWORD: required with SMTP_USER');
    }
    if (c.SMTP_PASSWORD !== undefined && c.SMTP_USER === undefined) {
      problems.push('SMTP_USER: required with SMTP_PASSWORD');
    }
    // One-time codes and passwords must never cross a network in clear: no TLS is for a relay on this machine only.
    if (c.SMTP_SECURITY === 'none' && c.SMTP_HOST && !LOOPBACK_HOSTS.has(c.SMTP_HOST.toLowerCase())) {
      problems.push('SMTP_SECURITY: none is allowed only to a relay on this machine (127.0.0.1, ::1, localhost)');
    }
  }
  if (c.NOTIFICATIONS_TRANSPORT === 'notify') {
    if (!c.NOTIFY_API_KEY) problems.push('NOTIFY_API_KEY: required with NOTIFICATIONS_TRANSPORT=notify');
    if (!c.NOTIFY_EMAIL_TEMPLATE_ID) {
      problems.push('NOTIFY_EMAIL_TEMPLATE_ID: required with NOTIFICATIONS_TRANSPORT=notify');
    }
    const url = new URL(c.NOTIFY_BASE_URL);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
      problems.push('NOTIFY_BASE_URL: must be https (http only to this machine)');
    }
  }
  return problems;
}
