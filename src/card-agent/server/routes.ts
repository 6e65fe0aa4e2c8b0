/**
 * The card routes of the agent's API (`/v1/status`, `/v1/sign`, `/v1/cards/issue`, `/v1/cards/passcode`,
 * `/v1/cards/certificate`), and what every route is: its context, its answer, who may call it (Access).
 */
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { CARD_CHALLENGE_PATTERN, cardLoginMessage } from '../../domain/credentials/card-login.ts';
import { describePasscodeProblem, passcodeProblem } from '../../domain/credentials/passcode.ts';
import {
  assertSameCard,
  CardError,
  type CardSession,
  lockState,
  type Pkcs11Module,
  personaliseCard,
  replaceCertificate,
  setPasscode,
  signWithPasscode,
  storeCertificate,
} from '../token.ts';
import { AgentError } from './errors.ts';
import type { OpenCisServer } from './opencis-server.ts';

export interface RouteContext {
  origin: string;
  body: unknown;
}

export interface RouteAnswer {
  status: number;
  body: unknown;
  /** A text answer (the CIS1 page and its script) instead of JSON. */
  text?: { type: string; headers: Record<string, string> };
}

export type Route = (ctx: RouteContext) => Promise<RouteAnswer>;

/**
 * Who may call a route. `opencis`: OpenCIS pages (Origin on the allow-list, CORS). `cis1_page`: the agent's own CIS1
 * page and script, fetched by navigating to them. `cis1_page_api`: that page's calls (custom header, own origin).
 * `cis1_application`: getTicket (CIS1 allow-list origins, or local programs when allowed).
 */
export type Access = 'opencis' | 'cis1_page' | 'cis1_page_api' | 'cis1_application';

export interface RouteEntry {
  method: 'GET' | 'POST';
  route: Route;
  access: Access;
}

const grantBody = z.object({ grant: z.string().min(1).max(4096) });
const signBody = z.object({ challenge: z.string(), passcode: z.string() });
const passcodeBody = z.object({ grant: z.string().min(1).max(4096), passcode: z.string() });
const certificateBody = z.object({
  certificate: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/)
    .max(8_000),
  passcode: z.string(),
});

