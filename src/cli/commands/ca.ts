import { readFileSync, statSync } from 'node:fs';
import {
  type CaKeyAlgorithm,
  type CertificateAuthority,
  ensureCertificateAuthority,
  listCertificateAuthorities,
  rotateCertificateAuthority,
} from '../../services/certificates.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';
import { withOperatorContext } from '../database.ts';
import { UsageError } from '../io.ts';

const algorithms: CaKeyAlgorithm[] = ['ECDSA-P256', 'RSA-2048'];
/** A PEM certificate or key is a few KiB; anything far larger is not one. */
const MAX_PEM_BYTES = 64 * 1024;

function readPem(path: string, what: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new UsageError(`cannot read the ${what} file ${path}`);
  }
  if (size > MAX_PEM_BYTES) throw new UsageError(`the ${what} file ${path} is too large to be a PEM ${what}`);
  return readFileSync(path, 'utf8');
}

function describe(ca: CertificateAuthority): string {
  return [
    `${ca.status.padEnd(7)}  ${ca.id}  ${ca.algorithm}  ${ca.subject}`,
    `         valid ${ca.notBefore.toISOString()} – ${ca.notAfter.toISOString()}`,
  ].join('\n');
}

export const caCommand: Command = {
  summary: 'The card CA: show, rotate to a new CA, or import one made offline',
  help: `Usage: opencis ca show [--pem]
       opencis ca rotate [--algorithm ${algorithms.join('|')}] [--name NAME]
       opencis ca import --certificate FILE --key FILE

show     every CA this database knows (active first); --pem prints the active CA's certificate
rotate   generates a new CA and makes it active on every node at once; the current one is retired: certificates it
         issued keep working until they expire (its CRL and OCSP keep answering), new cards and renewals get the new
         CA. Give anyone who checks card certificates themselves the new CA certificate (opencis ca show --pem, or
         GET /pki/ca.crt) first.
import   installs a CA made offline (certificate PEM; private key PEM: PKCS#8, SEC1 or PKCS#1) as the active one,
         retiring the current one. The key is sealed with SECRETS_KEY in the database; delete the key file after.`,
  async run(args, io) {
    const { values, positionals } = parseOptions(
      args,
      {
        pem: { type: 'boolean' },
        algorithm: { type: 'string' },
        name: { type: 'string' },
        certificate: { type: 'string' },
        key: { type: 'string' },
      },
      1,
    );
    const [verb] = positionals;
    switch (verb) {
      case 'show': {
        const all = await withOperatorContext((ctx) => listCertificateAuthorities(ctx.repos));
        if (values.pem) io.out(all[0]!.certificatePem.trim());
        else io.out(all.map(describe).join('\n'));
        return 0;
      }
      case 'rotate': {
        const algorithm = (values.algorithm ?? 'ECDSA-P256') as CaKeyAlgorithm;
        if (!algorithms.includes(algorithm)) throw new UsageError(`--algorithm is one of ${algorithms.join(', ')}`);
        const name = values.name?.trim();
        if (name !== undefined && (name.length === 0 || name.length > 64 || /[\p{Cc}]/u.test(name))) {
          throw new UsageError('--name is 1 to 64 printable characters');
        }
        const ca = await withOperatorContext((ctx) =>
          rotateCertificateAuthority(ctx, { algorithm, ...(name ? { name } : {}) }),
        );
        io.out(`rotated: the active CA is now\n${describe(ca)}\n${ca.certificatePem.trim()}`);
        return 0;
      }
      case 'import': {
        if (!values.certificate || !values.key) throw new UsageError('import needs --certificate FILE and --key FILE');
        const certificatePem = readPem(values.certificate, 'certificate');
        const privateKeyPem = readPem(values.key, 'key');
        const ca = await withOperatorContext((ctx) =>
          ensureCertificateAuthority(ctx, { import: { certificatePem, privateKeyPem } }),
        );
        io.out(`imported: the active CA is now\n${describe(ca)}`);
        return 0;
      }
      default:
        throw new UsageError(verb ? `unknown ca command "${verb}"` : 'say show, rotate or import');
    }
  },
};
