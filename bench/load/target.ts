/**
 * What a load run is aimed at: a cluster it starts itself (default; its own ports and schema, dropped first), the
 * cluster `npm run cluster` is running (LOAD_TARGET=cluster), or one node's URL (LOAD_TARGET=http://127.0.0.1:3101,
 * a node of that running cluster).
 */
import { readFileSync } from 'node:fs';
import {
  type Cluster,
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  readClusterState,
  startCluster,
} from '../../scripts/cluster/cluster.ts';
import type { NodeInfo } from './driver.ts';
import { assertLoopback } from './http.ts';

export interface Target {
  /** Where requests go. */
  base: string;
  publicUrl: string;
  databaseUrl: string;
  schema: string;
  secretsKey: string;
  nodes: NodeInfo[];
  haproxyPid: number | null;
  description: string;
  /** The cluster this run started (null when aimed at someone else's). */
  cluster: Cluster | null;
  close(): Promise<void>;
}

export function wholeNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}

export function positiveNumber(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new Error(`${name} must be a number above 0, at most ${max}`);
  return n;
}

export async function ownCluster(options: {
  nodes: number;
  basePort: number;
  schema: string;
  fresh: boolean;
  log: (line: string) => void;
  redisUrl?: string | null;
}): Promise<Target> {
  const databaseUrl = process.env.LOAD_DATABASE_URL || DEFAULT_DATABASE_URL;
  const cluster = await startCluster({
    nodes: options.nodes,
    basePort: options.basePort,
    databaseUrl,
    schema: options.schema,
    redisUrl: options.redisUrl === undefined ? process.env.LOAD_REDIS_URL || DEFAULT_REDIS_URL : options.redisUrl,
    fresh: options.fresh,
    logLevel: 'warn',
    log: options.log,
  });
  return {
    base: cluster.lbUrl,
    publicUrl: cluster.publicUrl,
    databaseUrl,
    schema: cluster.schema,
    secretsKey: cluster.secretsKey,
    nodes: cluster.nodes.map((n) => ({ name: n.name, pid: n.pid, applicationName: n.applicationName })),
    haproxyPid: cluster.haproxy?.pid ?? null,
    description: `${options.nodes} node${options.nodes === 1 ? '' : 's'} behind HAProxy (started by this run, schema ${cluster.schema})`,
    cluster,
    close: () => cluster.stop(),
  };
}

export async function resolveTarget(log: (line: string) => void): Promise<Target> {
  const wanted = process.env.LOAD_TARGET || 'own';
  if (wanted === 'own') {
    return ownCluster({
      nodes: wholeNumber('LOAD_NODES', 3, 1, 8),
      basePort: wholeNumber('LOAD_PORT', 3200, 1024, 65_000),
      schema: process.env.LOAD_SCHEMA || 'opencis_load',
      fresh: process.env.LOAD_REUSE !== '1',
      log,
    });
  }
  const state = readClusterState();
  const secretsKey = readFileSync(state.secretsKeyFile, 'utf8').trim();
  const nodes = state.nodes.map((n) => ({ name: n.name, pid: n.pid, applicationName: n.applicationName }));
  if (wanted === 'cluster') {
    return {
      base: state.lbUrl,
      publicUrl: state.publicUrl,
      databaseUrl: state.databaseUrl,
      schema: state.schema,
      secretsKey,
      nodes,
      haproxyPid: state.haproxyPid,
      description: `the running cluster (${nodes.length} nodes behind HAProxy, schema ${state.schema})`,
      cluster: null,
      close: async () => {},
    };
  }
  assertLoopback(wanted, 'LOAD_TARGET');
  const base = wanted.replace(/\/+$/, '');
  const node = state.nodes.find((n) => n.url === base || new URL(n.url).port === new URL(base).port);
  return {
    base,
    publicUrl: state.publicUrl,
    databaseUrl: state.databaseUrl,
    schema: state.schema,
    secretsKey,
    nodes: node ? [{ name: node.name, pid: node.pid, applicationName: node.applicationName }] : [],
    haproxyPid: null,
    description: `one node, ${base}${node ? ` (${node.name} of the running cluster)` : ''}`,
    cluster: null,
    close: async () => {},
  };
}
