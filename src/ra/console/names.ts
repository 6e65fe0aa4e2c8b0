/**
 * Names beside IDs: the console shows people and organisations by name, with the ID after it, wherever it would
 * otherwise show a bare 12-digit user ID, an ODS code or an audit actor label (`person:…`, `cli:root@host`).
 */
import type { Repositories } from '../../storage/repositories/index.ts';

export interface Named {
  /** What to show: "Alex Morgan", "Operator (command line, root@vm)". */
  name: string;
  /** The ID shown after the name, if any. */
  id: string | null;
  /** A console page about it, if there is one. */
  href: string | null;
}

export class NameBook {
  private people = new Map<string, string>();
  private orgs = new Map<string, string>();

  /** Loads, in two queries, the names of every user ID and ODS code given. */
  static async load(
    repos: Repositories,
    userIds: readonly string[],
    odsCodes: readonly string[] = [],
  ): Promise<NameBook> {
    const book = new NameBook();
    book.people = await repos.people.displayNames(userIds);
    book.orgs = await repos.organisations.organisationNames(odsCodes);
    return book;
  }

  person(userId: string | null | undefined): Named {
    if (!userId) return { name: 'Nobody', id: null, href: null };
    const name = this.people.get(userId);
    return { name: name ?? `User ID ${userId}`, id: name ? userId : null, href: `/ra/people/${userId}` };
  }

  organisation(odsCode: string): Named {
    const name = this.orgs.get(odsCode);
    return { name: name ?? odsCode, id: name ? odsCode : null, href: `/ra/organisations/${odsCode}` };
  }

  /** An audit actor label (services/audit.ts writes `person:<user ID>`, `cli:<user>@<host>`, `system:<job>`, …). */
  actor(label: string): Named {
    if (label.startsWith('person:')) return this.person(label.slice(7));
    if (/^[0-9]{12}$/.test(label)) return this.person(label);
    if (label.startsWith('cli:')) return { name: 'Operator (command line)', id: label.slice(4), href: null };
    if (label.startsWith('system:')) return { name: 'OpenCIS', id: label.slice(7), href: null };
    if (label.startsWith('web:')) return { name: 'Someone not signed in', id: label.slice(4), href: null };
    const client = label.startsWith('client:') ? label.slice(7) : label;
    return { name: 'API client', id: client, href: `/ra/clients/${encodeURIComponent(client)}` };
  }
}

/** People and organisations an audit actor label or a list refers to, to load at once. */
export function userIdsIn(labels: readonly (string | null | undefined)[]): string[] {
  return labels.flatMap((l) => {
    if (!l) return [];
    if (l.startsWith('person:')) return [l.slice(7)];
    return /^[0-9]{12}$/.test(l) ? [l] : [];
  });
}
