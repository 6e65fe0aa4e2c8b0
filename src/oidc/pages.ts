import { createHash } from 'node:crypto';
import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * The few pages oidc-provider renders itself (errors, the logout confirmation, signed out), in the NHS.UK style and
 * with no external resources (the library's defaults load web fonts from elsewhere).
 */
function escapeHtml(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} – OpenCIS</title><link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/assets/nhsuk.css"><link rel="stylesheet" href="/assets/opencis.css"></head>
<body><header class="nhsuk-header" role="banner"><div class="nhsuk-header__container nhsuk-width-container"><div class="nhsuk-header__service">
<a class="nhsuk-header__service-name" href="/">OpenCIS – Care Identity</a></div></div></header>
<div class="nhsuk-width-container"><main class="nhsuk-main-wrapper" id="maincontent" role="main"><div class="nhsuk-grid-row"><div class="nhsuk-grid-column-two-thirds">
${body}</div></div></main></div></body></html>`;
}

function send(ctx: KoaContextWithOIDC, html: string, script?: string): void {
  ctx.type = 'html';
  const scripts = script ? `script-src 'sha256-${createHash('sha256').update(script).digest('base64')}'; ` : '';
  ctx.set(
    'content-security-policy',
    `default-src 'self'; ${scripts}style-src 'self'; form-action 'self' *; frame-ancestors 'none'; base-uri 'none'`,
  );
  ctx.body = html;
}

/** Submits the logout form as the page loads (the only script OpenCIS's OpenID Connect pages run; hashed in the CSP). */
const AUTO_SUBMIT = "document.addEventListener('DOMContentLoaded',function(){document.forms[0].submit()});";

/**
 * Whether RP-initiated logout may go straight through (as CIS2 does) instead of asking "Do you want to sign out?": the
 * relying party sent an `id_token_hint` that the library verified (its signature, issuer and audience) and that was
 * issued in this browser's session — the same person, and the session id the provider gave that relying party (or, for
 * a client that gets no sid, the same sign-in: its auth_time). A hint of someone else, of another session, or none at
 * all: the person is asked, so that a link elsewhere cannot sign them out unawares.
 */
function hintIsThisSession(ctx: KoaContextWithOIDC): boolean {
  const hint = ctx.oidc.entities.IdTokenHint as
    | { payload?: { sub?: unknown; sid?: unknown; auth_time?: unknown } }
    | undefined;
  const client = ctx.oidc.entities.Client;
  const session = ctx.oidc.session;
  if (!hint?.payload || !client || !session?.accountId) return false;
  if (hint.payload.sub !== session.accountId) return false;
  if (hint.payload.sid !== undefined) {
    const sid = session.sidFor(client.clientId);
    return typeof sid === 'string' && hint.payload.sid === sid;
  }
  return typeof hint.payload.auth_time === 'number' && hint.payload.auth_time === session.authTime();
}

/**
 * The endpoints a person's browser is sent to (authorization, its resume, end session and its confirmation): their
 * errors may be a page. Every other endpoint is called by a relying party's code and answers JSON, whatever its Accept
 * header says — the library would otherwise render an HTML page for `Accept: text/html` anywhere in it.
 */
const BROWSER_ROUTES = new Set([
  'authorization',
  'resume',
  'end_session',
  'end_session_confirm',
  'end_session_success',
]);
const BROWSER_PATHS = /\/(authorize(\/[^/]+)?|connect\/endSession(\/confirm|\/success)?)$/;

function browserFacing(ctx: KoaContextWithOIDC): boolean {
  const route = (ctx.oidc as { route?: string } | undefined)?.route;
  return route !== undefined ? BROWSER_ROUTES.has(route) : BROWSER_PATHS.test(ctx.path);
}

/**
 * The library's `renderError` (called when it would show a page): a page at the browser-facing endpoints, JSON at
 * every other endpoint.
 */
export async function renderError(
  ctx: KoaContextWithOIDC,
  out: { error: string; error_description?: string },
): Promise<void> {
  if (browserFacing(ctx)) {
    await errorPage(ctx, out);
    return;
  }
  ctx.type = 'json';
  ctx.body = out;
}

/** An OAuth error answer from OpenCIS's own middleware: a page for a browser at a browser-facing endpoint, else JSON. */
export async function answerError(
  ctx: KoaContextWithOIDC,
  out: { error: string; error_description?: string },
): Promise<void> {
  if (browserFacing(ctx) && ctx.accepts('json', 'html') === 'html') {
    await errorPage(ctx, out);
    return;
  }
  ctx.type = 'json';
  ctx.body = out;
}

export async function errorPage(
  ctx: KoaContextWithOIDC,
  out: { error: string; error_description?: string },
): Promise<void> {
  send(
    ctx,
    page(
      'There is a problem',
      `<h1 class="nhsuk-heading-l">Sorry, this sign-in cannot continue</h1>
<p class="nhsuk-body">${escapeHtml(out.error_description ?? 'The request from the service was not valid.')}</p>
<p class="nhsuk-body-s">Error code: <code>${escapeHtml(out.error)}</code></p>
<p class="nhsuk-body">Go back to the service you came from and try again. If it keeps happening, tell that service's support team.</p>`,
    ),
  );
}

export async function logoutPage(ctx: KoaContextWithOIDC, form: string): Promise<void> {
  if (hintIsThisSession(ctx)) {
    // The library's form (its xsrf secret) with logout=yes: signs out of OpenCIS and every relying party, as a
    // confirmed "Yes, sign me out" does. Without JavaScript the person presses the button.
    const yes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
    send(
      ctx,
      page(
        'Signing out',
        `<h1 class="nhsuk-heading-l">Signing you out</h1>
${yes}
<noscript><button class="nhsuk-button" type="submit" form="op.logoutForm">Continue</button></noscript>
<script>${AUTO_SUBMIT}</script>`,
      ),
      AUTO_SUBMIT,
    );
    return;
  }
  send(
    ctx,
    page(
      'Sign out',
      `<h1 class="nhsuk-heading-l">Do you want to sign out?</h1>
<p class="nhsuk-body">You will be signed out of OpenCIS and of the services you used with it.</p>
${form}
<button class="nhsuk-button" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button class="nhsuk-button nhsuk-button--secondary" type="submit" form="op.logoutForm">No, stay signed in</button>`,
    ),
  );
}

export async function loggedOutPage(ctx: KoaContextWithOIDC): Promise<void> {
  send(
    ctx,
    page(
      'Signed out',
      '<h1 class="nhsuk-heading-l">You have signed out</h1><p class="nhsuk-body">You can close this window.</p>',
    ),
  );
}
