import type { FastifyInstance, FastifyReply } from 'fastify';
import { isEffectiveOn } from '../../domain/access/role-profile.ts';
import { ukDate } from '../../domain/dates.ts';
import { AppError } from '../../domain/errors.ts';
import { type Person, type PersonStatus, personStatuses } from '../../domain/identity/person.ts';
import { isNationalId } from '../../domain/identity/user-id.ts';
import { authorize, isAllowed, organisationsWhere, type Statement, type Target } from '../../domain/policy.ts';
import type { WebDeps } from '../../http/deps.ts';
import { roleProfilesOf } from '../../services/access.ts';
import { auditTrailOf } from '../../services/audit.ts';
import { cardsOf } from '../../services/cards.ts';
import { getPerson, type SearchQuery, type SearchSort, searchPeople, searchSorts } from '../../services/people.ts';
import { identityChecksOf, listRequests, personPhoto } from '../../services/ra.ts';
import { profileTarget } from '../../services/targets.ts';
import { totpAuthenticatorsOf } from '../../services/totp.ts';
import { webauthnCredentialsOf } from '../../services/webauthn.ts';
import { documentsView } from './documents.ts';
import { dateField, type FieldMap, FormErrors, type FormValues, formErrorsFrom, formValues, text } from './forms.ts';
import { mayAnywhere, param, personTarget, type RaCaller, raPage, renderRa } from './guard.ts';
import { dateTime, dayName, historyLine, identityLevelNames, statusColours } from './labels.ts';
import { NameBook, userIdsIn } from './names.ts';

/** The person a page is about: a valid user ID, read access in their organisations (DOMAIN §3 reach). */
export async function personFor(
  deps: WebDeps,
  caller: RaCaller,
  userId: string,
): Promise<{ person: Person; target: Target }> {
  if (!isNationalId(userId)) throw new AppError('person.not_found');
  const person = await getPerson(caller.ctx, userId);
  const target = await personTarget(deps, userId);
  authorize(caller.actor, 'person:read', target);
  return { person, target };
}

export function personSummary(person: Person) {
  return {
    userId: person.userId,
    name: [person.title, person.givenName, person.middleNames, person.familyName].filter(Boolean).join(' '),
    status: person.status,
  };
}

/**
 * Every organisation where the caller may ask for (or directly give) a position to this person: none for their own
 * record (segregation of duties); which positions there is decided per position (access.ts).
 */
export function accessOrganisations(caller: RaCaller, userId: string): string[] {
  if (caller.actor.kind === 'person' && caller.actor.userId === userId) return [];
  const set = new Set<string>();
  for (const s of ['request:create', 'role_profile:assign'] as const) {
    const orgs = organisationsWhere(caller.actor, s);
    if (orgs !== 'all') for (const o of orgs) set.add(o);
  }
  return [...set].sort();
}

const searchFields: FieldMap = (path) =>
  (
    ({
      userId: { id: 'userId', label: 'User ID' },
      niNumber: { id: 'niNumber', label: 'National Insurance number' },
      email: { id: 'email', label: 'Email address' },
      familyName: { id: 'familyName', label: 'Family name:' },
      givenName: { id: 'givenName', label: 'Given name:' },
      odsCode: { id: 'org', label: 'Organisation:' },
      status: { id: 'status', label: 'Status:' },
      sort: { id: 'sort', label: 'Sort by:' },
      after: { id: 'familyName', label: 'Page:' },
    }) as Record<string, { id: string; label: string }>
  )[path];

/** The search terms of the page's address (a GET form: results can be bookmarked and shared, issue #14). */
const searchKeys = [
  'familyName',
  'givenName',
  'dob-day',
  'dob-month',
  'dob-year',
  'userId',
  'niNumber',
  'email',
  'org',
  'status',
  'sort',
] as const;

const statusOptions = [
  { value: '', text: 'Any status' },
  ...personStatuses.map((s) => ({ value: s, text: s.charAt(0).toUpperCase() + s.slice(1) })),
];
const sortOptions: { value: SearchSort; text: string }[] = [
  { value: 'name', text: 'Name, A to Z' },
  { value: 'name_desc', text: 'Name, Z to A' },
  { value: 'dob', text: 'Date of birth, oldest first' },
  { value: 'dob_desc', text: 'Date of birth, youngest first' },
];

