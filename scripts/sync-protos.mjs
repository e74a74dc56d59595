#!/usr/bin/env node
// Copies the import closure of the Envoy API files isthmus uses from the copy vendored in
// @grpc/grpc-js-xds into proto/, normalising line endings and bringing validate.proto up to the
// protoc-gen-validate v1.0.4 rules Envoy's protos use (ignore_empty, the `ignored` message option).
// Run with `npm run protos:sync`; the result is committed.
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const depsDir = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const roots = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((r) =>
  join(depsDir, r),
);
const outDir = new URL('../proto/', import.meta.url).pathname;

/** The entry points; everything they import (transitively) is copied too. */
const entries = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/sni_cluster/v3/sni_cluster.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/clusters/aggregate/v3/cluster.proto',
];

// google/protobuf well-known types come with buf itself.
const isBuiltin = (p) => p.startsWith('google/protobuf/');

function locate(path) {
  for (const root of roots) {
    const full = join(root, path);
    if (existsSync(full)) return full;
  }
  throw new Error(`proto not found in any vendored root: ${path}`);
}

function patchValidate(text) {
  const numeric = [
    'Float',
    'Double',
    'Int32',
    'Int64',
    'UInt32',
    'UInt64',
    'SInt32',
    'SInt64',
    'Fixed32',
    'Fixed64',
    'SFixed32',
    'SFixed64',
  ];
  const ignoreEmpty = { String: 26, Bytes: 14, Repeated: 5, Map: 6 };
  for (const n of numeric) ignoreEmpty[n] = 8;
  for (const [rule, tag] of Object.entries(ignoreEmpty)) {
    const re = new RegExp(`(message ${rule}Rules \\{\\n)`);
    if (!re.test(text)) throw new Error(`validate.proto: message ${rule}Rules not found`);
    text = text.replace(
      re,
      `$1    // Added by scripts/sync-protos.mjs (protoc-gen-validate v1.0.4).\n    optional bool ignore_empty = ${tag};\n\n`,
    );
  }
  const ext = 'optional bool disabled = 1071;\n';
  if (!text.includes(ext)) throw new Error('validate.proto: disabled option not found');
  return text.replace(
    ext,
    `${ext}\n    // Ignore skips generation of validation for this message (protoc-gen-validate v1.0.4).\n    optional bool ignored = 1072;\n`,
  );
}

// proto/isthmus/ is ours; only the synced trees are replaced.
for (const tree of ['envoy', 'google', 'udpa', 'validate', 'xds'])
  rmSync(join(outDir, tree), { recursive: true, force: true });
const seen = new Set();
const queue = [...entries];
while (queue.length > 0) {
  const path = queue.shift();
  if (seen.has(path) || isBuiltin(path)) continue;
  seen.add(path);
  let text = readFileSync(locate(path), 'utf8').replace(/\r\n/g, '\n');
  if (path === 'validate/validate.proto') text = patchValidate(text);
  for (const m of text.matchAll(/^import\s+(?:public\s+|weak\s+)?"([^"]+)";/gm)) queue.push(m[1]);
  const dest = join(outDir, path);
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, text);
}
console.log(`proto/: ${seen.size} files`);
