/**
 * The OpenCIS PKI as a library (issue 16): X.509 work for the certificate authority (keys.ts), the authorities as
 * loaded from the database (authority.ts), and authentication certificates (issue.ts). What changes state — creating,
 * rotating, issuing, revoking, each with its audit event — is services/certificates.ts.
 */
export * from './authority.ts';
export * from './issue.ts';
export * from './keys.ts';
