// @peculiar/x509 needs reflect-metadata loaded before it (STACK.md).
import 'reflect-metadata';
import { createHash, randomInt, randomUUID } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { DAY_MS, expiryCandidates, leastBusyExpiry } from '../domain/credentials/expiry-spread.ts';
import { ukDate } from '../domain/dates.ts';
import { AppError } from '../domain/errors.ts';
import { isNationalId } from '../domain/identity/user-id.ts';
import {
  activeAuthority,
  authorityFromCache,
  authoritySigningKey,
  type CertificateAuthority,
  isRevocationReason,
  publicView,
  type RevocationReason,
  requireActiveAuthority,
} from '../pki/authority.ts';
import { authenticationSubject, baseUrl, checkedPublicKey, signAuthenticationCertificate } from '../pki/issue.ts';
import {
  auditView,
  type CaKeyAlgorithm,
  DEFAULT_CA_NAME,
  generateAuthority,
  KEY_PURPOSE,
  newSerial,
  type PreparedAuthority,
  pemOf,
  prepareImport,
  wholeSeconds,
} from '../pki/keys.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import { appendAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';

/**
 * The certificate authority's use cases (issue 16: pki/ is the X.509 library, this is what changes state): the CA
 * created, imported or rotated; authentication certificates issued to smartcards and revoked — each with its audit
 * event, in one transaction.
 */
export {
  activeAuthority,
  type CertificateAuthority,
  type LoadedAuthority,
  listCertificateAuthorities,
  loadAuthorities,
  type RevocationReason,
  requireActiveAuthority,
} from '../pki/authority.ts';
export type { CaKeyAlgorithm } from '../pki/keys.ts';
export { type VerifiedAuthenticationCertificate, verifyAuthenticationCertificate } from './certificate-checks.ts';

const MAX_VALIDITY_DAYS = 3_650;

export interface EnsureCertificateAuthorityOptions {
  /** Key algorithm of a generated CA (default ECDSA-P256). Ignored when importing. */
  algorithm?: CaKeyAlgorithm;
  /** Display name; for a generated CA also its common name. Default "OpenCIS Issuing CA". */
  name?: string;
  /** An existing CA to use instead of generating one (certificate PEM, private key PEM: PKCS#8, SEC1 or PKCS#1). */
  import?: { certificatePem: string; privateKeyPem: string };
}

async function insertAuthority(tx: Repositories, ctx: ServiceContext, prepared: PreparedAuthority): Promise<string> {
  const id = `ca_${randomUUID()}`;
  const certificate = new x509.X509Certificate(prepared.der);
  await tx.authorities.insertAuthority({
    id,
    name: prepared.name,
    algorithm: prepared.algorithm,
    der: prepared.der,
    sealedKey: ctx.sealer.seal(prepared.pkcs8, KEY_PURPOSE),
    notAfter: certificate.notAfter,
    now: ctx.clock.now(),
  });
  return id;
}

/**
 * Returns the active CA. At first start generates one (self-signed root, 10 years) or, given `import`, installs that
 * one; importing a different CA later retires the current one (its certificates still verify until they expire).
 * Two nodes starting at once end with one active CA: creation runs under an advisory lock, and a partial unique index
 * allows one active row.
 */
export async function ensureCertificateAuthority(
  ctx: ServiceContext,
  options: EnsureCertificateAuthorityOptions = {},
): Promise<CertificateAuthority> {
  const imported = options.import ? prepareImport(options.import, options.name, ctx.clock.now()) : null;
  if (!imported) {
    const current = await activeAuthority(ctx.repos);
    if (current) return publicView(current, 'active');
  }
  const id = await ctx.transaction(async (tx) => {
    await tx.authorities.lockAuthorities();
    const current = await tx.authorities.activeAuthorityCertificate();
    if (!imported) {
      if (current) return current.id;
      const prepared = await generateAuthority(
        ctx.clock.now(),
        options.algorithm ?? 'ECDSA-P256',
        options.name ?? DEFAULT_CA_NAME,
      );
      const created = await insertAuthority(tx, ctx, prepared);
      await appendAudit(tx, ctx, {
        action: 'pki.ca_created',
        targetType: 'certificate_authority',
        targetId: created,
        before: null,
        after: auditView(prepared),
      });
      return created;
    }
    if (current && Buffer.from(current.certificate_der).equals(imported.der)) return current.id;
    if (current) await tx.authorities.retireAuthority(current.id);
    let target = await tx.authorities.authorityIdWithCertificate(imported.der);
    if (target) await tx.authorities.activateAuthority(target);
    else target = await insertAuthority(tx, ctx, imported);
    await appendAudit(tx, ctx, {
      action: 'pki.ca_imported',
      targetType: 'certificate_authority',
      targetId: target,
      before: current ? { activeAuthorityId: current.id } : null,
      after: auditView(imported),
    });
    return target;
  });
  return publicView(await authorityFromCache(ctx.repos, id), 'active');
}

