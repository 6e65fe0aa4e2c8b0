import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type Socket } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
import { AppError } from '../domain/errors.ts';

/**
 * The one HTTP client for every request the server makes on its own (today: oidc-provider's jwks_uri fetches and
 * back-channel logout POSTs; sector_identifier_uri and request_uri are not enabled). A relying party's URIs are chosen
 * by whoever registers it, so without this any RA Manager could make the server GET and POST to its own loopback,
 * the cloud metadata service (169.254.169.254) or the health network behind it (SSRF; issue 15 finding 6).
 *
 * Rules: https only; no credentials in the URL; redirects are never followed; and every address the server connects to
 * must be public — checked on the address actually connected to, after DNS resolution, at connect time, so a name
 * that resolves to a public address at registration and to 127.0.0.1 later (DNS rebinding) is refused too. Loopback,
 * private (RFC 1918, ULA), shared (CGNAT 100.64/10), link-local, unspecified, multicast, documentation, benchmarking
 * and other IANA special-purpose ranges are refused, in IPv4, IPv6 and IPv4-mapped IPv6 forms, unless the operator
 * lists them in OUTBOUND_ALLOWED_RANGES (relying parties on a closed health network; tests). Plain http is allowed only
 * with OUTBOUND_ALLOW_HTTP, and only to addresses in those ranges.
 */
export interface OutboundPolicy {
  readonly allowed: BlockList;
  readonly allowedRanges: readonly string[];
  readonly allowHttp: boolean;
}

/** IANA IPv4 and IPv6 special-purpose address registries (RFC 6890 and updates), plus multicast and reserved. */
const SPECIAL_USE: readonly [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network", unspecified
  ['10.0.0.0', 8, 'ipv4'], // private (RFC 1918)
  ['100.64.0.0', 10, 'ipv4'], // shared address space (CGNAT, RFC 6598)
  ['127.0.0.0', 8, 'ipv4'], // loopback
  ['169.254.0.0', 16, 'ipv4'], // link-local, incl. 169.254.169.254 (cloud metadata)
  ['172.16.0.0', 12, 'ipv4'], // private
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.0.2.0', 24, 'ipv4'], // documentation (TEST-NET-1)
  ['192.88.99.0', 24, 'ipv4'], // 6to4 relay anycast
  ['192.168.0.0', 16, 'ipv4'], // private
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['198.51.100.0', 24, 'ipv4'], // documentation (TEST-NET-2)
  ['203.0.113.0', 24, 'ipv4'], // documentation (TEST-NET-3)
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, incl. broadcast
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'], // loopback
  ['::', 96, 'ipv6'], // IPv4-compatible (deprecated)
  ['64:ff9b::', 96, 'ipv6'], // NAT64 (reaches IPv4 through a translator)
  ['64:ff9b:1::', 48, 'ipv6'], // local-use NAT64
  ['100::', 64, 'ipv6'], // discard-only
  ['2001::', 23, 'ipv6'], // IETF protocol assignments (Teredo, ORCHID…)
  ['2001:db8::', 32, 'ipv6'], // documentation
  ['2002::', 16, 'ipv6'], // 6to4 (embeds an IPv4 address)
  ['3fff::', 20, 'ipv6'], // documentation
  ['5f00::', 16, 'ipv6'], // segment routing (SRv6) SIDs
  ['fc00::', 7, 'ipv6'], // unique local (ULA)
  ['fe80::', 10, 'ipv6'], // link-local
  ['fec0::', 10, 'ipv6'], // site-local (deprecated)
  ['ff00::', 8, 'ipv6'], // multicast
];

const specialUse = new BlockList();
for (const [net, prefix, type] of SPECIAL_USE) specialUse.addSubnet(net, prefix, type);

const globalUnicast = new BlockList();
globalUnicast.addSubnet('2000::', 3, 'ipv6');

/**
 * An address as connected to: brackets dropped, IPv6 in its canonical form (the WHATWG URL serialisation), an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, ::ffff:7f00:1, 0:0:0:0:0:ffff:…) as the IPv4 address it maps to.
 */
export function normaliseAddress(address: string): { address: string; family: 4 | 6 } | null {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const kind = isIP(bare);
  if (kind === 4) return { address: bare, family: 4 };
  if (kind !== 6) return null;
  let canonical: string;
  try {
    canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped) {
    const [hi, lo] = [Number.parseInt(mapped[1]!, 16), Number.parseInt(mapped[2]!, 16)];
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 4 };
  }
  return { address: canonical, family: 6 };
}

