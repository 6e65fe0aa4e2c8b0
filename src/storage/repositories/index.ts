/**
 * The repositories: every SQL statement of the server, one module per aggregate, each function taking the handle it
 * runs on (the database, or one transaction) first. `repositoriesOn(q)` binds them all to one handle, so a service
 * never holds a handle itself: it reads through `ctx.repos` and writes through `ctx.transaction(async (tx) => …)`,
 * where `tx` is the same repositories bound to one transaction (the unit of work). The modules stay plain functions,
 * so one repository test suite runs them on PGlite and PostgreSQL alike.
 */
import type { Database, Queryable } from '../database.ts';
import * as accessFacts from './access-facts.ts';
import * as applications from './applications.ts';
import * as attempts from './attempts.ts';
import * as audit from './audit.ts';
import * as auditSearch from './audit-search.ts';
import * as authorities from './authorities.ts';
import * as cards from './cards.ts';
import * as catalogue from './catalogue.ts';
import * as certificates from './certificates.ts';
import * as challenges from './challenges.ts';
import * as cis1Sessions from './cis1-sessions.ts';
import * as cis1SigningKeys from './cis1-signing-keys.ts';
import * as cis1Tickets from './cis1-tickets.ts';
import * as clients from './clients.ts';
import * as demo from './demo.ts';
import * as enrolment from './enrolment.ts';
import * as hierarchy from './hierarchy.ts';
import * as identityChecks from './identity-checks.ts';
import * as jobs from './jobs.ts';
import * as leavers from './leavers.ts';
import * as notifications from './notifications.ts';
import * as oidcArtefacts from './oidc-artefacts.ts';
import * as oidcClaims from './oidc-claims.ts';
import * as oidcKeys from './oidc-keys.ts';
import * as oidcLogout from './oidc-logout.ts';
import * as oneTimeCodes from './one-time-codes.ts';
import * as operations from './operations.ts';
import * as organisations from './organisations.ts';
import * as people from './people.ts';
import * as photos from './photos.ts';
import * as positions from './positions.ts';
import * as reports from './reports.ts';
import * as requests from './requests.ts';
import * as roleProfiles from './role-profiles.ts';
import * as sessions from './sessions.ts';
import * as synthetic from './synthetic.ts';
import * as totp from './totp.ts';
import * as upstream from './upstream.ts';
import * as webauthnCredentials from './webauthn-credentials.ts';

const modules = {
  accessFacts,
  applications,
  attempts,
  audit,
  auditSearch,
  authorities,
  cards,
  catalogue,
  certificates,
  challenges,
  cis1Sessions,
  cis1SigningKeys,
  cis1Tickets,
  clients,
  demo,
  enrolment,
  hierarchy,
  identityChecks,
  jobs,
  leavers,
  notifications,
  oidcArtefacts,
  oidcClaims,
  oidcKeys,
  oidcLogout,
  oneTimeCodes,
  operations,
  organisations,
  people,
  photos,
  positions,
  reports,
  requests,
  roleProfiles,
  sessions,
  synthetic,
  totp,
  upstream,
  webauthnCredentials,
};

// biome-ignore lint/suspicious/noExplicitAny: matches any repository function's parameters and result
type RepositoryFunction = (q: Queryable, ...args: any[]) => any;

/** A module's repository functions with their handle bound: `find(q, id)` becomes `find(id)`. */
export type Bound<M> = {
  [K in keyof M as M[K] extends RepositoryFunction ? K : never]: M[K] extends (
    q: Queryable,
    ...args: infer A
  ) => infer R
    ? (...args: A) => R
    : never;
};

export type Repositories = { readonly [K in keyof typeof modules]: Bound<(typeof modules)[K]> } & {
  /** The handle itself, for the storage layer's own helpers (drivers, migrations); services never use it. */
  readonly handle: Queryable;
};

function bind<M extends object>(q: Queryable, module: M): Bound<M> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(module)) {
    if (typeof value === 'function') out[name] = (...args: unknown[]) => (value as RepositoryFunction)(q, ...args);
  }
  return out as Bound<M>;
}

/** Every repository bound to `q`, each module bound the first time it is used. */
export function repositoriesOn(q: Queryable): Repositories {
  const cache = new Map<string, unknown>();
  const repos = { handle: q } as Record<string, unknown>;
  for (const name of Object.keys(modules) as (keyof typeof modules)[]) {
    Object.defineProperty(repos, name, {
      enumerable: true,
      get: () => {
        if (!cache.has(name)) cache.set(name, bind(q, modules[name]));
        return cache.get(name);
      },
    });
  }
  return repos as Repositories;
}

/** The unit of work: `fn` runs in one transaction, with every repository bound to it; committed if it resolves. */
export function unitOfWork(db: Database): <T>(fn: (tx: Repositories) => Promise<T>) => Promise<T> {
  return (fn) => db.transaction((tx) => fn(repositoriesOn(tx)));
}
