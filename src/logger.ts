import pino, { type Logger } from 'pino';

/**
 * Structured JSON logs. Requests are logged by method, route and status with their request id; query strings,
 * bodies and headers that carry credentials are never logged (personal data stays out of logs — IDs only).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'opencis' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
          '*.password',
          '*.passcode',
          '*.secret',
          '*.client_secret',
          '*.token',
        ],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: { method?: string; url?: string; id?: string; ip?: string }) => ({
          method: req.method,
          // path only: a query string could carry personal data or a one-time code
          path: typeof req.url === 'string' ? req.url.split('?')[0] : undefined,
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
    destination,
  );
}
