/**
 * The people a load run signs in, made beforehand through the services on the cluster's own database (with the
 * cluster's SECRETS_KEY, so the nodes can open what is sealed): smartcard holders (software keys standing in for the
 * card, certificates from the cluster's CA), authenticator-app users (TOTP), security-key users (a software WebAuthn
 * authenticator), RA staff (card holders with an RA Agent role profile) and a relying party registered for refresh
 * tokens. Every person has one role profile in effect, so a CIS2 sign-in with `selectedrole` completes at once.
 */
import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { loadConfig } from '../../src/config.ts';
import { relyingPartyFrom } from '../../src/http/deps.ts';
import { createSealer } from '../../src/secrets/sealer.ts';
import { assignRoleProfile, createPosition } from '../../src/services/access.ts';
import {
  type CardConfig,
  certifyCard,
  passcodeGrant,
  redeemCardGrant,
  startCardIssue,
} from '../../src/services/cards.ts';
import { ensureCertificateAuthority } from '../../src/services/certificates.ts';
import { registerClient } from '../../src/services/clients.ts';
import { type ServiceContext, serviceContext, systemClock } from '../../src/services/context.ts';
import { saveOrganisation } from '../../src/services/organisations.ts';
import { registerPerson } from '../../src/services/people.ts';
import { confirmTotpEnrolment, startTotpEnrolment } from '../../src/services/totp.ts';
import { finishWebauthnRegistration, startWebauthnRegistration } from '../../src/services/webauthn.ts';
import type { Database } from '../../src/storage/database.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import { SoftwareCardKey } from '../../test/support/card.ts';
import { SoftwareAuthenticator } from '../../test/support/webauthn-authenticator.ts';

export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const SCOPE = 'openid profile nationalrbacaccess selectedrole offline_access';
const TRANSPORT_SO_PIN = '13572468';

export interface CardHolder {
  userId: string;
  cardId: string;
  key: SoftwareCardKey;
  certificate: string;
}
export interface TotpUser {
  userId: string;
  totp: OTPAuth.TOTP;
  /** Last time step used (a code is accepted once: the next must be for a later step). */
  lastStep: number;
  busy: boolean;
}
export interface KeyUser {
  userId: string;
  authenticator: SoftwareAuthenticator;
  busy: boolean;
}
export interface SearchTarget {
  userId: string;
  email: string;
  familyName: string;
  dateOfBirth: string;
}

export interface Population {
  publicUrl: string;
  /** Letters naming this run's people (family names Load<tag>, Written<tag>). */
  runTag: string;
  cards: CardHolder[];
  totp: TotpUser[];
  keys: KeyUser[];
  raStaff: CardHolder[];
  searchTargets: SearchTarget[];
  client: { clientId: string; clientSecret: string };
  seconds: number;
}

export interface ProvisionOptions {
  databaseUrl: string;
  schema: string;
  secretsKey: string;
  publicUrl: string;
  cards: number;
  totp: number;
  keys: number;
  raStaff: number;
  concurrency?: number;
  log?: (line: string) => void;
}

function letters(n: number): string {
  let s = '';
  let k = n;
  do {
    s = String.fromCharCode(97 + (k % 26)) + s;
    k = Math.floor(k / 26);
  } while (k > 0);
  return s;
}

async function inParallel<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

export async function provision(options: ProvisionOptions): Promise<Population> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const db: Database = await openPostgres({ url: options.databaseUrl, schema: options.schema, poolSize: 12 });
  try {
    return await provisionWith(db, options, started, log);
  } finally {
    await db.close();
  }
}

