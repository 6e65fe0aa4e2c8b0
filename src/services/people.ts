import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { isCalendarDate, ukDate } from '../domain/dates.ts';
import { AppError, type ErrorCode } from '../domain/errors.ts';
import { duplicateNameKey, normaliseName } from '../domain/identity/names.ts';
import { isValidNiNumber, normaliseNiNumber } from '../domain/identity/ni-number.ts';
import {
  canChangeStatus,
  type NewPerson,
  newPersonSchema,
  type Person,
  type PersonStatus,
  personStatuses,
} from '../domain/identity/person.ts';
import { isNationalId, nationalIdFromSequence } from '../domain/identity/user-id.ts';
import { isOdsCode, normaliseOdsCode } from '../domain/organisations/organisation.ts';
import { authorize } from '../domain/policy.ts';
import { PG_UNIQUE_VIOLATION, pgConstraint, pgErrorCode } from '../storage/database.ts';
import * as people from '../storage/people.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { subtreeOf } from './organisations.ts';
import { personTarget } from './targets.ts';
import { inputSchema, parseInput } from './validation.ts';

export interface RegisterOptions {
  /**
   * User IDs of duplicate candidates that the RA has looked at and confirmed to be different people (DOMAIN §2).
   * A candidate with the same NI number can never be confirmed different: NI numbers are unique.
   */
  confirmedDifferentFrom?: readonly string[];
}

export function validateNewPerson(
  ctx: Pick<ServiceContext, 'clock' | 'allowExampleNiPrefix'>,
  input: unknown,
): NewPerson {
  return parseInput(
    newPersonSchema({ today: ukDate(ctx.clock.now()), allowExampleNiPrefix: ctx.allowExampleNiPrefix }),
    input,
    personCodes,
  );
}

const personCodes = (issue: z.core.$ZodIssue): ErrorCode =>
  issue.path[0] === 'niNumber'
    ? 'person.invalid_ni_number'
    : issue.path[0] === 'dateOfBirth'
      ? 'person.invalid_date_of_birth'
      : 'request.invalid';

/**
 * A person's details as a route receives them: what no day and no configuration would accept is refused there, with
 * the codes `validateNewPerson` gives; the date of birth against today and example NI prefixes are decided by it.
 */
export const personShapeInput = inputSchema(
  newPersonSchema({ today: '9999-12-31', allowExampleNiPrefix: true }),
  personCodes,
);

/** Duplicate candidates for a would-be new person, for the RA to look at before registering. */
export async function findDuplicates(ctx: ServiceContext, input: unknown): Promise<Person[]> {
  authorize(ctx.actor, 'person:read', { kind: 'national' });
  const p = validateNewPerson(ctx, input);
  return ctx.repos.people.findDuplicateCandidates(duplicateKeys(p));
}

function duplicateKeys(p: NewPerson) {
  const [familyKey, givenKey] = duplicateNameKey(p.familyName, p.givenName).split('|') as [string, string];
  return { niNumber: p.niNumber, familyKey, givenKey, dateOfBirth: p.dateOfBirth };
}

/**
 * Registers a person after the duplicate check. Two registrations of the same person at the same moment are
 * serialised by a transaction-scoped advisory lock on the name + date-of-birth key (and the unique NI index), so exactly
 * one succeeds and the other gets `person.duplicate`.
 */
export async function registerPerson(
  ctx: ServiceContext,
  input: unknown,
  options: RegisterOptions = {},
): Promise<Person> {
  authorize(ctx.actor, 'person:create', { kind: 'national' });
  const p = validateNewPerson(ctx, input);
  const keys = duplicateKeys(p);
  const confirmed = new Set(options.confirmedDifferentFrom ?? []);
  try {
    return await ctx.transaction(async (tx) => {
      await lockIdentity(tx, `${keys.familyKey}|${keys.givenKey}|${keys.dateOfBirth}`);
      if (keys.niNumber) await lockIdentity(tx, `ni|${keys.niNumber}`);
      const candidates = await tx.people.findDuplicateCandidates(keys);
      const blocking = candidates.filter((c) => (p.niNumber && c.niNumber === p.niNumber) || !confirmed.has(c.userId));
      if (blocking.length > 0) {
        throw new AppError('person.duplicate', { candidates: blocking.map((c) => c.userId) });
      }
      const userId = nationalIdFromSequence(await tx.people.nextNationalIdSequence('user_id_seq'));
      const at = ctx.clock.now();
      const person = await tx.people.insertPerson({
        ...p,
        userId,
        status: 'active',
        familyKey: normaliseName(p.familyName),
        givenKey: keys.givenKey,
        at,
      });
      await appendAudit(tx, ctx, {
        action: 'person.registered',
        targetType: 'person',
        targetId: userId,
        before: null,
        after: auditView(person),
        reason: candidates.length > 0 ? `confirmed different from ${candidates.map((c) => c.userId).join(', ')}` : null,
      });
      return person;
    });
  } catch (err) {
    if (pgErrorCode(err) === PG_UNIQUE_VIOLATION && pgConstraint(err) === 'people_ni_number') {
      throw new AppError('person.duplicate', { reason: 'ni_number' });
    }
    throw err;
  }
}

