import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

const ASSETS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'views', 'assets');

/** The console's own stylesheet and scripts (script-src 'self': no inline script anywhere). */
export const raAssetFiles = ['ra.css', 'ra-photo.js', 'ra-apply.js', 'ra-card.js'] as const;

export function registerRaAssets(app: FastifyInstance): void {
  for (const file of raAssetFiles) {
    const body = readFileSync(join(ASSETS, file), 'utf8');
    const type = file.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
    app.get(`/assets/${file}`, { schema: { hide: true } }, async (_req, reply) => {
      reply.header('cache-control', 'no-cache').type(type);
      return body;
    });
  }
}
