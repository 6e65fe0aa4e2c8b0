/**
 * An OpenCIS cluster on this machine: N nodes (`node bin/opencis.js serve`, the same command as `npm start`) on one
 * PostgreSQL schema and one Redis, behind HAProxy from Debian (`apt-get install -y haproxy`). Used by
 * `npm run cluster` (scripts/cluster/run.ts), the load generator (bench/load), the soak and the fault tests
 * (test/faults).
 *
 * Everything listens on 127.0.0.1 only. The nodes share a SECRETS_KEY kept in the state directory (created on first use,
 * mode 0600, never committed: see .gitignore here); each node has its own DATA_DIR (notification outbox, lock file).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_STATE_DIR = join(REPO_ROOT, 'scripts', 'cluster', '.state');
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export interface ClusterOptions {
  /** Nodes to start (default 3). */
  nodes?: number;
  /** The load balancer listens on basePort; node i (1-based) on basePort + i. Default 3100. */
  basePort?: number;
  databaseUrl?: string;
  /** PostgreSQL schema all nodes share (default opencis_cluster). */
  schema?: string;
  /** Redis for OpenID Connect state; null: keep it in PostgreSQL. */
  redisUrl?: string | null;
  /** Where the secrets key, haproxy.cfg, node data directories and logs go. */
  stateDir?: string;
  logLevel?: string;
  /** More environment for every node (e.g. CARD_TRANSPORT_SO_PIN). */
  env?: Record<string, string>;
  /** Drop the schema first (a fresh database). */
  fresh?: boolean;
  /** Seconds to wait for each node to be ready (default 120: a node starts in ~5–20 s on a busy 2-core machine). */
  readyTimeoutSeconds?: number;
  /** Log lines of this script (default: none). */
  log?: (line: string) => void;
}

export interface ClusterNode {
  name: string;
  index: number;
  port: number;
  /** http://127.0.0.1:PORT — the node directly, bypassing the load balancer. */
  url: string;
  dataDir: string;
  logFile: string;
  proc: ChildProcess | null;
  pid: number | null;
  /** PostgreSQL application_name of this node's connections (to find its backends' CPU). */
  applicationName: string;
}

/** What `npm run cluster` writes to STATE_DIR/cluster.json for other tools (load generator, soak). */
export interface ClusterState {
  publicUrl: string;
  lbUrl: string;
  statsUrl: string;
  databaseUrl: string;
  schema: string;
  redisUrl: string | null;
  secretsKeyFile: string;
  haproxyPid: number | null;
  nodes: { name: string; port: number; url: string; pid: number | null; applicationName: string }[];
  startedAt: string;
}

export interface Cluster {
  /** What people and relying parties use: http://localhost:BASE_PORT (PUBLIC_URL of every node). */
  publicUrl: string;
  /** The load balancer on loopback: http://127.0.0.1:BASE_PORT. */
  lbUrl: string;
  /** HAProxy's statistics page. */
  statsUrl: string;
  databaseUrl: string;
  schema: string;
  redisUrl: string | null;
  secretsKey: string;
  stateDir: string;
  nodes: ClusterNode[];
  haproxy: ChildProcess | null;
  /** The environment node i runs with (to run `opencis` commands against the same database). */
  envFor(node: ClusterNode): Record<string, string>;
  /** Starts (or restarts) a stopped node and waits until it is ready. */
  startNode(node: ClusterNode): Promise<void>;
  /** Sends a signal to a node (SIGKILL: a crash; SIGTERM: graceful drain) and waits for it to exit. */
  stopNode(node: ClusterNode, signal?: NodeJS.Signals): Promise<number | null>;
  /** Waits until HAProxy reports `expectedUp` nodes up (health checks every second). */
  waitBalanced(expectedUp?: number, timeoutSeconds?: number): Promise<void>;
  state(): ClusterState;
  /** Stops the nodes (SIGTERM: they drain in-flight requests), then HAProxy. */
  stop(): Promise<void>;
}

export function assertLoopbackUrl(url: string, what: string): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!LOOPBACK.has(host))
    throw new Error(`${what} must be a loopback address (127.0.0.1, ::1, localhost), not ${host}`);
}

