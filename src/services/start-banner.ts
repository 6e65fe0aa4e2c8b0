import type { Config } from '../config.ts';
import { raManagerExists } from './bootstrap.ts';
import type { ServiceContext } from './context.ts';
import { demoConsoleLink, demoPeopleOf, isDemoInstallation } from './demo.ts';

/**
 * What the start banner says about getting in (issue #14, "five minutes to the console"). In demo mode — DEMO_DATA on
 * and the demo data seeded — the demo people and a fresh one-time link for the demo RA Manager's security key (a new
 * link at every start: DevTools forgets its virtual key when it closes). Otherwise how the first RA Manager is made,
 * or nothing once there is one. The link is printed to whoever started the server, never served over HTTP.
 */
export async function startBanner(
  ctx: ServiceContext,
  config: Config,
  url: string,
  justSeeded: boolean,
): Promise<string[]> {
  if (config.DEMO_DATA && (await isDemoInstallation(ctx.repos))) {
    const people = await demoPeopleOf(ctx.repos);
    const link = await demoConsoleLink(ctx, url);
    return [
      `DEMO MODE (DEMO_DATA=true, demo data ${justSeeded ? 'seeded now' : 'in this database'}): not for real use. Demo people:`,
      ...people.map((p) => `  ${p.userId}  ${p.name.padEnd(16)} ${p.what}`),
      ...(link
        ? [
            'Sign in to the RA console as Alex Morgan, the demo RA Manager (README, "Quick start"):',
            '  1. In Chromium or Chrome, open DevTools > More tools > WebAuthn, tick "Enable virtual authenticator',
            '     environment" and add an authenticator (ctap2, usb, resident keys and user verification ticked).',
            '     The demo trusts this virtual key at AAL3; outside demo mode it counts as AAL2.',
            '  2. Open this one-time link (24 hours; a new one is printed at every start) and choose "Set up a security key":',
            `     ${link}`,
            `  3. Go to ${url}/ra (to sign in again later: "Sign in with a security key or passkey").`,
          ]
        : ['The demo RA Manager (Alex Morgan) is not active: no demo sign-in link.']),
    ];
  }
  if (!(await raManagerExists(ctx))) {
    return [
      'No RA Manager yet: stop the server (Ctrl-C) and create the first one with `npx opencis bootstrap --help`,',
      'then start it again and open the one-time link it printed.',
    ];
  }
  return [];
}