/**
 * CA rotation: generates a new CA and makes it the active one on every node at once (the active CA is read from the
 * database at each issue); the current one is retired — its certificates keep verifying until they expire and its CRL
 * and OCSP keep answering. Nothing stops: cards in use keep working, new cards and renewals get the new CA. Anyone who
 * checks card certificates themselves must trust the new CA certificate (GET /pki/ca.crt, `opencis ca show --pem`)
 * before cards renewed by it reach them.
 */
export async function rotateCertificateAuthority(
  ctx: ServiceContext,
  options: { algorithm?: CaKeyAlgorithm; name?: string } = {},
): Promise<CertificateAuthority> {
  const prepared = await generateAuthority(
    ctx.clock.now(),
    options.algorithm ?? 'ECDSA-P256',
    options.name ?? DEFAULT_CA_NAME,
  );
  const id = await ctx.transaction(async (tx) => {
    await tx.authorities.lockAuthorities();
    const retired = await tx.authorities.retireActiveAuthority();
    const created = await insertAuthority(tx, ctx, prepared);
    await appendAudit(tx, ctx, {
      action: 'pki.ca_rotated',
      targetType: 'certificate_authority',
      targetId: created,
      before: retired ? { activeAuthorityId: retired } : null,
      after: auditView(prepared),
    });
    return created;
  });
  return publicView(await authorityFromCache(ctx.repos, id), 'active');
}

// Issuing

export interface IssueAuthenticationCertificateInput {
  userId: string;
  cardId: string | null;
  /** DER SubjectPublicKeyInfo of the key generated on the card: EC P-256 or RSA ≥ 2048 bits. */
  publicKeySpki: Buffer;
  /** Default 730 (about two years, DOMAIN §6). Capped at the CA's own expiry. */
  validityDays?: number;
  /**
   * Expiry waves: end on the least busy day within ± this many days of the nominal end (CARD_EXPIRY_SPREAD_DAYS).
   * Default 0: exactly validityDays.
   */
  expirySpreadDays?: number;
  notBefore?: Date;
  /** Base URL the certificate points relying parties to: `${publicUrl}/pki/crl`, `${publicUrl}/pki/ocsp`. */
  publicUrl: string;
}

