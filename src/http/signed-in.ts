import type { Repositories } from '../storage/repositories/index.ts';

/** What the page header says about the person signed in: their name and, in the RA console, the role they act in. */
export interface SignedInAs {
  name: string;
  acting?: string;
}

/** The signed-in person's name as the header shows it (preferred name if they have one). */
export async function signedInAs(repos: Repositories, userId: string): Promise<SignedInAs> {
  const person = await repos.people.findPersonByUserId(userId);
  if (!person) return { name: `User ID ${userId}` };
  return { name: person.preferredName ?? `${person.givenName} ${person.familyName}` };
}
