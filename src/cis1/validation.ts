import { createHash, timingSafeEqual } from 'node:crypto';
import { ukDate } from '../domain/dates.ts';
import type { Actor } from '../domain/policy.ts';
import { clientMetadataForProvider } from '../services/clients.ts';
import type { ServiceContext } from '../services/context.ts';
import { hashToken } from '../services/sessions.ts';
import type { LivenessRow, ValidationRow } from '../storage/repositories/cis1-tickets.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { type RoleAssertionInput, signedRoleAssertion } from './assertion.ts';
import { assertionContent } from './assertion-content.ts';
import { Refusal, withRefusals } from './refusals.ts';
import { SECRET_PATTERN, type SessionRow, sessionProblem } from './session-store.ts';

export type { LivenessRow, ValidationRow } from '../storage/repositories/cis1-tickets.ts';
export { roleAssertionFor } from './assertion-content.ts';

import { WORKSTATION_ID_PATTERN } from './sessions.ts';
import { activeSigningKey, signingKeyById } from './signing-key.ts';

/**
 * Ticket validation (DOMAIN §8): an application sends a ticket with its own client credentials and gets a signed SAML
 * role assertion for the person and the role profile they selected — built from the database at this moment. Every
 * validation reads the live state of the ticket from the database — session (ended? which workstation? idle and
 * 12-hour limits), card, the certificate it signed in with and the card's current one, person, and whether the
 * selected role profile is in effect today — and makes every check on it (checkLive, the same code on both paths
 * below); nothing about people, cards or roles is cached, so a lock, revocation, leaver or ended role refuses the very
 * next validation. What is cached: the signing key (by key id, read in the same query), the RBAC activity inclusions
 * (by catalogue version, read in the same query), and, for ASSERTION_REUSE_MS, the signed assertion last handed to an
 * application for a ticket, with the stamp of what it says (see ASSERTION_REUSE_MS).
 */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

export interface TicketValidationInput {
  ticket: unknown;
  /** Optional: the workstation id the card agent gave with the ticket; when present it must be the ticket's. */
  workstationId?: unknown;
  clientId: unknown;
  clientSecret: unknown;
  method: ClientAuthMethod;
}

export interface ValidatedTicket {
  assertion: string;
  userId: string;
  personRoleId: string;
}

const CLIENT_ID_PATTERN = /^[A-Za-z0-9._-]{3,100}$/;

function json<T>(value: T | string | null): T | null {
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}

/**
 * Everything a validation needs about a ticket, in one call of cis1_ticket_state (migration 0009: the role profile is
 * read with the rules of effectiveRoles; test/cis1/cis1.test.ts checks both give the same role data).
 * Exported for bench/cis1.ts.
 */
export async function readTicket(repos: Repositories, ticket: string, now: Date): Promise<ValidationRow | undefined> {
  const state = await repos.cis1Tickets.ticketState(hashToken(ticket), ukDay(now));
  return json(state ?? null) ?? undefined;
}

/** The light read of a ticket, for validations that hold a signed assertion (exported for bench/cis1.ts and tests). */
export async function readTicketLiveness(
  repos: Repositories,
  ticket: string,
  now: Date,
): Promise<LivenessRow | undefined> {
  return liveness(repos, hashToken(ticket), ukDay(now));
}

async function liveness(repos: Repositories, ticketHash: string, day: string): Promise<LivenessRow | undefined> {
  return json((await repos.cis1Tickets.ticketLiveness(ticketHash, day)) ?? null) ?? undefined;
}

/** The full state and the stamp of the same snapshot (the repository's ticketStateWithStamp). */
async function stateWithStamp(
  repos: Repositories,
  ticketHash: string,
  day: string,
): Promise<{ state: ValidationRow | undefined; live: LivenessRow | undefined }> {
  const row = await repos.cis1Tickets.ticketStateWithStamp(ticketHash, day);
  return { state: json(row?.state ?? null) ?? undefined, live: json(row?.live ?? null) ?? undefined };
}

