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

function send(ctx: KoaContextWithOIDC, html: string): void {
  ctx.type = 'html';
  ctx.set(
    'content-security-policy',
    "default-src 'self'; style-src 'self'; form-action 'self' *; frame-ancestors 'none'; base-uri 'none'",
  );
  ctx.body = html;
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