export interface IssuedCertificate {
  serial: string;
  der: Buffer;
  pem: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Issues and records an authentication certificate bound to a 12-digit user ID (and the card holding the key).
 * `(ctx, input)` runs its own transaction; `(tx, ctx, input)` runs inside the caller's (card services), so the card
 * and its certificate commit together.
 */
export function issueAuthenticationCertificate(
  ctx: ServiceContext,
  input: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate>;
export function issueAuthenticationCertificate(
  tx: Repositories,
  ctx: ServiceContext,
  input: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate>;
export function issueAuthenticationCertificate(
  first: ServiceContext | Repositories,
  second: ServiceContext | IssueAuthenticationCertificateInput,
  third?: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate> {
  if (third) return issueIn(first as Repositories, second as ServiceContext, third);
  const ctx = first as ServiceContext;
  return ctx.transaction((tx) => issueIn(tx, ctx, second as IssueAuthenticationCertificateInput));
}

async function issueIn(
  tx: Repositories,
  ctx: ServiceContext,
  input: IssueAuthenticationCertificateInput,
): Promise<IssuedCertificate> {
  if (!isNationalId(input.userId)) throw new AppError('person.invalid_user_id');
  if (
    input.cardId !== null &&
    (typeof input.cardId !== 'string' || input.cardId.length < 1 || input.cardId.length > 100)
  ) {
    throw new AppError('request.invalid', { field: 'cardId' });
  }
  const days = input.validityDays ?? 730;
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new AppError('pki.invalid_validity', { validityDays: days });
  }
  const spread = input.expirySpreadDays ?? 0;
  if (!Number.isInteger(spread) || spread < 0 || spread > 60 || spread >= days) {
    throw new AppError('pki.invalid_validity', { expirySpreadDays: spread });
  }
  const spki = checkedPublicKey(input.publicKeySpki);
  const base = baseUrl(input.publicUrl);
  const authority = await requireActiveAuthority(tx);
  const notBefore = wholeSeconds(input.notBefore ?? ctx.clock.now());
  const nominal = new Date(notBefore.getTime() + days * 86_400_000);
  const wanted = spread === 0 ? nominal : await leastBusyEnd(tx, nominal, spread);
  // A certificate should not outlive its issuer: relying parties would reject the chain anyway.
  const notAfter = new Date(Math.min(wanted.getTime(), authority.notAfter.getTime()));
  if (notAfter <= notBefore) throw new AppError('pki.invalid_validity', { reason: 'the CA expires first' });

  const subject = authenticationSubject(input.userId);
  const serial = newSerial();
  const der = await signAuthenticationCertificate(authority, await authoritySigningKey(authority, ctx.sealer), {
    serial,
    userId: input.userId,
    spki,
    notBefore,
    notAfter,
    base,
  });
  const publicKeySha256 = createHash('sha256').update(spki).digest('hex');
  await tx.certificates.insertCertificate({
    serial,
    authorityId: authority.id,
    userId: input.userId,
    cardId: input.cardId,
    subject: subject.text,
    notBefore,
    notAfter,
    der,
    publicKeySha256,
    now: ctx.clock.now(),
  });
  await appendAudit(tx, ctx, {
    action: 'pki.certificate_issued',
    targetType: 'person',
    targetId: input.userId,
    before: null,
    after: {
      serial,
      authorityId: authority.id,
      cardId: input.cardId,
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      publicKeySha256,
    },
  });
  return { serial, der, pem: pemOf(der, 'CERTIFICATE'), notBefore, notAfter };
}

/** The least busy expiry day within ± spread days of the nominal end (domain/credentials/expiry-spread.ts). */
async function leastBusyEnd(tx: Repositories, nominal: Date, spread: number): Promise<Date> {
  const candidates = expiryCandidates(nominal, spread);
  const rows = await tx.certificates.validEndsPerDay(
    new Date(candidates[0]!.getTime() - DAY_MS),
    new Date(candidates.at(-1)!.getTime() + DAY_MS),
  );
  const load = new Map(rows.map((r) => [r.day, Number(r.n)]));
  return leastBusyExpiry(candidates, ukDate, load, (n) => randomInt(n));
}

// Revoking

function checkedReason(reason: string): RevocationReason {
  if (!isRevocationReason(reason)) throw new AppError('pki.invalid_revocation_reason', { reason });
  return reason;
}

async function recordRevocations(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  revoked: { serial: string; user_id: string; card_id: string | null }[],
  reason: RevocationReason,
  at: Date,
): Promise<void> {
  if (revoked.length === 0) return;
  // Every node's cached CRL is stale from this commit on.
  await tx.certificates.bumpRevocationVersion();
  for (const r of revoked) {
    await appendAudit(tx, ctx, {
      action: 'pki.certificate_revoked',
      targetType: 'person',
      targetId: r.user_id,
      before: { serial: r.serial, status: 'valid' },
      after: { serial: r.serial, status: 'revoked', cardId: r.card_id, reason, revokedAt: at.toISOString() },
    });
  }
}

async function revokeIn(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  serial: string,
  reason: RevocationReason,
): Promise<boolean> {
  const why = checkedReason(reason);
  const normalised = serial.toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(normalised)) throw new AppError('pki.certificate_not_found');
  const at = wholeSeconds(ctx.clock.now());
  const rows = await tx.certificates.revokeValidCertificate(normalised, at, why);
  if (rows.length === 0) {
    if (!(await tx.certificates.certificateExists(normalised))) throw new AppError('pki.certificate_not_found');
    return false;
  }
  await recordRevocations(tx, ctx, rows, why, at);
  return true;
}

/**
 * Revokes one certificate: `(ctx, serial, reason)` in its own transaction, `(tx, ctx, serial, reason)` inside the
 * caller's. Returns false when it was already revoked — revoking twice is a no-op, not an error; throws
 * pki.certificate_not_found for a serial OpenCIS never issued.
 */
export function revokeCertificate(ctx: ServiceContext, serial: string, reason: RevocationReason): Promise<boolean>;
export function revokeCertificate(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  serial: string,
  reason: RevocationReason,
): Promise<boolean>;
export function revokeCertificate(
  first: ServiceContext | Repositories,
  second: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'> | string,
  third: string,
  fourth?: RevocationReason,
): Promise<boolean> {
  if (fourth !== undefined) {
    return revokeIn(
      first as Repositories,
      second as Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
      third,
      fourth,
    );
  }
  const ctx = first as ServiceContext;
  return ctx.transaction((tx) => revokeIn(tx, ctx, second as string, third as RevocationReason));
}

/**
 * Revokes every still-valid certificate on a card, inside the card service's own transaction (lost, stolen, damaged
 * or returned card). Returns the serials it revoked; none is not an error.
 */
export async function revokeCertificatesOfCard(
  tx: Repositories,
  ctx: Pick<ServiceContext, 'clock' | 'actor' | 'requestId' | 'sealer'>,
  cardId: string,
  reason: RevocationReason,
): Promise<string[]> {
  const why = checkedReason(reason);
  const at = wholeSeconds(ctx.clock.now());
  const rows = await tx.certificates.revokeValidCertificatesOfCard(cardId, at, why);
  rows.sort((a, b) => (a.serial < b.serial ? -1 : 1));
  await recordRevocations(tx, ctx, rows, why, at);
  return rows.map((r) => r.serial);
}
