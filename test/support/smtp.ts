import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { freePort } from './server.ts';

/** A certificate authority and a certificate for localhost / 127.0.0.1 it issued, made with openssl for one test run. */
export function localhostCertificate(): { dir: string; caFile: string; key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'opencis-smtp-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=OpenCIS test mail CA');
  run('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  run(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'san.ext',
    '-out',
    'server.pem',
  );
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
  };
}

export interface ReceivedMail {
  from: string;
  to: string[];
  /** Whether the session had switched to TLS (STARTTLS) before the message. */
  secure: boolean;
  user: string | undefined;
  raw: string;
}

export interface TestSmtpServer {
  port: number;
  caFile: string;
  user: string;
  password: string;
  received: ReceivedMail[];
  /** Recipients the server refuses with 550 (no such mailbox). */
  rejectRecipients: Set<string>;
  /** Stops listening: connections are refused until start(). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

/**
 * A real SMTP server (the smtp-server package, Nodemailer's own) on a loopback port: STARTTLS with a certificate from a
 * test CA, AUTH PLAIN/LOGIN with one user, and the messages it accepted kept in memory.
 */
export async function startSmtpServer(options: { starttls?: boolean } = {}): Promise<TestSmtpServer> {
  const tls = localhostCertificate();
  const port = await freePort();
  const user = 'opencis';
  const password = 'correct horse battery staple';
  const received: ReceivedMail[] = [];
  const rejectRecipients = new Set<string>();
  const serverOptions: SMTPServerOptions = {
    key: tls.key,
    cert: tls.cert,
    // starttls: false is a server (or a man in the middle) that strips STARTTLS and would take a password in clear.
    ...(options.starttls === false ? { disabledCommands: ['STARTTLS'], allowInsecureAuth: true } : {}),
    // Otherwise credentials only over TLS, as a real submission server does.
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    // stop() is the server going away: open connections are cut, not waited for.
    closeTimeout: 100,
    onAuth(auth, _session, callback) {
      if (auth.username === user && auth.password === password) callback(null, { user });
      else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      if (rejectRecipients.has(address.address)) {
        callback(Object.assign(new Error('No such mailbox'), { responseCode: 550 }));
      } else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          secure: session.secure,
          user: session.user as string | undefined,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  };
  let server: SMTPServer | undefined;
  const start = async () => {
    if (server) return;
    server = new SMTPServer(serverOptions);
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, '127.0.0.1', () => resolve());
    });
  };
  await start();
  return {
    port,
    caFile: tls.caFile,
    user,
    password,
    received,
    rejectRecipients,
    start,
    async stop() {
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

/** The text body of a received mail (quoted-printable soft breaks undone). */
export function mailText(mail: ReceivedMail): string {
  const body = mail.raw.slice(mail.raw.indexOf('\r\n\r\n') + 4);
  return body
    .replace(/=\r\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}
