import { isIP } from 'node:net';
import type { GatewayBindAddress, GatewayConfig, ServiceInstance } from './types.js';
import { type JsonObject, type Problems, at, readBool, readInt, readObject } from './input.js';
import { readIp } from './registration-proxy.js';

/**
 * The `Proxy` block of a mesh gateway registration: only `Config`, and of Consul's opaque map only
 * the keys that say where the gateway's listeners bind (Consul `agent/xds/config.go`
 * `ParseGatewayConfig`). Each key has a current name and a deprecated `envoy_mesh_gateway_*` one;
 * both are read, and the current one wins when both are given, as in Consul. Other keys are errors
 * (a typo in a key must not silently leave the gateway listening elsewhere).
 */
const aliases = {
  bindTaggedAddresses: [
    'envoy_gateway_bind_tagged_addresses',
    'envoy_mesh_gateway_bind_tagged_addresses',
  ],
  noDefaultBind: ['envoy_gateway_no_default_bind', 'envoy_mesh_gateway_no_default_bind'],
  bindAddresses: ['envoy_gateway_bind_addresses', 'envoy_mesh_gateway_bind_addresses'],
} as const;
const configKeys = Object.values(aliases).flat();
const base = 'Proxy.Config';
const maxBindAddresses = 32;
/** The name becomes the first part of the listener name `<name>:<addr>:<port>`, so no ':'. */
const bindNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

type TaggedAddresses = ServiceInstance['taggedAddresses'];

/** `Proxy` of a mesh gateway → its bind config; undefined when absent or all defaults. */
export function parseGatewayProxy(
  value: unknown,
  tagged: TaggedAddresses | undefined,
  p: Problems,
): GatewayConfig | undefined {
  if (value === undefined || value === null) return undefined;
  const proxy = readObject(value, 'Proxy', ['Config'], p);
  if (!proxy || proxy.Config === undefined || proxy.Config === null) return undefined;
  const config = readObject(proxy.Config, base, configKeys, p);
  if (!config) return undefined;
  const bindTagged = aliased(config, aliases.bindTaggedAddresses, (key) =>
    readBool(config, key, base, p, false),
  );
  const noDefault = aliased(config, aliases.noDefaultBind, (key) =>
    readBool(config, key, base, p, false),
  );
  const bind = aliased(config, aliases.bindAddresses, (key) => readBindAddresses(config, key, p));
  if (bindTagged.value === undefined || noDefault.value === undefined || bind.value === undefined)
    return undefined;
  const out: GatewayConfig = {
    bindTaggedAddresses: bindTagged.value,
    noDefaultBind: noDefault.value,
    bindAddresses: bind.value,
  };
  if (
    tagged &&
    !checkListeners(out, tagged, { bindTagged: bindTagged.key, noDefault: noDefault.key }, p)
  )
    return undefined;
  return out.bindTaggedAddresses || out.noDefaultBind || out.bindAddresses.length > 0
    ? out
    : undefined;
}

/** Reads every given name of a key (so each is checked); the current name's value wins. */
function aliased<T>(
  config: JsonObject,
  names: readonly [string, string],
  read: (key: string) => T | undefined,
): { key: string; value: T | undefined } {
  const given = names.filter((n) => config[n] !== undefined && config[n] !== null);
  const values = given.map((key) => ({ key, value: read(key) }));
  return values[0] ?? { key: names[1], value: read(names[1]) };
}

/** `{"<name>": {"Address": "<ip>", "Port": N}}`, sorted by name. */
function readBindAddresses(
  config: JsonObject,
  key: string,
  p: Problems,
): GatewayBindAddress[] | undefined {
  const field = at(base, key);
  const value = config[key];
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value))
    return p.add(
      field,
      'must be a JSON object like {"<listener name>": {"Address": "<IP>", "Port": <port>}}',
    );
  const entries = Object.entries(value as JsonObject);
  if (entries.length > maxBindAddresses)
    return p.add(field, `must have at most ${maxBindAddresses} entries (got ${entries.length})`);
  const out: GatewayBindAddress[] = [];
  let ok = true;
  for (const [name, v] of entries) {
    const f = at(field, name);
    if (!bindNamePattern.test(name)) {
      ok =
        p.add(
          f,
          'the listener name must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit',
        ) ?? false;
      continue;
    }
    const o = readObject(v, f, ['Address', 'Port'], p);
    const address = o && readIp(o, 'Address', f, p);
    const port = o && readInt(o, 'Port', f, p, 1, 65535);
    if (address === undefined || port === undefined) ok = false;
    else out.push({ name, address, port });
  }
  return ok ? out.sort((a, b) => (a.name < b.name ? -1 : 1)) : undefined;
}

/**
 * A listener binds an IP, so a tagged address to bind must be one (a WAN hostname is fine
 * otherwise); and a gateway must keep at least one listener. Consul accepts a gateway with none
 * and pushes no listener at all (it listens nowhere); a registration error names the key instead.
 */
function checkListeners(
  cfg: GatewayConfig,
  tagged: TaggedAddresses,
  keys: { bindTagged: string; noDefault: string },
  p: Problems,
): boolean {
  let ok = true;
  const wan = tagged.wan;
  if (cfg.bindTaggedAddresses && wan && isIP(wan.address) === 0) {
    ok =
      p.add(
        'TaggedAddresses.wan.Address',
        `must be an IP address when ${at(base, keys.bindTagged)} is true: the gateway binds a listener to it (got ${JSON.stringify(wan.address)})`,
      ) ?? false;
  }
  const taggedListeners =
    cfg.bindTaggedAddresses && (tagged.lan !== undefined || wan !== undefined);
  if (cfg.noDefaultBind && !taggedListeners && cfg.bindAddresses.length === 0) {
    ok =
      p.add(
        at(base, keys.noDefault),
        `leaves the gateway no listener: also set ${aliases.bindTaggedAddresses[1]} to true (with TaggedAddresses) or list ${aliases.bindAddresses[1]}`,
      ) ?? false;
  }
  return ok;
}