/** The cluster's secrets key: read from STATE_DIR/secrets.key, or made there (mode 0600) on first use. */
export function clusterSecretsKey(stateDir: string): { key: string; file: string } {
  const file = join(stateDir, 'secrets.key');
  mkdirSync(stateDir, { recursive: true });
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  const key = readFileSync(file, 'utf8').trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(key)) throw new Error(`${file} does not hold a base64 32-byte key`);
  return { key, file };
}

/**
 * HAProxy's own answers (no node up, a node that died mid-answer, a node too slow to answer) in OpenCIS's error
 * shape, so a client sees the same catalogued codes whoever answered. Written next to haproxy.cfg. (HAProxy 2.6 still
 * uses its built-in pages for the 400/408 its connection layer sends before a request exists, e.g. a slow-loris cut
 * off by `timeout http-request`.)
 */
export function writeErrorFiles(dir: string): Record<number, string> {
  mkdirSync(dir, { recursive: true });
  const unavailable = {
    status: 503,
    reason: 'Service Unavailable',
    code: 'service.unavailable',
    message: 'The service is temporarily unavailable. Try again shortly.',
    retryAfter: true,
  };
  const answers: Record<
    number,
    { status: number; reason: string; code: string; message: string; retryAfter?: boolean }
  > = {
    400: { status: 400, reason: 'Bad Request', code: 'request.invalid', message: 'The request is not valid.' },
    408: {
      status: 408,
      reason: 'Request Timeout',
      code: 'request.timeout',
      message: 'The request took too long to arrive.',
    },
    502: unavailable,
    503: unavailable,
    504: unavailable,
  };
  const files: Record<number, string> = {};
  for (const [key, a] of Object.entries(answers)) {
    const body = JSON.stringify({ error: { code: a.code, message: a.message, details: {} } });
    const file = join(dir, `${key}.http`);
    writeFileSync(
      file,
      [
        `HTTP/1.1 ${a.status} ${a.reason}`,
        'content-type: application/json; charset=utf-8',
        'cache-control: no-store',
        ...(a.retryAfter ? ['retry-after: 5'] : []),
        `content-length: ${Buffer.byteLength(body)}`,
        'connection: close',
        '',
        body,
      ].join('\r\n'),
    );
    files[Number(key)] = file;
  }
  return files;
}

export function haproxyConfig(options: {
  basePort: number;
  nodes: { name: string; port: number }[];
  errorFiles?: Record<number, string>;
}): string {
  const { basePort, nodes } = options;
  const errorFiles = Object.entries(options.errorFiles ?? {})
    .map(([status, file]) => `  errorfile ${status} ${file}`)
    .join('\n');
  return `# Generated by scripts/cluster/cluster.ts — do not edit; it is rewritten at every start.
global
  maxconn 8000
  # no "daemon": HAProxy runs in the foreground under the cluster script

defaults
  mode http
  timeout connect 2s
  timeout client 80s
  timeout server 35s
  timeout http-request 10s
  # Longer than the keep-alive the nodes announce (Keep-Alive: timeout=72), which clients follow: neither side
  # closes an idle connection the other is about to reuse.
  timeout http-keep-alive 75s
  timeout queue 10s
  # A connection refused by a node that just died is retried on another node (nothing was sent, so it is safe for
  # every method). A request already sent is never replayed: a POST may have been committed.
  retries 2
  retry-on conn-failure
  option redispatch 1
${errorFiles}

frontend opencis
  bind 127.0.0.1:${basePort}
  # The client address the nodes see (TRUST_PROXY=127.0.0.1: HAProxy's hop only) is the one HAProxy saw: a client's own
  # X-Forwarded-For is dropped first as well, so nobody can pick the address the per-IP sign-in limits count against.
  http-request del-header X-Forwarded-For
  http-request del-header Forwarded
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
  # Which node answered (for the load generator's per-node counts).
  http-response set-header X-OpenCIS-Node %s
  default_backend nodes

backend nodes
  balance roundrobin
  # Readiness, not liveness: a node whose database is unreachable, or that is draining (SIGTERM), answers 503 and gets
  # no new requests; it comes back by itself.
  option httpchk GET /health/ready
  http-check expect status 200
  default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2 maxconn 500
${nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.port} check`).join('\n')}