/** A public unicast address: IPv6 only in global unicast (2000::/3), and in none of the special-purpose ranges. */
export function isPublicAddress(address: string): boolean {
  const n = normaliseAddress(address);
  if (!n) return false;
  if (n.family === 6 && !globalUnicast.check(n.address, 'ipv6')) return false;
  return !specialUse.check(n.address, n.family === 4 ? 'ipv4' : 'ipv6');
}

function inAllowedRanges(policy: OutboundPolicy, address: string): boolean {
  const n = normaliseAddress(address);
  return n !== null && policy.allowed.check(n.address, n.family === 4 ? 'ipv4' : 'ipv6');
}

/** Why the server may not connect to `address` over `protocol`, or null when it may. */
export function addressRefusal(policy: OutboundPolicy, address: string, protocol: string): string | null {
  const listed = inAllowedRanges(policy, address);
  if (!listed && !isPublicAddress(address)) return `${address} is not a public address`;
  if (protocol === 'http:' && !(listed && policy.allowHttp)) return 'plain http is not allowed';
  return null;
}

/** Parses OUTBOUND_ALLOWED_RANGES: comma-separated addresses or CIDRs (IPv4 or IPv6). Throws naming a bad entry. */
export function outboundPolicy(ranges: string, allowHttp: boolean): OutboundPolicy {
  const allowed = new BlockList();
  const list = ranges
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  for (const range of list) {
    const [address, prefix, ...rest] = range.split('/');
    const n = address ? normaliseAddress(address) : null;
    const bits =
      prefix === undefined ? (n?.family === 4 ? 32 : 128) : /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : -1;
    if (!n || rest.length > 0 || bits < 0 || bits > (n.family === 4 ? 32 : 128)) {
      throw new Error(`"${range}" is not an address or CIDR range`);
    }
    allowed.addSubnet(n.address, bits, n.family === 4 ? 'ipv4' : 'ipv6');
  }
  return { allowed, allowedRanges: list, allowHttp };
}

/** The strict policy: public https only (what a context without configuration gets). */
export const STRICT_OUTBOUND: OutboundPolicy = outboundPolicy('', false);

const fromConfig = new Map<string, OutboundPolicy>();

/** The policy the configuration names (parsed once per distinct value). */
export function outboundPolicyFrom(config: { OUTBOUND_ALLOWED_RANGES: string; OUTBOUND_ALLOW_HTTP: boolean }) {
  const key = `${config.OUTBOUND_ALLOWED_RANGES}|${config.OUTBOUND_ALLOW_HTTP}`;
  let policy = fromConfig.get(key);
  if (!policy) {
    policy = outboundPolicy(config.OUTBOUND_ALLOWED_RANGES, config.OUTBOUND_ALLOW_HTTP);
    fromConfig.set(key, policy);
  }
  return policy;
}

export class OutboundRefused extends Error {
  constructor(url: string, reason: string) {
    super(`outbound request to ${url} refused: ${reason}`);
    this.name = 'OutboundRefused';
  }
}

type Lookup = (
  hostname: string,
  options: { all: true },
  cb: (err: Error | null, addresses: LookupAddress[]) => void,
) => void;

