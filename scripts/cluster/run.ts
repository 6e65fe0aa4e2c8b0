/**
 * `npm run cluster` — N OpenCIS nodes behind HAProxy on this machine, until Ctrl-C or SIGTERM.
 *
 *   CLUSTER_NODES      nodes (default 3)
 *   CLUSTER_PORT       load balancer port (default 3100; nodes on the next ports; HAProxy statistics on PORT + 99)
 *   DATABASE_URL       PostgreSQL on loopback (default postgres://postgres@127.0.0.1:5432/test)
 *   DATABASE_SCHEMA    schema the nodes share (default opencis_cluster)
 *   REDIS_URL          Redis on loopback (default redis://127.0.0.1:6379; "none": keep OIDC state in PostgreSQL)
 *   CLUSTER_FRESH=1    drop the schema first
 *   LOG_LEVEL          the nodes' log level (default warn); logs go to scripts/cluster/.state/<port>-nodeN.log
 *   CLUSTER_NODE_ARGS  extra Node.js options for every node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *
 * Writes scripts/cluster/.state/cluster.json (URLs, pids) for the load generator and the soak.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, DEFAULT_STATE_DIR, startCluster } from './cluster.ts';

function wholeNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const redis = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const started = performance.now();
  out('Starting the OpenCIS cluster…');
  const cluster = await startCluster({
    nodes: wholeNumber('CLUSTER_NODES', 3, 1, 16),
    basePort: wholeNumber('CLUSTER_PORT', 3100, 1024, 65_000),
    databaseUrl: process.env.DATABASE_URL || DEFAULT_DATABASE_URL,
    schema: process.env.DATABASE_SCHEMA || 'opencis_cluster',
    redisUrl: redis === 'none' ? null : redis,
    fresh: process.env.CLUSTER_FRESH === '1',
    logLevel: process.env.LOG_LEVEL || 'warn',
    log: (l) => out(`  ${l}`),
  });
  const stateFile = join(DEFAULT_STATE_DIR, 'cluster.json');
  writeFileSync(stateFile, `${JSON.stringify(cluster.state(), null, 2)}\n`);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  out('');
  out(`OpenCIS cluster ready in ${seconds} s: ${cluster.nodes.length} nodes behind HAProxy`);
  out(`  ${cluster.publicUrl}/                 start page (PUBLIC_URL of every node; HAProxy on ${cluster.lbUrl})`);
  out(`  ${cluster.publicUrl}/oidc             OpenID Connect issuer`);
  out(`  ${cluster.publicUrl}/health/ready     readiness (HAProxy checks each node's)`);
  out(`  ${cluster.statsUrl}               HAProxy statistics`);
  for (const n of cluster.nodes) out(`  ${n.url}/health  ${n.name} directly (pid ${n.pid}, log ${n.logFile})`);
  out(`Database: ${cluster.databaseUrl} schema ${cluster.schema}; OIDC state: ${cluster.redisUrl ?? 'PostgreSQL'}`);
  out(`Shared SECRETS_KEY: ${join(cluster.stateDir, 'secrets.key')}. State: ${stateFile}`);
  out('Ctrl-C stops every node (draining requests in flight) and HAProxy.');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    out(`\n${signal}: stopping…`);
    cluster
      .stop()
      .then(() => {
        rmSync(stateFile, { force: true });
        out('Stopped.');
        process.exit(0);
      })
      .catch((err: unknown) => {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A node or HAProxy that dies on its own is reported (the others keep serving; HAProxy routes around it).
  for (const n of cluster.nodes) {
    n.proc?.on('exit', (code, signal) => {
      if (!stopping) out(`${n.name} exited (${signal ?? code}); the other nodes keep serving`);
    });
  }
  cluster.haproxy?.on('exit', (code, signal) => {
    if (!stopping) {
      out(`haproxy exited (${signal ?? code}): stopping the cluster`);
      stop('haproxy exit');
    }
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