/**
 * ukDate builds an Intl formatter on every call (a large share of a validation's CPU); the UK date changes only on a
 * minute boundary, so it is worked out at most once a minute.
 */
let day: { minute: number; value: string } | undefined;

function ukDay(now: Date): string {
  const minute = Math.floor(now.getTime() / 60_000);
  if (day?.minute !== minute) day = { minute, value: ukDate(now) };
  return day.value;
}

let inclusions: { key: string; map: Map<string, string[]> } | undefined;

async function activityInclusions(repos: Repositories, key: string): Promise<Map<string, string[]>> {
  if (inclusions?.key === key) return inclusions.map;
  inclusions = { key, map: await repos.accessFacts.activityInclusionsUncached() };
  return inclusions.map;
}

function sameSecret(given: string, expected: string): boolean {
  // Hashing first makes the comparison constant-time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The relying-party registry's client, authenticated with its secret by the method it registered. */
async function authenticateClient(ctx: ServiceContext, input: TicketValidationInput): Promise<string> {
  const refuse = (reason: string, clientId: string | null) =>
    new Refusal('cis1.client_invalid', { action: 'cis1.validation_refused', reason, after: { clientId } });
  if (typeof input.clientId !== 'string' || !CLIENT_ID_PATTERN.test(input.clientId)) {
    throw refuse('malformed or missing client ID', null);
  }
  const clientId = input.clientId;
  if (typeof input.clientSecret !== 'string' || input.clientSecret.length === 0 || input.clientSecret.length > 200) {
    throw refuse('malformed or missing client secret', clientId);
  }
  const metadata = await clientMetadataForProvider(ctx.repos, ctx.sealer, clientId);
  if (!metadata) throw refuse('unknown or disabled application', clientId);
  if (metadata.token_endpoint_auth_method !== input.method || typeof metadata.client_secret !== 'string') {
    throw refuse(
      `client authenticated with ${input.method}, registered for ${metadata.token_endpoint_auth_method}`,
      clientId,
    );
  }
  if (!sameSecret(input.clientSecret, metadata.client_secret)) throw refuse('wrong client secret', clientId);
  return clientId;
}

/**
 * How long a signed assertion may be handed out again, unchanged, to the same application for the same ticket.
 *
 * Signing is most of the cost of a validation (an RSA-2048 signature alone is about a millisecond of CPU), and
 * building the role data (json_agg of the position's job roles, activities, baseline, areas of work and workgroups)
 * most of the rest; applications validate the same ticket again and again to learn whether the session is still
 * alive. So the signed assertion last handed to an application for a ticket is kept for this long, with the `stamp`
 * of the state it was built from (cis1_ticket_liveness, migration 0013, read in the same statement as that state).
 * A validation that holds one still in its window reads the ticket's live state with the light query and makes every
 * check on it (checkLive: session ended or replaced, workstation, card, certificates, person, idle and 12-hour
 * limits, role profile in effect today) before anything else; only when all pass and the stamp read now is the kept
 * one does it hand the kept assertion out again. Otherwise it reads the full state and builds the assertion as on a
 * first validation. So:
 * - a session ended by card removal, lock, revocation, leaving, suspension, time-out or replacement, or a role
 *   profile no longer in effect, is refused by the very next validation, kept assertion or not (nothing to
 *   invalidate: the checks come before the cache);
 * - any change to what the assertion would say gives another stamp, so a fresh assertion: the stamp holds the values
 *   themselves where they are short (session, role switch, names, identity assurance, role profile's organisation and
 *   position, organisation name) and versions where they are not — positions.content_version, raised by triggers on
 *   any change to a position's job roles, activities, areas of work or workgroups (or a workgroup's name), the RBAC
 *   catalogue key and the signing key id.
 * What repeats within the window is the assertion's ID, IssueInstant and NotBefore/NotOnOrAfter: an application that
 * validates the same ticket twice within it gets the same signed bytes. That is sound here: the assertion comes back
 * over the application's own authenticated back-channel request, not through a browser, so there is no front-channel
 * replay for an ID check to stop (the replay rule of saml-profiles §4.1.4.5 is for the browser SSO profile), and it
 * is never valid for longer than a fresh one: NotOnOrAfter stays IssueInstant + ASSERTION_LIFETIME_MS, so a reused
 * assertion has at most that long left, and at least ASSERTION_LIFETIME_MS − ASSERTION_REUSE_MS.
 * Validation writes nothing when it succeeds: the idle limit is renewed by the agent's heartbeat (renewCis1Session),
 * not by validations, so there is no per-validation write to throttle.
 */
export const ASSERTION_REUSE_MS = 30_000;
/** At most this many signed assertions are kept (about 7 KB each), oldest dropped first. */
const REUSE_MAX_ENTRIES = 4_096;

interface Kept {
  /** The stamp of the state the assertion was built from. */
  stamp: string;
  /** SHA-256 of everything the assertion says except its ID and times (content unchanged under a new stamp). */
  digest: string;
  assertion: string;
  signedAt: number;
}

/**
 * Signed assertions by ticket hash, application and issuer, in the order they were signed (so the oldest is first,
 * and expires first).
 */
const kept = new Map<string, Kept>();

function keptFor(cacheKey: string, at: number, reuseMs: number): Kept | undefined {
  const entry = kept.get(cacheKey);
  // A clock set back (tests do) must not hand out an assertion issued in the future.
  return entry && at >= entry.signedAt && at - entry.signedAt < reuseMs ? entry : undefined;
}

function keep(cacheKey: string, entry: Kept): void {
  for (const [oldest, e] of kept) {
    if (kept.size < REUSE_MAX_ENTRIES && entry.signedAt - e.signedAt < ASSERTION_REUSE_MS) break;
    kept.delete(oldest);
  }
  kept.delete(cacheKey);
  kept.set(cacheKey, entry);
}

function contentDigest(content: Omit<RoleAssertionInput, 'now'>, keyId: string): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        keyId,
        content.issuer,
        content.audience,
        content.sessionId,
        content.userId,
        content.authenticatedAt.getTime(),
        content.sessionNotOnOrAfter.getTime(),
        content.attributes,
      ]),
    )
    .digest('base64url');
}

