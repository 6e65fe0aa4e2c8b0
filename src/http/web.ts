import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import nunjucks from 'nunjucks';
import { parseFormStrictly } from './input-guard.ts';

const VIEWS = join(dirname(fileURLToPath(import.meta.url)), '..', 'views');
export const SESSION_COOKIE = 'opencis_session';
/** The cookie holding the CSRF secret that a page's token (`csrf-token` header, `_csrf` field) is checked against. */
export const CSRF_COOKIE = 'opencis_csrf';

declare module 'fastify' {
  interface FastifyReply {
    page(template: string, context?: Record<string, unknown>, status?: number): FastifyReply;
  }
}

export interface WebOptions {
  publicUrl: string;
  cardAgentUrl: string;
}

/**
 * Server-rendered pages in the NHS.UK design system: nunjucks with autoescaping (every value is HTML-escaped unless a
 * template says otherwise), the NHS.UK frontend stylesheet served locally without its remote web fonts, a strict
 * Content-Security-Policy, cookies and CSRF protection for every form.
 */
export async function installWeb(app: FastifyInstance, options: WebOptions): Promise<void> {
  const secure = options.publicUrl.startsWith('https://');
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 65_536, parser: parseFormStrictly });
  await app.register(csrf, {
    cookieKey: CSRF_COOKIE,
    cookieOpts: { path: '/', httpOnly: true, sameSite: 'strict', secure, signed: false },
  });

  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(VIEWS, { noCache: false }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  env.addGlobal('cardAgentUrl', options.cardAgentUrl);
  env.addFilter('number', (n: unknown) => (typeof n === 'number' ? new Intl.NumberFormat('en-GB').format(n) : ''));

  app.decorateReply('page', function page(this: FastifyReply, template: string, context = {}, status = 200) {
    const req = this.request;
    const html = env.render(template, { csrfToken: this.generateCsrf(), path: req.url.split('?')[0], ...context });
    this.status(status).type('text/html; charset=utf-8');
    this.header(
      'content-security-policy',
      [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        `connect-src 'self' ${new URL(options.cardAgentUrl).origin}`,
        `form-action 'self'${formActionOrigins(context)}`,
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
      ].join('; '),
    );
    return this.send(html);
  });

  const css = nhsukStylesheet();
  app.get('/assets/nhsuk.css', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=86400').type('text/css; charset=utf-8');
    return css;
  });
  // The design system's own script, for its header (items that do not fit go under "More": WCAG 1.4.10 reflow at
  // 320 px) and its notification banners. Served from here (script-src 'self'); the source-map comment is dropped.
  const frontendJs = nhsukFile(join('nhsuk', `nhsuk-frontend-${nhsukVersion()}.min.js`))
    .toString('utf8')
    .replace(/\/\/# sourceMappingURL=\S+\s*$/, '');
  app.get('/assets/nhsuk-frontend.js', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('cache-control', 'public, max-age=86400').type('text/javascript; charset=utf-8');
    return frontendJs;
  });
  // The icons its stylesheet refers to (e.g. the cross of an error message), and OpenCIS's own favicon.
  for (const icon of NHSUK_ICONS) {
    const body = nhsukFile(join('nhsuk', 'assets', 'images', icon));
    app.get(`/assets/images/${icon}`, { schema: { hide: true } }, async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=86400').type('image/svg+xml');
      return body;
    });
  }
  const favicon = readFileSync(join(VIEWS, 'assets', 'favicon.svg'));
  for (const path of ['/favicon.ico', '/assets/favicon.svg']) {
    app.get(path, { schema: { hide: true } }, async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=86400').type('image/svg+xml');
      return favicon;
    });
  }
  for (const file of ['opencis.css', 'opencis.js', 'signin.js', 'account.js', 'card.js', 'invite.js']) {
    const body = readFileSync(join(VIEWS, 'assets', file), 'utf8');
    const type = file.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
    app.get(`/assets/${file}`, { schema: { hide: true } }, async (_req, reply) => {
      reply.header('cache-control', 'no-cache').type(type);
      return body;
    });
  }
}

/**
 * A form whose submission ends, after OpenCIS's redirects, at a relying party (sign-in during an OpenID Connect flow)
 * needs that party's origin in form-action: browsers apply form-action to every redirect of a form submission.
 */
function formActionOrigins(context: Record<string, unknown>): string {
  const origins = context.formActionOrigins;
  if (!Array.isArray(origins)) return '';
  return origins
    .filter((o): o is string => typeof o === 'string' && /^https?:\/\/[A-Za-z0-9.-]+(:\d+)?$/.test(o))
    .map((o) => ` ${o}`)
    .join('');
}

/** Icons of the design system that its stylesheet or our pages use. */
const NHSUK_ICONS = [
  'nhsuk-icon-cross.svg',
  'nhsuk-icon-arrow-down.svg',
  'nhsuk-icon-arrow-up.svg',
  'nhsuk-icon-arrow-up-down.svg',
] as const;

function nhsukDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('nhsuk-frontend/package.json')), 'dist');
}

function nhsukVersion(): string {
  const dir = dirname(nhsukDir());
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

function nhsukFile(path: string): Buffer {
  return readFileSync(join(nhsukDir(), path));
}

/**
 * NHS.UK frontend's stylesheet loads Frutiger from an NHS website. Pages must work offline and under `font-src 'self'`,
 * so the @font-face rules are dropped and the design system's own fallback stack (Arial) is used.
 */
function nhsukStylesheet(): string {
  const raw = nhsukFile(join('nhsuk', `nhsuk-frontend-${nhsukVersion()}.min.css`)).toString('utf8');
  return raw.replace(/@font-face\{[^}]*\}/g, '').replace(/\/\*# sourceMappingURL=[^*]*\*\//g, '');
}

/** A local path to return to after sign-in: only same-site paths, never another host (open redirect). */
export function safeReturnPath(value: unknown, fallback = '/account'): string {
  if (typeof value !== 'string' || value.length > 200) return fallback;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\') || /[\r\n\t]/.test(value))
    return fallback;
  return value;
}

export function clientInfo(req: FastifyRequest): { ip: string | null; userAgent: string | null } {
  const ua = req.headers['user-agent'];
  return { ip: req.ip ?? null, userAgent: typeof ua === 'string' ? ua : null };
}

export function setSessionCookie(reply: FastifyReply, token: string, publicUrl: string): void {
  reply.setCookie(SESSION_COOKIE, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: publicUrl.startsWith('https://'),
  });
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { path: '/' });
}