async function lockIdentity(tx: Repositories, key: string): Promise<void> {
  const digest = createHash('sha256').update(key).digest();
  await tx.people.lockForTransaction(digest.readBigInt64BE(0).toString());
}

/**
 * What the audit trail keeps of a person. The trail is read by auditors, so it holds the record's fields as RA staff
 * see them; it never holds secrets (there are none on this record).
 */
function auditView(p: Person): Record<string, unknown> {
  const { createdAt: _c, updatedAt: _u, ...rest } = p;
  return rest;
}

export async function getPerson(ctx: ServiceContext, userId: string): Promise<Person> {
  if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
  authorize(ctx.actor, 'person:read', await personTarget(ctx.repos, ctx.clock, userId));
  const person = await ctx.repos.people.findPersonByUserId(userId);
  if (!person) throw new AppError('person.not_found');
  return person;
}

export async function changePersonStatus(
  ctx: ServiceContext,
  userId: string,
  to: PersonStatus,
  reason: string,
): Promise<Person> {
  if (!isNationalId(userId)) throw new AppError('person.invalid_user_id');
  return ctx.transaction(async (tx) => {
    authorize(ctx.actor, 'person:change_status', await personTarget(tx, ctx.clock, userId));
    const before = await tx.people.findPersonByUserId(userId, true);
    if (!before) throw new AppError('person.not_found');
    if (!canChangeStatus(before.status, to)) {
      throw new AppError('person.invalid_status_change', { from: before.status, to });
    }
    const after = await tx.people.updatePersonStatus(userId, to, ctx.clock.now());
    await appendAudit(tx, ctx, {
      action: 'person.status_changed',
      targetType: 'person',
      targetId: userId,
      before: { status: before.status },
      after: { status: after.status },
      reason,
    });
    return after;
  });
}

export type SearchQuery = (
  | { userId: string }
  | { niNumber: string }
  | { email: string }
  | { familyName: string; givenName?: string; dateOfBirth?: string }
  | Record<never, never>
) & {
  /** Only people who work for this organisation or one within it. With no other term, everyone there. */
  odsCode?: string | null;
  status?: PersonStatus | null;
};

export type SearchSort = people.PersonSort;
export const searchSorts: readonly SearchSort[] = ['name', 'name_desc', 'dob', 'dob_desc'];

export interface SearchPage {
  people: Person[];
  /** Opaque: pass back as `after` for the next page; null on the last page. */
  next: string | null;
  /** Opaque: pass back as `before` for the page before this one; null on the first page. */
  previous: string | null;
  /** When asked for: how many match, up to `people.SEARCH_COUNT_CAP` (`more` says there are more than that). */
  total?: { count: number; more: boolean };
}

/**
 * RA person search by user ID, NI number, email, or name prefix (+ given name prefix, + date of birth), optionally
 * narrowed to an organisation (and those within it) and a status — or everyone in an organisation. National, as CIS
 * is: an RA searches everyone so as not to register a person twice; the person's page then checks their reach.
 */