/** Validates a ticket for an application and returns the signed role assertion, or refuses with a catalogued code. */
export async function validateTicket(
  ctx: ServiceContext,
  issuer: string,
  input: TicketValidationInput,
  options: ValidationOptions = {},
): Promise<ValidatedTicket> {
  const reuseMs = Math.min(options.assertionReuseMs ?? ASSERTION_REUSE_MS, ASSERTION_REUSE_MS);
  return withRefusals(ctx, () => validate(ctx, issuer, input, reuseMs));
}

export interface ValidationOptions {
  /** How long a signed assertion may be reused: at most (and by default) ASSERTION_REUSE_MS; 0 signs every one. */
  assertionReuseMs?: number;
}

type Refuse = (
  code: ConstructorParameters<typeof Refusal>[0],
  reason: string,
  row?: SessionRow,
  end?: Refusal['end'],
) => Refusal;

/**
 * Every check a validation makes on the live state of its ticket, on either read (the full state or the light one:
 * both carry the same session, card, certificate and person columns, and person_orgid under the same conditions).
 */
function checkLive(
  row: SessionRow & { person_orgid: string | null },
  now: Date,
  workstationId: string | undefined,
  refused: Refuse,
): void {
  if (row.ended_at)
    throw refused('cis1.session_ended', `ticket presented after its session ended (${row.end_reason})`, row);
  if (workstationId !== undefined && workstationId !== row.workstation_id) {
    throw refused('cis1.workstation_mismatch', 'ticket presented with another workstation id', row);
  }
  const problem = sessionProblem(row, now);
  if (problem) {
    const expired = problem === 'idle_timeout' || problem === 'max_age';
    throw refused(expired ? 'cis1.ticket_expired' : 'cis1.session_ended', problem, row, { row, reason: problem });
  }
  if (row.person_orgid === null) throw refused('cis1.role_not_effective', 'selected role profile not in effect', row);
}

