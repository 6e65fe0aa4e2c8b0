/**
 * The CIS1 routes of the agent's API: its own page and script (`/cis1`, `/cis1/page.js`), that page's calls
 * (`/v1/cis1/session`, `signin`, `role`, `signout`), and the ticket applications ask for (`/v1/cis1/ticket`).
 */
import { z } from 'zod';
import type { Cis1Agent } from '../cis1-agent.ts';
import { CIS1_PAGE_HTML, CIS1_PAGE_SCRIPT, CIS1_PAGE_SECURITY_HEADERS } from '../cis1-agent-page.ts';
import { parseBody, type RouteAnswer, type RouteEntry } from './routes.ts';

const cis1SignInBody = z.object({ passcode: z.string().max(64) });
const cis1RoleBody = z.object({ personRoleId: z.string().regex(/^[0-9]{12}$/) });

/** The CIS1 routes, answered by the agent's one CIS1 session. */
export function cis1RoutesFor(cis1: Cis1Agent): Map<string, RouteEntry> {
  const text = (type: string, content: string, headers: Record<string, string> = {}): RouteAnswer => ({
    status: 200,
    body: content,
    text: { type, headers },
  });
  return new Map<string, RouteEntry>([
    [
      '/cis1',
      {
        method: 'GET',
        access: 'cis1_page',
        route: async () => text('text/html; charset=utf-8', CIS1_PAGE_HTML, CIS1_PAGE_SECURITY_HEADERS),
      },
    ],
    [
      '/cis1/page.js',
      {
        method: 'GET',
        access: 'cis1_page',
        route: async () => text('text/javascript; charset=utf-8', CIS1_PAGE_SCRIPT),
      },
    ],
    [
      '/v1/cis1/session',
      { method: 'GET', access: 'cis1_page_api', route: async () => ({ status: 200, body: cis1.view() }) },
    ],
    [
      '/v1/cis1/signin',
      {
        method: 'POST',
        access: 'cis1_page_api',
        route: async ({ body }) => ({ status: 200, body: await cis1.signIn(parseBody(cis1SignInBody, body).passcode) }),
      },
    ],
    [
      '/v1/cis1/role',
      {
        method: 'POST',
        access: 'cis1_page_api',
        route: async ({ body }) => ({
          status: 200,
          body: await cis1.selectRole(parseBody(cis1RoleBody, body).personRoleId),
        }),
      },
    ],
    [
      '/v1/cis1/signout',
      {
        method: 'POST',
        access: 'cis1_page_api',
        route: async () => {
          await cis1.signOut();
          return { status: 200, body: { ok: true } };
        },
      },
    ],
    [
      '/v1/cis1/ticket',
      { method: 'GET', access: 'cis1_application', route: async () => ({ status: 200, body: await cis1.ticket() }) },
    ],
  ]);
}