/** What the URL itself says against it (scheme, credentials, a literal address), before any DNS. */
function urlRefusal(policy: OutboundPolicy, uri: string): { url: URL } | { reason: string } {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return { reason: 'not a URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { reason: 'must be https' };
  if (url.protocol === 'http:' && !policy.allowHttp) return { reason: 'must be https' };
  if (url.username || url.password) return { reason: 'must not carry credentials' };
  if (url.hash) return { reason: 'must not have a fragment' };
  const literal = normaliseAddress(url.hostname);
  if (literal) {
    const refused = addressRefusal(policy, literal.address, url.protocol);
    if (refused) return { reason: refused };
  }
  return { url };
}

/**
 * The registration-time check of a URI the server will fetch: the same rules as at connect time, on what the name
 * resolves to now. A name that does not resolve (yet) is accepted: every connection is checked again when it is made.
 * Returns why the URI is refused, or null.
 */
export async function checkOutboundUri(
  policy: OutboundPolicy,
  uri: string,
  lookup: Lookup = dnsLookup as unknown as Lookup,
): Promise<string | null> {
  const checked = urlRefusal(policy, uri);
  if ('reason' in checked) return checked.reason;
  const { url } = checked;
  if (normaliseAddress(url.hostname)) return null;
  const addresses = await new Promise<LookupAddress[]>((resolve) => {
    const timer = setTimeout(() => resolve([]), 3_000);
    lookup(url.hostname, { all: true }, (err, found) => {
      clearTimeout(timer);
      resolve(err ? [] : found);
    });
  });
  for (const a of addresses) {
    const refused = addressRefusal(policy, a.address, url.protocol);
    if (refused) return `${url.hostname} resolves to ${a.address}: ${refused}`;
  }
  return null;
}

/** Refuses with 400 request.invalid naming each field whose URI the server may not fetch; nothing is saved. */
export async function assertOutboundUris(
  policy: OutboundPolicy,
  fields: readonly { field: string; uri: string | undefined }[],
): Promise<void> {
  const problems: { field: string; message: string }[] = [];
  for (const { field, uri } of fields) {
    if (uri === undefined) continue;
    const refused = await checkOutboundUri(policy, uri);
    if (refused) {
      problems.push({
        field,
        message: `${refused} (outbound URIs must be https and reach only public addresses; see OUTBOUND_ALLOWED_RANGES)`,
      });
    }
  }
  if (problems.length > 0) throw new AppError('request.invalid', { problems });
}

/**
 * The DNS lookup connections use: every address a name resolves to is checked, and only permitted ones are
 * connected to. Node calls it for each connection, so what is checked is what is connected to.
 */
function guardedLookup(policy: OutboundPolicy, protocol: string, lookup: Lookup) {
  return (hostname: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return cb(err);
      const permitted = addresses.filter((a) => addressRefusal(policy, a.address, protocol) === null);
      if (permitted.length === 0) {
        const refused = addresses[0] ? addressRefusal(policy, addresses[0].address, protocol) : 'no address';
        return cb(new OutboundRefused(hostname, `${hostname} resolves to ${addresses[0]?.address}: ${refused}`));
      }
      if (options.all) return cb(null, permitted);
      return cb(null, permitted[0]!.address, permitted[0]!.family);
    });
  };
}

/** An undici dispatcher whose every connection is checked (literal addresses here; names in the lookup). */
export function guardedDispatcher(policy: OutboundPolicy, lookup: Lookup = dnsLookup as unknown as Lookup): Agent {
  const connectors = {
    'https:': buildConnector({ timeout: 5_000, lookup: guardedLookup(policy, 'https:', lookup) } as never),
    'http:': buildConnector({ timeout: 5_000, lookup: guardedLookup(policy, 'http:', lookup) } as never),
  };
  return new Agent({
    connect(options, callback) {
      const protocol = options.protocol === 'http:' ? 'http:' : 'https:';
      const literal = normaliseAddress(options.hostname);
      const early = literal ? addressRefusal(policy, literal.address, protocol) : null;
      if (early) return callback(new OutboundRefused(options.hostname, early), null);
      connectors[protocol](options, (err, socket) => {
        if (err) return callback(err, null);
        // Belt and braces: the address the socket is connected to, whatever resolved it.
        const remote = (socket as Socket).remoteAddress;
        const refused = remote ? addressRefusal(policy, remote, protocol) : 'no remote address';
        if (refused) {
          socket.destroy();
          return callback(new OutboundRefused(options.hostname, refused), null);
        }
        callback(null, socket);
      });
    },
  });
}

/**
 * The guarded fetch: the same signature as fetch (what oidc-provider's `fetch` option takes). A redirect is answered
 * with an error, never followed: a public URL could otherwise send the server on to a private one.
 */
export function outboundFetch(policy: OutboundPolicy, lookup?: Lookup): typeof fetch {
  const dispatcher = guardedDispatcher(policy, lookup);
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const target = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const checked = urlRefusal(policy, target);
    if ('reason' in checked) throw new OutboundRefused(target, checked.reason);
    const { dispatcher: _theirs, redirect: _follow, ...rest } = (init ?? {}) as RequestInit & { dispatcher?: unknown };
    const response = await undiciFetch(checked.url, { ...(rest as object), redirect: 'manual', dispatcher }).catch(
      (err: unknown) => {
        // undici reports a refused connection as "fetch failed"; the refusal itself says why.
        const cause = (err as { cause?: unknown }).cause;
        throw cause instanceof OutboundRefused ? cause : err;
      },
    );
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel();
      throw new OutboundRefused(target, `answered ${response.status}: redirects are not followed`);
    }
    return response as unknown as Response;
  }) as typeof fetch;
}
