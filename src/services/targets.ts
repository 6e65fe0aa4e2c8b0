/**
 * Policy targets as the services load them (src/domain/policy.ts decides on them): the person an action is about,
 * with the access they hold today by the UK calendar. One place, so no service forgets what a target holds.
 */

import type { Position, RoleProfile } from '../domain/access/role-profile.ts';
import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import type { PersonStatus } from '../domain/identity/person.ts';
import type { PersonFacts, Target } from '../domain/policy.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import type { Clock } from './context.ts';

export type PersonTargetFacts = PersonFacts & { status: PersonStatus };

/** The person `userId` as a policy target; `person.not_found` when there is none. */
export async function personFacts(repos: Repositories, clock: Clock, userId: string): Promise<PersonTargetFacts> {
  const person = await repos.accessFacts.loadPersonFacts(userId, ukDate(clock.now()));
  if (!person) throw new AppError('person.not_found');
  return person;
}

/**
 * The person `userId` as a policy target. For a user ID nobody has, a national target: the policy then refuses
 * whoever may not act nationally (so the answer reveals nothing to them), and the action itself says "not found".
 */
export async function personTarget(repos: Repositories, clock: Clock, userId: string): Promise<Target> {
  const person = await repos.accessFacts.loadPersonFacts(userId, ukDate(clock.now()));
  return person ? { kind: 'person', person } : { kind: 'national' };
}

/** Giving (or asking for) `position` for the person `userId`. */
export async function positionTarget(
  repos: Repositories,
  clock: Clock,
  userId: string,
  position: Position,
): Promise<Target & { kind: 'position' }> {
  return {
    kind: 'position',
    person: await personFacts(repos, clock, userId),
    position: await repos.accessFacts.positionFacts(position),
  };
}

/** A role profile: the person who holds it and what its position appoints; `extendsAccess` for a change of dates. */
export async function profileTarget(
  repos: Repositories,
  clock: Clock,
  profile: Pick<RoleProfile, 'userId' | 'positionId'>,
  extendsAccess?: boolean,
): Promise<Target> {
  const position = await repos.positions.findPosition(profile.positionId);
  if (!position) throw new AppError('role_profile.not_found');
  return {
    kind: 'role_profile',
    person: await personFacts(repos, clock, profile.userId),
    profile: await repos.accessFacts.positionFacts(position),
    ...(extendsAccess === undefined ? {} : { extendsAccess }),
  };
}

/** A pending request: the assignment it asks for, who asked, and on whose behalf (an API client's registrar). */
export async function requestTarget(
  repos: Repositories,
  clock: Clock,
  request: { userId: string; requestedBy: string },
  position: Position,
): Promise<Target> {
  const { person, position: facts } = await positionTarget(repos, clock, request.userId, position);
  return {
    kind: 'request',
    person,
    position: facts,
    requestedBy: request.requestedBy,
    requestedOnBehalfOf: await repos.accessFacts.registrarOfActor(request.requestedBy),
  };
}
