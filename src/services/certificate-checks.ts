import type { KeyObject } from 'node:crypto';
import {
  type CheckedCertificate,
  checkedFrom,
  forgetCertificate,
  parsePresented,
  presentedFingerprint,
  rememberCertificate,
  rememberedCertificate,
  signedBy,
} from '../authenticators/smartcard/certificate.ts';
import { AppError } from '../domain/errors.ts';
import { authorityFromCache } from '../pki/authority.ts';
import type { VerificationRow } from '../storage/repositories/certificates.ts';
import type { Repositories } from '../storage/repositories/index.ts';

export interface VerifiedAuthenticationCertificate {
  userId: string;
  serial: string;
  cardId: string | null;
  publicKey: KeyObject;
  algorithm: 'ES256' | 'RS256';
  notAfter: Date;
}

/** Parses a certificate never seen before and finds the OpenCIS CA whose signature it carries, with its status row. */
async function checkNewCertificate(
  q: Repositories,
  der: Buffer,
): Promise<{ checked: CheckedCertificate; row: VerificationRow }> {
  const { cert, serial } = parsePresented(der);
  const rows = await q.certificates.verificationRows(serial);
  let row: VerificationRow | undefined;
  for (const candidate of rows) {
    if (signedBy(cert, await authorityFromCache(q, candidate.authority_id))) {
      row = candidate;
      break;
    }
  }
  if (!row) throw new AppError('pki.certificate_untrusted');
  return { checked: checkedFrom(cert, serial, row.authority_id), row };
}

/**
 * Checks a presented authentication certificate: signed by an OpenCIS CA (active or retired), known, within its
 * validity at `at` (or after it, with `allowExpired`: only for renewal at the RA desk), not revoked. Status comes from
 * the database — the same rows OCSP answers from — in one query, on every call. CA certificates and keys are parsed
 * once per process, and so is each presented certificate (parsing it and checking its CA signature are remembered for
 * the most recent ones, by SHA-256 of the DER: authenticators/smartcard/certificate.ts): a repeat sign-in with the same
 * card costs the one indexed status query.
 */
export async function verifyAuthenticationCertificate(
  repos: Repositories,
  der: Buffer,
  at: Date,
  options: { allowExpired?: boolean } = {},
): Promise<VerifiedAuthenticationCertificate> {
  const fingerprint = presentedFingerprint(der);
  let checked = rememberedCertificate(fingerprint);
  let row: VerificationRow | undefined;
  if (checked) {
    row = await repos.certificates.verificationRow(checked.serial, checked.authorityId);
    if (!row) forgetCertificate(fingerprint);
  }
  if (!checked || !row) {
    // Not seen before — or its CA is not in this database (one process on several databases: tests): check it all.
    ({ checked, row } = await checkNewCertificate(repos, der));
  }
  rememberCertificate(fingerprint, checked);
  if (!row.user_id || !row.not_before || !row.not_after) throw new AppError('pki.certificate_unknown');
  if (checked.publicKeySha256 !== row.public_key_sha256) throw new AppError('pki.certificate_unknown');
  if (at < new Date(row.not_before)) throw new AppError('pki.certificate_not_yet_valid');
  if (at > new Date(row.not_after) && !options.allowExpired) throw new AppError('pki.certificate_expired');
  if (row.status !== 'valid') throw new AppError('pki.certificate_revoked');
  return {
    userId: row.user_id,
    serial: checked.serial,
    cardId: row.card_id,
    publicKey: checked.publicKey,
    algorithm: checked.algorithm,
    notAfter: new Date(row.not_after),
  };
}