export async function searchPeople(
  ctx: ServiceContext,
  query: SearchQuery,
  page: {
    limit?: number;
    after?: string | null;
    before?: string | null;
    sort?: SearchSort;
    withTotal?: boolean;
  } = {},
): Promise<SearchPage> {
  authorize(ctx.actor, 'person:read', { kind: 'national' });
  const limit = Math.min(Math.max(page.limit ?? 20, 1), 100);
  const sort = page.sort ?? 'name';
  if (!searchSorts.includes(sort)) {
    throw new AppError('request.invalid', { field: 'sort', message: 'is one of name, name_desc, dob, dob_desc' });
  }
  if (page.after && page.before) {
    throw new AppError('request.invalid', { field: 'after', message: 'give either after or before, not both' });
  }
  const after = page.after ? decodeCursor(page.after, sort) : null;
  const before = page.before ? decodeCursor(page.before, sort) : null;
  const filters: people.PersonFilters = {};
  if (query.status != null) {
    if (!(personStatuses as readonly string[]).includes(query.status)) {
      throw new AppError('request.invalid', { field: 'status', message: `is one of ${personStatuses.join(', ')}` });
    }
    filters.status = query.status;
  }
  if (query.odsCode != null && query.odsCode !== '') {
    const code = normaliseOdsCode(query.odsCode);
    if (!isOdsCode(code)) throw new AppError('request.invalid', { field: 'odsCode', message: 'is not an ODS code' });
    const codes = await subtreeOf(ctx.repos, code);
    if (codes.length === 0) {
      throw new AppError('request.invalid', { field: 'odsCode', message: 'no organisation has that ODS code' });
    }
    filters.odsCodes = codes;
  }
  let search: people.PersonSearch;
  if ('userId' in query) {
    if (!isNationalId(query.userId)) throw new AppError('person.invalid_user_id');
    search = { by: 'userId', userId: query.userId };
  } else if ('niNumber' in query) {
    const ni = normaliseNiNumber(query.niNumber);
    if (!isValidNiNumber(ni, { allowExamplePrefix: true })) throw new AppError('person.invalid_ni_number');
    search = { by: 'niNumber', niNumber: ni };
  } else if ('email' in query) {
    search = { by: 'email', email: query.email.trim().toLowerCase() };
  } else if ('familyName' in query) {
    const familyPrefix = normaliseName(query.familyName);
    if (familyPrefix.length < 2) {
      throw new AppError('request.invalid', {
        field: 'familyName',
        message: 'give at least 2 letters of the family name',
      });
    }
    search = {
      by: 'name',
      familyPrefix,
      givenPrefix: query.givenName ? normaliseName(query.givenName) || null : null,
      dateOfBirth: query.dateOfBirth ?? null,
    };
  } else if (filters.odsCodes) {
    search = { by: 'organisation' };
  } else {
    throw new AppError('request.invalid', {
      field: 'familyName',
      message: 'give a family name, a user ID, an NI number, an email address or an organisation',
    });
  }
  const res = await ctx.repos.people.searchPeople(search, { limit, after, before, sort, filters });
  const total = page.withTotal ? await ctx.repos.people.countPeople(search, filters) : undefined;
  return {
    people: res.people,
    next: res.last ? encodeCursor(res.last, sort) : null,
    previous: res.first ? encodeCursor(res.first, sort) : null,
    ...(total === undefined
      ? {}
      : {
          total: {
            count: Math.min(total, people.SEARCH_COUNT_CAP),
            more: total > people.SEARCH_COUNT_CAP,
          },
        }),
  };
}

/** A cursor names its sort, so one from another order is refused rather than read wrongly. */
function encodeCursor(c: people.SearchCursor, sort: SearchSort): string {
  const keys = [c.familyKey, c.givenKey, c.userId, ...(c.dateOfBirth ? [c.dateOfBirth] : [])];
  return Buffer.from(JSON.stringify(sort === 'name' ? keys : [sort, ...keys])).toString('base64url');
}

function decodeCursor(s: string, sort: SearchSort): people.SearchCursor {
  try {
    if (s.length > 1_000) throw new Error('long');
    const v: unknown = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length <= 200)) {
      const [named, ...rest] = sort === 'name' ? ['name', ...v] : v;
      const dob = sort === 'dob' || sort === 'dob_desc';
      if (named === sort && rest.length === (dob ? 4 : 3) && (!dob || isCalendarDate(rest[3]!))) {
        return {
          familyKey: rest[0]!,
          givenKey: rest[1]!,
          userId: rest[2]!,
          ...(dob ? { dateOfBirth: rest[3]! } : {}),
        };
      }
    }
  } catch {
    // fall through
  }
  throw new AppError('request.invalid', { field: 'after', message: 'not a cursor from a previous page' });
}
