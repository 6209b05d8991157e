/**
 * Where a callback may connect. A caller controls `callback_url`, so the
 * address is checked where the decision is made: on every address the name
 * resolves to, at connect time, and the socket is opened to the address that
 * was checked (no second lookup that a rebinding DNS server could answer
 * differently). Only global unicast addresses pass; loopback, private,
 * link-local, CGNAT, unique-local, multicast, unspecified, reserved, the
 * IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4, Teredo), the
 * cloud metadata addresses and this machine's own addresses are refused
 * unless `REASONQ_CALLBACK_ALLOW` names them.
 *
 * Address classes come from ipaddr.js (the table behind Express's
 * proxy-addr): it parses every IPv4/IPv6 spelling and knows the IANA
 * special-purpose ranges, which a hand-written list would drift from.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';
import { buildConnector } from 'undici';
import { CallbackRefusedError } from './errors.js';

/** Metadata services that sit on addresses ipaddr.js calls unicast. */
const METADATA = new Set(['168.63.129.16']);

export interface AddressPolicy {
  /** CIDRs, single addresses or host names let through although internal (`REASONQ_CALLBACK_ALLOW`) */
  allow: readonly string[];
  /** every address a name resolves to; tests inject one so that no query leaves the machine */
  resolve?: (host: string) => Promise<string[]>;
}

interface CompiledPolicy {
  cidrs: [ipaddr.IPv4 | ipaddr.IPv6, number][];
  hosts: Set<string>;
  resolve: (host: string) => Promise<string[]>;
}

const resolveAll = async (host: string): Promise<string[]> => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

const compiled = new WeakMap<AddressPolicy, CompiledPolicy>();

function compile(policy: AddressPolicy): CompiledPolicy {
  let c = compiled.get(policy);
  if (c) return c;
  c = { cidrs: [], hosts: new Set(), resolve: policy.resolve ?? resolveAll };
  for (const entry of policy.allow) {
    const e = entry.trim().toLowerCase();
    if (!e) continue;
    if (e.includes('/')) c.cidrs.push(ipaddr.parseCIDR(e));
    else if (ipaddr.isValid(e)) {
      const addr = ipaddr.parse(e);
      c.cidrs.push([addr, addr.kind() === 'ipv4' ? 32 : 128]);
    } else c.hosts.add(e.replace(/\.$/, ''));
  }
  compiled.set(policy, c);
  return c;
}

/** Throws unless every entry of an allow-list is a CIDR, an address or a host name. */
export function parseAllowList(entries: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of entries) {
    const e = raw.trim();
    if (!e) continue;
    const ok = e.includes('/') ? ipaddr.isValidCIDR(e) : ipaddr.isValid(e) || /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i.test(e);
    if (!ok) throw new Error(`"${e}" is not a CIDR, an IP address or a host name`);
    out.push(e);
  }
  return out;
}

function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(ipaddr.process(a.address.split('%')[0]!).toString());
  return out;
}

/**
 * Why an address may not be dialled, or null when it may. `ip` is any
 * spelling ipaddr.js parses; IPv4-mapped IPv6 is refused as such, not unwrapped.
 */
export function refusalReason(ip: string, policy: AddressPolicy = { allow: [] }): string | null {
  const bare = ip.replace(/^\[|\]$/g, '');
  if (/%/.test(bare)) return 'an IPv6 zone (link-local)';
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(bare);
  } catch {
    return 'not an IP address';
  }
  const c = compile(policy);
  if (c.cidrs.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits))) return null;
  const range = addr.range();
  if (range !== 'unicast') return range;
  // IPv6 unicast outside 2000::/3 (IPv4-compatible ::a.b.c.d, the rest of ::/8): not global, whatever translates it.
  if (addr.kind() === 'ipv6' && !addr.match(ipaddr.parseCIDR('2000::/3'))) return 'not global unicast (outside 2000::/3)';
  if (METADATA.has(addr.toString())) return 'a cloud metadata address';
  if (ownAddresses().has(addr.toString())) return "this machine's own address";
  return null;
}

/** `localhost` and its subdomains are loopback by definition (RFC 6761), whatever a resolver says. */
const isLoopbackName = (host: string) => {
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
};

/** A host (name or address, any spelling, brackets allowed) that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isLoopbackName(bare)) return true;
  return ipaddr.isValid(bare) && ipaddr.process(bare).range() === 'loopback';
}

const isNameAllowed = (host: string, policy: AddressPolicy) => compile(policy).hosts.has(host.toLowerCase().replace(/\.$/, ''));

/**
 * The address to dial for `host`: checked, every resolved address refused
 * if any one is (a name that also points inward is not trusted half-way).
 */
async function pickAddress(host: string, policy: AddressPolicy, timeoutMs = 5_000): Promise<string> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare)) {
    const why = refusalReason(bare, policy);
    if (why) throw new CallbackRefusedError(`callback_url address ${bare} is ${why}: refused (allow it with REASONQ_CALLBACK_ALLOW)`);
    return bare;
  }
  if (isLoopbackName(bare) && !isNameAllowed(bare, policy)) {
    throw new CallbackRefusedError(`callback_url host ${bare} is loopback: refused (allow it with REASONQ_CALLBACK_ALLOW)`);
  }
  let addresses: string[];
  try {
    // getaddrinfo has no deadline of its own: a resolver that never answers must not hold a delivery forever.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)));
    addresses = await Promise.race([compile(policy).resolve(bare), late]).finally(() => clearTimeout(timer));
  } catch (error) {
    throw new CallbackRefusedError(`callback_url host ${bare} does not resolve: ${(error as Error).message}`);
  }
  if (addresses.length === 0) throw new CallbackRefusedError(`callback_url host ${bare} resolves to no address`);
  if (isNameAllowed(bare, policy)) return addresses[0]!;
  for (const a of addresses) {
    const why = refusalReason(a, policy);
    if (why) throw new CallbackRefusedError(`callback_url host ${bare} resolves to ${a}, ${why}: refused (allow it with REASONQ_CALLBACK_ALLOW)`);
  }
  return addresses[0]!;
}

/**
 * The checks that need no DNS, for a 400 at enqueue: an IP literal in any
 * spelling (the URL parser has already turned `127.1`, `0x7f000001`,
 * `2130706433` into `127.0.0.1`) and `localhost` names.
 */
export function precheckCallbackUrl(url: string, policy: AddressPolicy): void {
  const { hostname } = new URL(url);
  const bare = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (isIP(bare)) {
    const why = refusalReason(bare, policy);
    if (why) throw new CallbackRefusedError(`callback_url address ${bare} is ${why}: refused (allow it with REASONQ_CALLBACK_ALLOW)`);
    return;
  }
  if (isLoopbackName(bare) && !isNameAllowed(bare, policy)) {
    throw new CallbackRefusedError(`callback_url host ${bare} is loopback: refused (allow it with REASONQ_CALLBACK_ALLOW)`);
  }
}

/**
 * An undici connector that dials only checked addresses: the name is
 * resolved here, every answer checked, and the socket opened to the checked
 * address (TLS still verifies the certificate against the name).
 */
export function guardedConnector(policy: AddressPolicy, timeoutMs: number): buildConnector.connector {
  const dial = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    const host = options.hostname.replace(/^\[|\]$/g, '');
    pickAddress(host, policy, timeoutMs).then(
      (address) => dial({ ...options, hostname: address, servername: isIP(host) ? undefined : host }, callback),
      (error: Error) => callback(error, null),
    );
  };
}
