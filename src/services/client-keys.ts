import { z } from 'zod';

/**
 * The public keys a private_key_jwt relying party registers (RFC 7517 JWK Set), checked at registration so that a key
 * OpenCIS would never accept an assertion from is refused then, not at the first sign-in. CIS2 documents RS512 for
 * private_key_jwt (the NHS England application manage-breast-screening registers `"alg": "RS512"`); RS256, PS256 and
 * ES256 are accepted too. RSA keys under 2048 bits are refused (NIST SP 800-131A; jose refuses them at verification as
 * well), private key material is never stored, and a key's `alg` must suit its type.
 */
export const CLIENT_AUTH_ALGS = ['RS256', 'RS512', 'PS256', 'ES256'] as const;
export type ClientAuthAlg = (typeof CLIENT_AUTH_ALGS)[number];

/** Members that hold private (or symmetric) key material: a public key set never has them. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;

const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'base64url');

function bitLength(b64: string): number {
  const bytes = Buffer.from(b64, 'base64url');
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

const publicJwkSchema = z
  .object({
    kty: z.enum(['RSA', 'EC'], { message: 'kty must be RSA or EC' }),
    kid: z.string().min(1).max(200).optional(),
    use: z.literal('sig', { message: 'use must be sig' }).optional(),
    alg: z.enum(CLIENT_AUTH_ALGS, { message: `alg must be one of ${CLIENT_AUTH_ALGS.join(', ')}` }).optional(),
    n: base64url.max(2_000).optional(),
    e: base64url.max(20).optional(),
    crv: z.string().max(20).optional(),
    x: base64url.max(100).optional(),
    y: base64url.max(100).optional(),
  })
  .catchall(z.unknown())
  .superRefine((k, ctx) => {
    for (const member of PRIVATE_MEMBERS) {
      if (member in k)
        ctx.addIssue({ code: 'custom', path: [member], message: 'a private key: register public keys only' });
    }
    if (k.kty === 'RSA') {
      if (!k.n || !k.e) {
        ctx.addIssue({ code: 'custom', path: ['n'], message: 'an RSA key needs n and e' });
        return;
      }
      const bits = bitLength(k.n);
      if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
        ctx.addIssue({
          code: 'custom',
          path: ['n'],
          message: `RSA keys must be ${MIN_RSA_BITS}–${MAX_RSA_BITS} bits (this one is ${bits})`,
        });
      }
      if (k.alg === 'ES256') ctx.addIssue({ code: 'custom', path: ['alg'], message: 'ES256 needs an EC P-256 key' });
    } else {
      if (k.crv !== 'P-256' || !k.x || !k.y) {
        ctx.addIssue({ code: 'custom', path: ['crv'], message: 'EC keys must be P-256 with x and y' });
      }
      if (k.alg && k.alg !== 'ES256') {
        ctx.addIssue({ code: 'custom', path: ['alg'], message: `${k.alg} needs an RSA key` });
      }
    }
  });

export const publicJwkSetSchema = z.object({ keys: z.array(publicJwkSchema).min(1).max(10) });