async function validate(
  ctx: ServiceContext,
  issuer: string,
  input: TicketValidationInput,
  reuseMs: number,
): Promise<ValidatedTicket> {
  const clientId = await authenticateClient(ctx, input);
  const actor: Actor = { kind: 'system', id: `cis1-client:${clientId}` };
  const refused: Refuse = (code, reason, row, end) =>
    new Refusal(
      code,
      {
        action: 'cis1.validation_refused',
        actor,
        reason,
        userId: row?.user_id ?? null,
        after: { clientId, ...(row ? { sessionId: row.session_id } : {}) },
      },
      end,
    );
  if (typeof input.ticket !== 'string' || !SECRET_PATTERN.test(input.ticket)) {
    throw refused('cis1.ticket_invalid', 'malformed ticket');
  }
  const workstationId = input.workstationId;
  if (
    workstationId !== undefined &&
    (typeof workstationId !== 'string' || !WORKSTATION_ID_PATTERN.test(workstationId))
  ) {
    throw refused('cis1.ticket_invalid', 'malformed workstation id');
  }
  const now = ctx.clock.now();
  const at = now.getTime();
  const ticketHash = hashToken(input.ticket);
  const day = ukDay(now);
  const cacheKey = `${ticketHash} ${clientId} ${issuer}`;

  // The light path: an assertion for this ticket and application is held, within its window.
  const held = reuseMs > 0 ? keptFor(cacheKey, at, reuseMs) : undefined;
  if (held) {
    const live = await liveness(ctx.repos, ticketHash, day);
    if (!live) throw refused('cis1.ticket_invalid', 'unknown ticket');
    checkLive(live, now, workstationId, refused);
    if (live.stamp === held.stamp) {
      return { assertion: held.assertion, userId: live.user_id, personRoleId: live.person_roleid! };
    }
  }

  // The full path: a first validation, a window passed, or something the assertion says has changed.
  const read =
    reuseMs > 0
      ? await stateWithStamp(ctx.repos, ticketHash, day)
      : { state: await readTicket(ctx.repos, input.ticket, now), live: undefined };
  const { state: row, live } = read;
  if (!row) throw refused('cis1.ticket_invalid', 'unknown ticket');
  checkLive(row, now, workstationId, refused);
  const key =
    (row.signing_key_id && (await signingKeyById(ctx.repos, ctx.sealer, row.signing_key_id))) ||
    (await activeSigningKey(ctx));
  const includes = await activityInclusions(ctx.repos, row.catalogue_key);
  const options = { issuer, audience: clientId, includes };
  const result = (assertion: string) => ({ assertion, userId: row.user_id, personRoleId: row.person_roleid! });
  if (reuseMs <= 0) return result(signedRoleAssertion({ ...assertionContent(row, options), now }, key));
  const content = assertionContent(row, options);
  const digest = contentDigest(content, key.keyId);
  // The light path may hand it out only under the stamp of the very state it was built from, signed with the key that
  // state names. When that is not so (the signing key was created just now), '' (never a stamp) sends the next
  // validation here again, where the digest still lets it be reused.
  const stamp = live?.session_id === row.session_id && live.signing_key_id === key.keyId ? live.stamp : '';
  const same = keptFor(cacheKey, at, reuseMs);
  if (same && same.digest === digest) {
    // Nothing the assertion says has changed (a stamp can change without that: a name set to what it was).
    same.stamp = stamp;
    return result(same.assertion);
  }
  const assertion = signedRoleAssertion({ ...content, now }, key);
  keep(cacheKey, { stamp, digest, assertion, signedAt: at });
  return result(assertion);
}