function searchQueryFrom(values: FormValues, errors: FormErrors): SearchQuery | null {
  const userId = text(values, 'userId').replace(/\s+/g, '');
  const niNumber = text(values, 'niNumber');
  const email = text(values, 'email');
  const familyName = text(values, 'familyName');
  const givenName = text(values, 'givenName');
  const odsCode = text(values, 'org').toUpperCase() || null;
  const statusText = text(values, 'status');
  const status = (personStatuses as readonly string[]).includes(statusText) ? (statusText as PersonStatus) : null;
  if (statusText && !status) errors.add('status', 'Choose a status from the list');
  const dob = dateField(values, 'dob');
  if (dob.kind === 'invalid') errors.add('dob', 'Date of birth must be a real date, like 15 3 1984', 'dob-day');
  const filters = { odsCode, status };
  if (userId) return { userId, ...filters };
  if (niNumber) return { niNumber, ...filters };
  if (email) return { email, ...filters };
  if (familyName) {
    return {
      familyName,
      ...(givenName ? { givenName } : {}),
      ...(dob.kind === 'date' ? { dateOfBirth: dob.value } : {}),
      ...filters,
    };
  }
  if (odsCode) return filters;
  errors.add(
    'userId',
    'Enter a family name, a user ID, a National Insurance number, an email address or an organisation',
  );
  return null;
}

/** The address of the same search with other page or sort settings. */
function searchHref(values: FormValues, change: Record<string, string>): string {
  const q = new URLSearchParams();
  for (const k of searchKeys) {
    const v = change[k] ?? text(values, k);
    if (v) q.set(k, v);
  }
  for (const [k, v] of Object.entries(change)) if (!(searchKeys as readonly string[]).includes(k) && v) q.set(k, v);
  return `/ra/people/search?${q.toString()}`;
}