/** The body as `schema` has it, or the agent's invalid_request. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw AgentError.of('agent.invalid_request');
  return parsed.data;
}

/** The card routes, on the card `tokenLabel` names (else the first), with the OpenCIS server at hand. */
export function routesFor(module: Pkcs11Module, tokenLabel: string | undefined, server: OpenCisServer) {
  const status: Route = async () => {
    const body = await module.run((cryptoki) => {
      let card: CardSession;
      try {
        card = cryptoki.openSession(cryptoki.findToken(tokenLabel));
      } catch (err) {
        if (err instanceof CardError && err.code === 'card.absent') return undefined;
        throw err;
      }
      const { locked, retriesLeft } = lockState(card);
      const credential = card.findCredential();
      return {
        card: 'present',
        tokenSerial: card.token.serial,
        label: card.token.label,
        locked,
        retriesLeft,
        certificate: credential?.certificate.toString('base64') ?? null,
      };
    });
    return {
      status: 200,
      body: body ?? {
        card: 'absent',
        tokenSerial: null,
        label: null,
        locked: false,
        retriesLeft: 0,
        certificate: null,
      },
    };
  };

  const sign: Route = async ({ origin, body }) => {
    const { challenge, passcode } = parseBody(signBody, body);
    if (!CARD_CHALLENGE_PATTERN.test(challenge)) throw AgentError.of('agent.invalid_challenge');
    // Malformed input never reaches the card, so it never costs the holder a try.
    if (!/^[0-9]{6,8}$/.test(passcode)) throw new CardError('card.passcode_format');
    const signed = await module.withCard(tokenLabel, (card) =>
      signWithPasscode(card, passcode, cardLoginMessage(origin, challenge), (event, certificate) =>
        server.reportEvent(card.token.serial, event, certificate),
      ),
    );
    return {
      status: 200,
      body: {
        certificate: signed.certificate.toString('base64'),
        signature: signed.signature.toString('base64url'),
        algorithm: signed.algorithm,
      },
    };
  };

  const issue: Route = async ({ body }) => {
    const { grant } = parseBody(grantBody, body);
    const serial = await module.withCard(tokenLabel, (card) => card.token.serial);
    const redeemed = await server.redeem(grant, serial);
    if (redeemed.action !== 'issue' || redeemed.transportSoPin === undefined) {
      throw AgentError.of('agent.grant_action_mismatch');
    }
    const secrets = { transportSoPin: redeemed.transportSoPin, unblockSecret: redeemed.unblockSecret };
    // Proof of possession: the new key signs the grant, bound to the server's origin like a sign-in.
    const personalised = await module.withCard(tokenLabel, (card) => {
      assertSameCard(card, serial);
      return personaliseCard(card, secrets, cardLoginMessage(server.origin, grant));
    });
    const answer = await server.requestCertificate({
      grant,
      tokenSerial: serial,
      publicKey: personalised.key.publicKey.toString('base64'),
      proof: personalised.proof.toString('base64url'),
      algorithm: 'ES256',
    });
    const certificate = Buffer.from(answer.certificate, 'base64');
    if (!isCertificateFor(certificate, personalised.key.publicKey)) {
      throw AgentError.of('agent.server_error', 'The certificate from the server is not for the key on this card.');
    }
    await module.withCard(tokenLabel, (card) => {
      assertSameCard(card, serial);
      storeCertificate(card, personalised, certificate);
    });
    return { status: 200, body: { tokenSerial: serial, certificate: answer.certificate } };
  };

  const passcode: Route = async ({ body }) => {
    const { grant, passcode: newPasscode } = parseBody(passcodeBody, body);
    // Checked before the grant is spent, so a weak choice does not cost the holder their one-time grant.
    const problem = passcodeProblem(newPasscode);
    if (problem) {
      const code = problem === 'too_simple' ? 'card.passcode_weak' : 'card.passcode_format';
      throw new CardError(code, { message: describePasscodeProblem(problem) });
    }
    const serial = await module.withCard(tokenLabel, (card) => card.token.serial);
    const redeemed = await server.redeem(grant, serial);
    if (redeemed.action !== 'set_passcode' && redeemed.action !== 'unlock') {
      throw AgentError.of('agent.grant_action_mismatch');
    }
    await module.withCard(tokenLabel, (card) => {
      assertSameCard(card, serial);
      setPasscode(card, redeemed.unblockSecret, newPasscode);
    });
    return { status: 200, body: { ok: true } };
  };

  const renew: Route = async ({ body }) => {
    const { certificate, passcode: current } = parseBody(certificateBody, body);
    if (!/^[0-9]{6,8}$/.test(current)) throw new CardError('card.passcode_format');
    await module.withCard(tokenLabel, (card) =>
      replaceCertificate(card, current, Buffer.from(certificate, 'base64'), (event, cert) =>
        server.reportEvent(card.token.serial, event, cert),
      ),
    );
    return { status: 200, body: { ok: true } };
  };

  return new Map<string, RouteEntry>([
    ['/v1/cards/certificate', { method: 'POST', route: renew, access: 'opencis' }],
    ['/v1/status', { method: 'GET', route: status, access: 'opencis' }],
    ['/v1/sign', { method: 'POST', route: sign, access: 'opencis' }],
    ['/v1/cards/issue', { method: 'POST', route: issue, access: 'opencis' }],
    ['/v1/cards/passcode', { method: 'POST', route: passcode, access: 'opencis' }],
  ]);
}

function isCertificateFor(certificate: Buffer, publicKey: Buffer): boolean {
  try {
    return new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' }).equals(publicKey);
  } catch {
    return false;
  }
}
