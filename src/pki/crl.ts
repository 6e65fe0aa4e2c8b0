import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import type { Sealer } from '../secrets/sealer.ts';
import type { Repositories } from '../storage/repositories/index.ts';
import {
  authoritySigningKey,
  type LoadedAuthority,
  REVOCATION_REASONS,
  type RevocationReason,
  requireActiveAuthority,
  signingAlgorithmOf,
  wholeSeconds,
} from './ca.ts';

/**
 * The CRL of the active CA (RFC 5280 §5): every revoked certificate it issued that has not expired yet, with its
 * reason. A CRL is kept per process and made again when a revocation happened anywhere (pki_crl_state's
 * revocation_version, bumped in each revocation's transaction) or when it is an hour old, so nextUpdate always lies
 * 23–24 hours ahead. CRL numbers come from one database counter: strictly increasing across all nodes.
 */

const NEXT_UPDATE_MS = 24 * 60 * 60_000;
const REMAKE_AFTER_MS = 60 * 60_000;
const OID_CRL_NUMBER = '2.5.29.20';

interface CachedCrl {
  revocationVersion: string;
  thisUpdate: number;
  der: Buffer;
}

const cache = new Map<string, CachedCrl>();
const inflight = new Map<string, Promise<CachedCrl>>();

/** The repositories and unit of work of the CA's state (services/context.ts StoreContext has this shape). */
export interface CrlContext {
  repos: Repositories;
  transaction<T>(fn: (tx: Repositories) => Promise<T>): Promise<T>;
  clock: { now(): Date };
  sealer: Sealer;
}

/** The current DER CRL of the active CA; `publicUrl` is where its CA certificate is published (AIA caIssuers). */
export async function currentCrl(ctx: CrlContext, publicUrl: string): Promise<Buffer> {
  const authority = await requireActiveAuthority(ctx.repos);
  const now = wholeSeconds(ctx.clock.now());
  const version = await ctx.repos.certificates.revocationVersion();
  const key = `${authority.id} ${publicUrl}`;
  const cached = cache.get(key);
  if (
    cached &&
    cached.revocationVersion === version &&
    now.getTime() >= cached.thisUpdate &&
    now.getTime() - cached.thisUpdate < REMAKE_AFTER_MS
  ) {
    return cached.der;
  }
  // One generation at a time per CA in this process; later callers share it.
  let pending = inflight.get(key);
  if (!pending) {
    pending = makeCrl(ctx, authority, publicUrl, now).finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  const made = await pending;
  const latest = cache.get(key);
  if (!latest || BigInt(latest.revocationVersion) <= BigInt(made.revocationVersion)) cache.set(key, made);
  return made.der;
}

interface RevokedRow {
  serial: string;
  revoked_at: Date;
  revocation_reason: RevocationReason;
}

async function makeCrl(ctx: CrlContext, authority: LoadedAuthority, publicUrl: string, now: Date): Promise<CachedCrl> {
  // Reserving the number and reading the entries in one transaction ties the version to what the CRL lists.
  const { number, revocationVersion, revoked } = await ctx.transaction(async (tx) => {
    const state = await tx.certificates.nextCrlNumber();
    const entries = (await tx.certificates.revokedUnexpired(authority.id, now)) as RevokedRow[];
    return {
      number: BigInt(state.crl_number),
      revocationVersion: state.revocation_version,
      revoked: entries,
    };
  });
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.Name(authority.subjectDer),
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + NEXT_UPDATE_MS),
    signingKey: await authoritySigningKey(authority, ctx.sealer),
    signingAlgorithm: signingAlgorithmOf(authority),
    entries: revoked.map((r) => ({
      serialNumber: r.serial,
      revocationDate: new Date(r.revoked_at),
      // RFC 5280 §5.3.1: the reason code SHOULD be absent rather than say "unspecified".
      ...(r.revocation_reason === 'unspecified' ? {} : { reason: REVOCATION_REASONS[r.revocation_reason] }),
    })),
    extensions: [
      new x509.AuthorityKeyIdentifierExtension(authority.keyIdentifier),
      new x509.Extension(OID_CRL_NUMBER, false, integerDer(number)),
      new x509.AuthorityInfoAccessExtension({ caIssuers: [`${publicUrl.replace(/\/+$/, '')}/pki/ca.crt`] }),
    ],
  });
  return { revocationVersion, thisUpdate: now.getTime(), der: Buffer.from(crl.rawData) };
}

function integerDer(value: bigint): ArrayBuffer {
  return asn1js.Integer.fromBigInt(value).toBER();
}
