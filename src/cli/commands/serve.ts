import { loadConfig } from '../../config.ts';
import { serve } from '../../main.ts';
import type { Command } from '../command.ts';
import { parseOptions } from '../command.ts';

export const serveCommand: Command = {
  summary: 'Start the OpenCIS server (migrates, loads the RBAC catalogue, seeds demo data on first start)',
  help: `Usage: opencis serve [--port N]

Starts the HTTP server. Settings come from environment variables (PORT, PUBLIC_URL, DATA_DIR, DATABASE_URL, …);
--port overrides PORT. Stops cleanly on SIGTERM or Ctrl-C, finishing requests in flight.`,
  async run(args) {
    const { values } = parseOptions(args, { port: { type: 'string' } });
    const env = { ...process.env, ...(values.port !== undefined ? { PORT: values.port } : {}) };
    await serve(loadConfig(env), { handleSignals: true });
    await new Promise(() => {}); // runs until a signal stops the process
    return 0;
  },
};
