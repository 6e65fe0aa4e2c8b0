/**
 * The card agent's options (module path, token label, port, the OpenCIS origins it answers, the server, CIS1 settings)
 * as startCardAgent checks them, and what a running agent gives back.
 */
import { z } from 'zod';

export const DEFAULT_AGENT_PORT = 7327;

/** An origin exactly as a browser sends it: scheme, host and optional port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

export const cardAgentOptionsSchema = z.object({
  modulePath: z.string().min(1, 'the PKCS#11 module path is empty'),
  tokenLabel: z.string().min(1).max(32, 'a token label is at most 32 characters').optional(),
  host: z
    .string()
    .default('127.0.0.1')
    .refine((h) => h === '127.0.0.1', 'the card agent listens only on 127.0.0.1 (loopback), never on a network'),
  port: z.coerce
    .number({ error: 'must be a port number (0 to 65535)' })
    .int('must be a port number (0 to 65535)')
    .min(0, 'must be a port number (0 to 65535)')
    .max(65535, 'must be a port number (0 to 65535)')
    .default(DEFAULT_AGENT_PORT),
  allowedOrigins: z
    .array(
      z
        .string()
        .refine(isOrigin, 'must be an origin such as http://localhost:3000 (scheme, host, port; no path or slash)'),
    )
    .min(1, 'at least one allowed origin (the OpenCIS web address) is needed'),
  serverUrl: z
    .string()
    .refine(
      (u) => /^https?:\/\//.test(u) && URL.canParse(u),
      'must be the OpenCIS server URL, e.g. http://localhost:3000',
    )
    .transform((u) => u.replace(/\/+$/, '')),
  serverTimeoutMs: z.number().int().positive().default(10_000),
  /** This agent installation's id: CIS1 sessions and tickets are bound to it (default: a new random id per start). */
  workstationId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{16,64}$/, 'must be 16 to 64 letters, digits, "-" or "_"')
    .optional(),
  /** Origins of web applications allowed to ask for the CIS1 ticket (getTicket). */
  cis1AllowedOrigins: z
    .array(
      z
        .string()
        .refine(
          isOrigin,
          'must be an origin such as https://pas.example.nhs.uk (scheme, host, port; no path or slash)',
        ),
    )
    .default([]),
  /** Whether local programs (no Origin header, not a browser) may ask for the CIS1 ticket: native CIS1 applications. */
  cis1AllowLocalProcesses: z.boolean().default(true),
  /** How often the reader is checked while a CIS1 session is open: removal must end it within a second. */
  cis1PollMs: z.number().int().min(50).max(1_000).default(500),
  /** How often the agent tells the server the card is still in (renews the 15-minute idle limit). */
  cis1HeartbeatMs: z
    .number()
    .int()
    .min(1_000)
    .max(5 * 60_000)
    .default(60_000),
});

export type CardAgentOptions = z.input<typeof cardAgentOptionsSchema> & {
  /** One line per request and per unexpected failure; never secrets. Default: stderr. */
  log?: (line: string) => void;
};

export interface RunningCardAgent {
  url: string;
  port: number;
  /** This agent's workstation id (CIS1 tickets are bound to it). */
  workstationId: string;
  close(): Promise<void>;
}