listen stats
  bind 127.0.0.1:${basePort + 99}
  stats enable
  stats uri /
  stats refresh 2s
`;
}

function httpGet(url: string, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(url, { method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitReady(url: string, timeoutSeconds: number, proc?: ChildProcess | null): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last = '';
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`${url}: the process exited with ${proc.exitCode}`);
    try {
      const res = await httpGet(`${url}/health/ready`);
      if (res.status === 200) return;
      last = `${res.status} ${res.body.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(250);
  }
  throw new Error(`${url} was not ready after ${timeoutSeconds} s (last answer: ${last})`);
}

/** Drops a PostgreSQL schema (loopback servers only). */
export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const { dropPostgresSchema } = await import('../../src/storage/postgres.ts');
  await dropPostgresSchema(databaseUrl, schema);
}

function withApplicationName(databaseUrl: string, name: string): string {
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', name);
  return url.toString();
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 16) throw new Error('nodes must be 1 to 16');
  const basePort = options.basePort ?? 3100;
  const databaseUrl = options.databaseUrl ?? DEFAULT_DATABASE_URL;
  const schema = options.schema ?? 'opencis_cluster';
  const redisUrl = options.redisUrl === undefined ? DEFAULT_REDIS_URL : options.redisUrl;
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  const log = options.log ?? (() => {});
  const readyTimeout = options.readyTimeoutSeconds ?? 120;
  assertLoopbackUrl(databaseUrl, 'DATABASE_URL');
  if (redisUrl) assertLoopbackUrl(redisUrl, 'REDIS_URL');
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  mkdirSync(stateDir, { recursive: true });
  const { key: secretsKey, file: secretsKeyFile } = clusterSecretsKey(stateDir);
  if (options.fresh) {
    log(`dropping schema ${schema}`);
    await dropSchema(databaseUrl, schema);
  }

  const publicUrl = `http://localhost:${basePort}`;
  const lbUrl = `http://127.0.0.1:${basePort}`;
  const statsUrl = `http://127.0.0.1:${basePort + 99}/`;
  const tag = `${basePort}`;
  const nodes: ClusterNode[] = Array.from({ length: count }, (_, i) => {
    const name = `node${i + 1}`;
    const port = basePort + i + 1;
    const dataDir = join(stateDir, `${tag}-${name}`);
    mkdirSync(dataDir, { recursive: true });
    return {
      name,
      index: i,
      port,
      url: `http://127.0.0.1:${port}`,
      dataDir,
      logFile: join(stateDir, `${tag}-${name}.log`),
      proc: null,
      pid: null,
      applicationName: `opencis-${tag}-${name}`,
    };
  });

  const envFor = (node: ClusterNode): Record<string, string> => ({
    PORT: String(node.port),
    HOST: '127.0.0.1',
    PUBLIC_URL: publicUrl,
    DATABASE_URL: withApplicationName(databaseUrl, node.applicationName),
    DATABASE_SCHEMA: schema,
    ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    SECRETS_KEY: secretsKey,
    DATA_DIR: node.dataDir,
    TRUST_PROXY: '127.0.0.1',
    DEMO_DATA: 'false',
    LOG_LEVEL: options.logLevel ?? 'warn',
    // On SIGTERM a node fails readiness and keeps serving until HAProxy has taken it out (checks every 1 s, fall 2,
    // see haproxyConfig): no request meets a node that has stopped accepting.
    SHUTDOWN_DRAIN_SECONDS: '3',
    ...options.env,
  });

  const startNode = async (node: ClusterNode): Promise<void> => {
    if (node.proc && node.proc.exitCode === null && node.proc.signalCode === null) return;
    // The log file is the child's own stdout/stderr: it keeps logging if this process goes away.
    const fd = openSync(node.logFile, 'a');
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...envFor(node) };
    // CLUSTER_NODE_ARGS: extra Node.js options for each node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to see where a
    // node's CPU goes under load; Node refuses --cpu-prof in NODE_OPTIONS).
    const nodeArgs = (process.env.CLUSTER_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const proc = spawn(process.execPath, [...nodeArgs, 'bin/opencis.js', 'serve'], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    node.proc = proc;
    node.pid = proc.pid ?? null;
    log(`${node.name}: started (pid ${node.pid}, port ${node.port}, log ${node.logFile})`);
    await waitReady(node.url, readyTimeout, proc);
    log(`${node.name}: ready`);
  };

  const stopNode = async (node: ClusterNode, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    const proc = node.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(timer);
    log(`${node.name}: stopped (${signal})`);
    return code;
  };

  let haproxy: ChildProcess | null = null;
  const cfgFile = join(stateDir, `haproxy-${tag}.cfg`);
  const errorFiles = writeErrorFiles(join(stateDir, `haproxy-${tag}-errors`));
  writeFileSync(cfgFile, haproxyConfig({ basePort, nodes, errorFiles }));

  const cluster: Cluster = {
    publicUrl,
    lbUrl,
    statsUrl,
    databaseUrl,
    schema,
    redisUrl,
    secretsKey,
    stateDir,
    nodes,
    get haproxy() {
      return haproxy;
    },
    envFor,
    startNode,
    stopNode,
    async waitBalanced(expectedUp = nodes.filter((n) => n.proc?.exitCode === null).length, timeoutSeconds = 30) {
      const deadline = Date.now() + timeoutSeconds * 1000;
      let up = -1;
      while (Date.now() < deadline) {
        try {
          const res = await httpGet(`${statsUrl};csv`);
          up = res.body
            .split('\n')
            .filter((l) => l.startsWith('nodes,node'))
            .filter((l) => l.split(',')[17]?.startsWith('UP')).length;
          if (up === expectedUp) return;
        } catch {
          // HAProxy still starting
        }
        await sleep(250);
      }
      throw new Error(`HAProxy saw ${up} nodes up, expected ${expectedUp}, after ${timeoutSeconds} s`);
    },
    state() {
      return {
        publicUrl,
        lbUrl,
        statsUrl,
        databaseUrl,
        schema,
        redisUrl,
        secretsKeyFile,
        haproxyPid: haproxy?.pid ?? null,
        nodes: nodes.map((n) => ({
          name: n.name,
          port: n.port,
          url: n.url,
          pid: n.pid,
          applicationName: n.applicationName,
        })),
        startedAt: new Date().toISOString(),
      };
    },
    async stop() {
      await Promise.all(nodes.map((n) => stopNode(n, 'SIGTERM')));
      if (haproxy && haproxy.exitCode === null && haproxy.signalCode === null) {
        const proc = haproxy;
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        proc.kill('SIGTERM');
        await exited;
        log('haproxy: stopped');
      }
    },
  };

  try {
    // The first node migrates an empty schema and makes the CA; the others then start side by side.
    await startNode(nodes[0]!);
    await Promise.all(nodes.slice(1).map((n) => startNode(n)));
    haproxy = startHaproxy(cfgFile, join(stateDir, `haproxy-${tag}.log`));
    log(`haproxy: started (pid ${haproxy.pid}, ${lbUrl}, config ${cfgFile})`);
    await cluster.waitBalanced(count, 30);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

export function haproxyBinary(): string {
  for (const candidate of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('HAProxy is not installed: apt-get install -y haproxy');
  }
}

function startHaproxy(cfgFile: string, logFile: string): ChildProcess {
  const bin = haproxyBinary();
  execFileSync(bin, ['-c', '-q', '-f', cfgFile], { stdio: 'inherit' });
  const fd = openSync(logFile, 'a');
  const proc = spawn(bin, ['-db', '-f', cfgFile], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return proc;
}

/** Reads the state `npm run cluster` wrote (to drive load at a cluster someone else started). */
export function readClusterState(stateDir = DEFAULT_STATE_DIR): ClusterState {
  const file = join(stateDir, 'cluster.json');
  if (!existsSync(file)) throw new Error(`${file} not found: start the cluster with \`npm run cluster\` first`);
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}
