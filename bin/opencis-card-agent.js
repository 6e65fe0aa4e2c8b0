#!/usr/bin/env node
// The `opencis-card-agent` command: the local smartcard agent. Runs its TypeScript sources through tsx, like `opencis`.
import { register } from 'tsx/esm/api';

register();
const { runCardAgentCli } = await import('../src/card-agent/main.ts');
process.exitCode = await runCardAgentCli(process.argv.slice(2));