async function provisionWith(
  db: Database,
  options: ProvisionOptions,
  started: number,
  log: (line: string) => void,
): Promise<Population> {
  const sealer = createSealer(Buffer.from(options.secretsKey, 'base64'));
  const ctx: ServiceContext = serviceContext({
    db,
    clock: systemClock,
    actor: { kind: 'operator', id: 'cli:bench-load@localhost' },
    requestId: null,
    allowExampleNiPrefix: true,
    sealer,
  });
  const config = loadConfig({ PUBLIC_URL: options.publicUrl, DEMO_DATA: 'false' });
  const cardConfig: CardConfig = {
    origin: new URL(options.publicUrl).origin,
    publicUrl: options.publicUrl,
    transportSoPin: TRANSPORT_SO_PIN,
  };
  const rp = relyingPartyFrom(config);
  await ensureCertificateAuthority(ctx);
  const concurrency = options.concurrency ?? 6;
  // One run's people: a family name of their own (letters only), different dates of birth, so none is a duplicate.
  const run = letters(Number.parseInt(randomBytes(3).toString('hex'), 16));
  const family = `Load${run}`;
  const ods = 'LD1';
  await saveOrganisation(ctx, { odsCode: ods, name: 'Load Test Trust', type: 'trust' }, { upsert: true });
  const nurse = await createPosition(ctx, ods, {
    name: `Ward nurse ${run}`,
    jobRoles: ['R8001'],
    activities: ['B0825'],
  });
  const raAgent = await createPosition(ctx, ods, { name: `RA agent ${run}`, jobRoles: ['R5090'] });
  let made = 0;
  const person = async (i: number, positionId: string): Promise<SearchTarget> => {
    const dateOfBirth = new Date(Date.UTC(1950, 0, 1) + (i % 18_000) * 86_400_000).toISOString().slice(0, 10);
    const email = `load.${run}.${i}@example.nhs.uk`;
    const givenName = `Given${letters(i)}`;
    const p = await registerPerson(ctx, {
      givenName,
      familyName: family,
      dateOfBirth,
      email,
      identityAssuranceLevel: 3,
    });
    await assignRoleProfile(ctx, { userId: p.userId, positionId, startDate: '2020-01-01' });
    made++;
    if (made % 100 === 0) log(`  ${made} people`);
    return { userId: p.userId, email, familyName: family, dateOfBirth };
  };
  const issue = async (userId: string): Promise<CardHolder> => {
    const key = new SoftwareCardKey();
    const tokenSerial = `LOAD-${userId}`;
    const { card, grant } = await startCardIssue(ctx, cardConfig, { userId, kind: 'physical' });
    await redeemCardGrant(ctx, cardConfig, { grant, tokenSerial });
    const { certificate } = await certifyCard(ctx, cardConfig, {
      grant,
      tokenSerial,
      publicKey: key.spkiBase64(),
      proof: key.sign(cardConfig.origin, grant),
    });
    const g2 = await passcodeGrant(ctx, card.cardId);
    await redeemCardGrant(ctx, cardConfig, { grant: g2, tokenSerial });
    return { userId, cardId: card.cardId, key, certificate: certificate.toString('base64') };
  };

  log(
    `Provisioning ${options.cards} card holders, ${options.totp} app users, ${options.keys} security-key users, ` +
      `${options.raStaff} RA staff (family name ${family})…`,
  );
  let index = 0;
  const cards = await inParallel(options.cards, concurrency, async () => {
    const target = await person(index++, nurse.positionId);
    return { target, holder: await issue(target.userId) };
  });
  const raStaff = await inParallel(options.raStaff, concurrency, async () => {
    const target = await person(index++, raAgent.positionId);
    return issue(target.userId);
  });
  const totp = await inParallel(options.totp, concurrency, async (): Promise<TotpUser> => {
    const target = await person(index++, nurse.positionId);
    const { totpId, secret } = await startTotpEnrolment(ctx, { userId: target.userId, issuer: 'OpenCIS load' });
    const t = new OTPAuth.TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret) });
    const step = Math.floor(Date.now() / 30_000);
    await confirmTotpEnrolment(ctx, { userId: target.userId, totpId, code: t.generate(), ip: null });
    return { userId: target.userId, totp: t, lastStep: step, busy: false };
  });
  const keys = await inParallel(options.keys, concurrency, async (): Promise<KeyUser> => {
    const target = await person(index++, nurse.positionId);
    const authenticator = new SoftwareAuthenticator();
    const { challengeId, options: creation } = await startWebauthnRegistration(ctx, rp, {
      userId: target.userId,
      kind: 'security_key',
    });
    await finishWebauthnRegistration(ctx, rp, {
      userId: target.userId,
      challengeId,
      response: authenticator.register(creation, rp.origin),
      callerAal: 3,
    });
    return { userId: target.userId, authenticator, busy: false };
  });
  const reg = await registerClient(ctx, {
    name: `Load test EPR ${run}`,
    redirectUris: [REDIRECT_URI],
    tokenEndpointAuthMethod: 'client_secret_basic',
    scopes: SCOPE.split(' '),
    minimumAal: 2,
  });
  return {
    publicUrl: options.publicUrl,
    runTag: run,
    cards: cards.map((c) => c.holder),
    totp,
    keys,
    raStaff,
    searchTargets: cards.map((c) => c.target),
    client: { clientId: reg.client.clientId, clientSecret: reg.clientSecret! },
    seconds: (performance.now() - started) / 1000,
  };
}
