import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/**
 * Which attestations OpenCIS trusts for AAL3 (DOMAIN §6: "attestation from an allowed list"). The library checks that
 * an attestation statement is signed by its certificate; whether that certificate comes from a manufacturer the
 * service trusts is decided here: the x5c chain must verify, certificate by certificate, up to one of the configured
 * root certificates (WEBAUTHN_ATTESTATION_ROOTS, a PEM bundle such as those in the FIDO Metadata Service), every
 * certificate in date at the service's clock and every issuer within the chain a CA. With no roots configured nothing is trusted, so no WebAuthn key reaches AAL3 — the safe default.
 */
export interface AttestationRoots {
  roots(): readonly X509Certificate[];
}

/** Roots read from a PEM bundle, re-read when the file changes (trust anchors can be updated without a restart). */
export function attestationRootsFromFile(path: string | undefined): AttestationRoots {
  let cached: { mtimeMs: number; certs: X509Certificate[] } | undefined;
  return {
    roots() {
      if (!path) return [];
      let mtimeMs: number;
      try {
        mtimeMs = statSync(path).mtimeMs;
      } catch {
        return [];
      }
      if (cached?.mtimeMs !== mtimeMs) cached = { mtimeMs, certs: parsePemBundle(readFileSync(path, 'utf8')) };
      return cached.certs;
    },
  };
}

export function parsePemBundle(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const out: X509Certificate[] = [];
  for (const block of blocks) {
    try {
      out.push(new X509Certificate(block));
    } catch {
      // an unreadable entry trusts nothing; the others still count
    }
  }
  return out;
}

function inDate(cert: X509Certificate, at: Date): boolean {
  return new Date(cert.validFrom) <= at && at <= new Date(cert.validTo);
}

/** True when the chain (leaf first) verifies up to a configured root and every certificate is in date at `at`. */
export function attestationChainTrusted(
  x5c: readonly Uint8Array[],
  roots: readonly X509Certificate[],
  at: Date,
): boolean {
  if (x5c.length === 0 || x5c.length > 5 || roots.length === 0) return false;
  let chain: X509Certificate[];
  try {
    chain = x5c.map((der) => new X509Certificate(Buffer.from(der)));
  } catch {
    return false;
  }
  if (!chain.every((c) => inDate(c, at))) return false;
  for (let i = 0; i + 1 < chain.length; i++) {
    const issuer = chain[i + 1]!;
    // Only a CA issues certificates (RFC 5280 §6.1.4 (k)): an end-entity certificate of a trusted manufacturer — say an
    // attestation certificate whose key was extracted from one device — must not vouch for a certificate of its own.
    if (!issuer.ca || !chain[i]!.checkIssued(issuer) || !chain[i]!.verify(issuer.publicKey)) return false;
  }
  const top = chain.at(-1)!;
  return roots.some(
    (root) =>
      inDate(root, at) &&
      // A configured root is a trust anchor (RFC 5280 §6.1.1 (d)): its name and key are trusted as configured, whatever
      // its own extensions say (Chromium's virtual authenticator's is a self-signed end-entity certificate).
      (top.fingerprint256 === root.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey))),
  );
}