export function registerRaPeople(app: FastifyInstance, deps: WebDeps): void {
  const hidden = { schema: { hide: true } };

  function searchPage(reply: FastifyReply, caller: RaCaller, ctx: Record<string, unknown>, status = 200) {
    return renderRa(
      reply,
      caller,
      'ra/search.njk',
      { title: 'Find a person', values: {}, statusOptions, sortOptions, ...ctx },
      status,
    );
  }

  // Searches are a GET (terms in the address, so results can be bookmarked and shared): results first, the form
  // after them; the total, previous and next pages, organisation and status columns and filters, and sorting.
  app.get('/ra/people/search', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    if (!mayAnywhere(caller.actor, 'person:read')) throw new AppError('auth.forbidden');
    const values = formValues(req.query);
    // No search asked for (the first visit): the form. A submitted form, even empty, is a search (and may be refused).
    if (
      !Object.keys(values).some((k) => (searchKeys as readonly string[]).includes(k) || k === 'after' || k === 'before')
    ) {
      return searchPage(reply, caller, { values });
    }
    const errors = new FormErrors();
    const query = searchQueryFrom(values, errors);
    const sortText = text(values, 'sort') || 'name';
    const sort = (searchSorts as readonly string[]).includes(sortText) ? (sortText as SearchSort) : null;
    if (!sort) errors.add('sort', 'Choose how to sort from the list');
    if (!query || !sort || errors.any) return searchPage(reply, caller, { values, ...errors.view() }, 400);
    try {
      const page = await searchPeople(caller.ctx, query, {
        limit: 20,
        after: text(values, 'after') || null,
        before: text(values, 'before') || null,
        sort,
        withTotal: true,
      });
      const orgsOf = await deps.repos.people.organisationsOfPeople(page.people.map((p) => p.userId));
      const names = await NameBook.load(deps.repos, [], [...orgsOf.values()].flat());
      const sortLink = (column: 'name' | 'dob') => {
        const next = sort === column ? `${column}_desc` : column;
        return {
          href: searchHref(values, { sort: next }),
          ariaSort: sort === column ? 'ascending' : sort === `${column}_desc` ? 'descending' : null,
        };
      };
      return searchPage(reply, caller, {
        title: 'Search results',
        values,
        searched: true,
        total: page.total,
        results: page.people.map((p) => ({
          ...personSummary(p),
          dateOfBirth: dayName(p.dateOfBirth),
          level: identityLevelNames[p.identityAssuranceLevel],
          organisations: (orgsOf.get(p.userId) ?? []).map((o) => names.organisation(o)),
        })),
        nextHref: page.next ? searchHref(values, { after: page.next }) : null,
        previousHref: page.previous ? searchHref(values, { before: page.previous }) : null,
        sortName: sortLink('name'),
        sortDob: sortLink('dob'),
        statusColours,
      });
    } catch (err) {
      const fallback =
        'userId' in query ? 'userId' : 'niNumber' in query ? 'niNumber' : 'email' in query ? 'email' : 'familyName';
      const e = formErrorsFrom(err, searchFields, { id: fallback });
      return searchPage(reply, caller, { values, ...e.view() }, 400);
    }
  });

  app.get('/ra/people/:userId', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const { person, target } = await personFor(deps, caller, param(req, 'userId'));
    const userId = person.userId;
    const may = (s: Statement, t: Target = target) => isAllowed(caller.actor, s, t);
    const today = ukDate(deps.clock.now());

    const rawChecks = await identityChecksOf(caller.ctx, userId);
    const rawProfiles = await roleProfilesOf(caller.ctx, userId);
    // listRequests has no filter by person: the caller's visible pending requests, narrowed to this person.
    const rawPending = (await listRequests(caller.ctx, { status: 'pending', limit: 500 })).filter(
      (x) => x.userId === userId,
    );
    const rawHistory = may('audit:read')
      ? (await auditTrailOf(deps.repos, 'person', userId)).reverse().slice(0, 100)
      : null;
    const names = await NameBook.load(
      deps.repos,
      [
        ...rawChecks.map((c) => c.checkedBy),
        ...rawPending.map((r) => r.requestedBy),
        ...userIdsIn((rawHistory ?? []).map((e) => e.actor)),
      ],
      [...(target.kind === 'person' ? target.person.odsCodes : []), ...rawProfiles.map((p) => p.odsCode)],
    );

    const checks = rawChecks.map((c) => ({
      checkedAt: dateTime(c.checkedAt),
      method: c.method === 'face_to_face' ? 'Face to face' : 'Remote (video)',
      place: c.place,
      checkedBy: names.actor(c.checkedBy),
      level: c.resultingLevel,
      documents: documentsView(c.documents),
    }));

    const profiles = [];
    for (const rp of rawProfiles) {
      const position = await deps.repos.positions.findPosition(rp.positionId);
      const live = rp.status === 'active' && (rp.endDate === null || rp.endDate >= today);
      const t = live ? await profileTarget(deps.repos, deps.clock, rp) : null;
      const tDates = live ? await profileTarget(deps.repos, deps.clock, rp, true) : null;
      profiles.push({
        personRoleId: rp.personRoleId,
        positionName: position?.name ?? rp.positionId,
        jobRoles: position?.jobRoles.join(', ') ?? '',
        organisation: names.organisation(rp.odsCode),
        startDate: dayName(rp.startDate),
        endDate: rp.endDate ? dayName(rp.endDate) : 'No end date',
        status: isEffectiveOn(rp, today)
          ? 'active'
          : rp.status === 'active'
            ? rp.startDate > today
              ? 'pending'
              : 'ended'
            : 'ended',
        canEnd: t !== null && may('role_profile:end', t),
        // Shown where the caller may at least shorten it; lengthening is checked when they ask.
        canChangeDates:
          t !== null && (may('role_profile:change_dates', t) || may('role_profile:change_dates', tDates!)),
      });
    }

    const cards = (await cardsOf(deps.repos, userId)).map((c) => ({
      cardId: c.cardId,
      kind: c.kind === 'virtual' ? 'Virtual smartcard' : 'Smartcard',
      status: c.status,
      expires: c.certificateNotAfter ? dayName(c.certificateNotAfter) : '',
      expired: c.certificateNotAfter !== null && new Date(c.certificateNotAfter) <= caller.ctx.clock.now(),
      canRenew: c.status === 'active' && c.certificateSerial !== null && may('card:renew'),
      canUnlock: (c.status === 'locked' || c.status === 'active') && may('card:unlock'),
      canCancel: c.status !== 'cancelled' && may('card:cancel'),
      canSetPasscode: c.status === 'awaiting_passcode' && may('card:issue'),
      canPrint: c.status === 'active' || c.status === 'awaiting_passcode' || c.status === 'locked',
    }));

    const canRemoveAuthenticators = may('authenticator:enrol');
    const authenticators = [
      ...(await webauthnCredentialsOf(caller.ctx, userId)).map((c) => ({
        id: `webauthn:${c.credentialId}`,
        nickname: c.nickname,
        kind:
          c.kind === 'security_key' ? 'Security key' : c.kind === 'platform' ? 'Windows Hello or Touch ID' : 'Passkey',
        aal: c.aal,
        added: dayName(c.createdAt),
        lastUsed: c.lastUsedAt ? dateTime(c.lastUsedAt) : 'Never',
        warning: c.cloneWarning,
      })),
      ...(await totpAuthenticatorsOf(caller.ctx, userId)).map((t) => ({
        id: `totp:${t.totpId}`,
        nickname: t.nickname,
        kind: 'Authenticator app',
        aal: 2,
        added: dayName(t.createdAt),
        lastUsed: t.lastUsedAt ? dateTime(t.lastUsedAt) : 'Never',
        warning: false,
      })),
    ].map((a) => ({ ...a, removeHref: `/ra/people/${userId}/authenticators/${encodeURIComponent(a.id)}/remove` }));

    const pending = [];
    for (const r of rawPending) {
      const position = await deps.repos.positions.findPosition(r.positionId);
      pending.push({
        requestId: r.requestId,
        positionName: position?.name ?? r.positionId,
        odsCode: r.odsCode,
        startDate: dayName(r.startDate),
        requestedBy: names.actor(r.requestedBy),
        expires: dayName(r.expiresAt),
      });
    }

    const history = rawHistory
      ? rawHistory.map((e) => ({ ...historyLine(e), at: dateTime(e.at), who: names.actor(e.actor) }))
      : null;

    const status = person.status;
    const actions = {
      changeName: status !== 'deceased' && may('person:change_name'),
      suspend: status === 'active' && may('person:change_status'),
      restore: status === 'suspended' && may('person:change_status'),
      leaver: (status === 'active' || status === 'suspended') && may('person:leaver'),
      rejoin: status === 'left' && may('person:change_status'),
      requestAccess: status === 'active' && accessOrganisations(caller, userId).length > 0,
      identityCheck: status !== 'deceased' && may('person:verify_identity'),
      issueCard: status === 'active' && person.identityAssuranceLevel >= 3 && may('card:issue'),
      invite: status === 'active' && may('authenticator:enrol'),
    };

    return renderRa(reply, caller, 'ra/person.njk', {
      title: personSummary(person).name,
      person: {
        ...personSummary(person),
        preferredName: person.preferredName,
        dateOfBirth: dayName(person.dateOfBirth),
        niNumber: person.niNumber,
        email: person.email,
        mobile: person.mobile,
        level: identityLevelNames[person.identityAssuranceLevel],
        identityAssuranceLevel: person.identityAssuranceLevel,
        hasPhoto: person.photoRef !== null,
        organisations: (target.kind === 'person' ? target.person.odsCodes : []).map((o) => names.organisation(o)),
      },
      checks,
      profiles,
      cards,
      cardIssuePossible: may('card:issue'),
      authenticators,
      canRemoveAuthenticators,
      pending,
      history,
      auditLink: may('audit:read') ? `/ra/audit?person=${userId}` : null,
      actions,
      changes:
        actions.changeName || actions.requestAccess || actions.identityCheck || actions.issueCard || actions.invite,
      statusChanges: actions.suspend || actions.restore || actions.leaver || actions.rejoin,
      statusColours,
    });
  });

  app.get('/ra/people/:userId/photo', hidden, async (req, reply) => {
    const caller = await raPage(deps, req, reply);
    if (!caller) return reply;
    const userId = param(req, 'userId');
    if (!isNationalId(userId)) throw new AppError('person.not_found');
    const photo = await personPhoto(caller.ctx, userId);
    return sendImage(reply, photo);
  });
}

/** An image as an image only (never a document, whatever a browser might sniff), kept out of every cache. */
export function sendImage(reply: FastifyReply, image: { mediaType: string; bytes: Buffer }): FastifyReply {
  return reply
    .type(image.mediaType)
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; sandbox")
    .header('content-disposition', 'inline; filename="photo"')
    .send(image.bytes);
}
