import { type Result, err, ok } from '../result.js';
import { z } from 'zod';
import { RecordCollection, type RecordKind } from '../store/records.js';
import type { ConfigRecord, StoredInstance } from './catalog-index.js';
import type {
  ConfigEntry,
  GatewayConfig,
  HealthCheck,
  ProxyConfig,
  ServiceAddress,
  ServiceInstance,
} from './types.js';

/**
 * The catalog's records in the Store: `catalog/instances/<id>` (an instance with its checks) and
 * `catalog/config/<kind>/<name>` (a config entry with its indexes). Schemas mirror types.ts.
 */

const meshGatewayMode = z.enum(['', 'none', 'local', 'remote']);
const meshGateway = z.strictObject({ mode: meshGatewayMode });
const protocol = z.enum(['tcp', 'http', 'http2', 'grpc']);

const serviceAddress: z.ZodType<ServiceAddress> = z.strictObject({
  address: z.string(),
  port: z.number(),
});

const proxyConfig: z.ZodType<ProxyConfig> = z.strictObject({
  destinationServiceName: z.string(),
  destinationServiceId: z.string(),
  localServiceAddress: z.string(),
  localServicePort: z.number(),
  upstreams: z.array(
    z.strictObject({
      destinationName: z.string(),
      destinationNamespace: z.string(),
      destinationPartition: z.string(),
      destinationPeer: z.string(),
      datacenter: z.string(),
      localBindAddress: z.string(),
      localBindPort: z.number(),
      meshGateway,
    }),
  ),
  meshGateway,
});

const gatewayConfig: z.ZodType<GatewayConfig> = z.strictObject({
  bindTaggedAddresses: z.boolean(),
  noDefaultBind: z.boolean(),
  bindAddresses: z.array(
    z.strictObject({ name: z.string(), address: z.string(), port: z.number() }),
  ),
});

const healthCheck: z.ZodType<HealthCheck> = z.strictObject({
  checkId: z.string(),
  name: z.string(),
  serviceId: z.string(),
  status: z.enum(['passing', 'warning', 'critical']),
  output: z.string(),
  ttlSeconds: z.number().optional(),
  expiresAt: z.number().optional(),
  aliasOf: z.string().optional(),
});

/** The fields of a catalog instance (imported instances extend them: peering/records.ts). */
export const serviceInstanceShape = {
  id: z.string(),
  name: z.string(),
  kind: z.enum(['typical', 'connect-proxy', 'mesh-gateway']),
  address: z.string(),
  port: z.number(),
  tags: z.array(z.string()),
  meta: z.record(z.string(), z.string()),
  namespace: z.string(),
  partition: z.string(),
  datacenter: z.string(),
  taggedAddresses: z.strictObject({
    lan: serviceAddress.optional(),
    wan: serviceAddress.optional(),
  }),
  proxy: proxyConfig.optional(),
  gatewayConfig: gatewayConfig.optional(),
  checks: z.array(healthCheck),
  createIndex: z.number(),
  modifyIndex: z.number(),
};

const serviceInstance: z.ZodType<ServiceInstance> = z.strictObject(serviceInstanceShape);

const storedInstance: z.ZodType<StoredInstance> = z.strictObject({
  instance: serviceInstance,
  sidecarFor: z.string().optional(),
});

const resolverTarget = z.strictObject({
  service: z.string(),
  serviceSubset: z.string(),
  peer: z.string(),
  datacenter: z.string(),
});

/**
 * `service-resolver` as parsed (src/catalog/service-resolver.ts); optional parts absent when unset.
 */
const serviceResolver = z.strictObject({
  kind: z.literal('service-resolver'),
  name: z.string(),
  namespace: z.string(),
  partition: z.string(),
  defaultSubset: z.string(),
  subsets: z.record(z.string(), z.strictObject({ filter: z.string(), onlyPassing: z.boolean() })),
  redirect: resolverTarget.optional(),
  failover: z.record(
    z.string(),
    z.strictObject({
      targets: z.array(resolverTarget),
      samenessGroup: z.string().optional(),
    }),
  ),
  connectTimeoutMs: z.number(),
  requestTimeoutMs: z.number(),
  loadBalancer: z
    .strictObject({
      policy: z.enum(['round_robin', 'least_request', 'ring_hash', 'maglev', 'random']),
      ringHash: z
        .strictObject({
          minimumRingSize: z.number().optional(),
          maximumRingSize: z.number().optional(),
        })
        .optional(),
      leastRequest: z.strictObject({ choiceCount: z.number().optional() }).optional(),
      hashPolicies: z
        .array(
          z.strictObject({
            field: z.enum(['', 'header', 'cookie', 'query_parameter']),
            fieldValue: z.string(),
            cookieConfig: z
              .strictObject({ session: z.boolean(), ttlMs: z.number(), path: z.string() })
              .optional(),
            sourceIp: z.boolean(),
            terminal: z.boolean(),
          }),
        )
        .optional(),
    })
    .optional(),
});

/** An L7 intention permission as parsed (src/catalog/service-intentions.ts). */
const intentionPermission = z.strictObject({
  action: z.enum(['allow', 'deny']),
  http: z.strictObject({
    pathExact: z.string().optional(),
    pathPrefix: z.string().optional(),
    pathRegex: z.string().optional(),
    header: z.array(
      z.strictObject({
        name: z.string(),
        present: z.boolean().optional(),
        exact: z.string().optional(),
        prefix: z.string().optional(),
        suffix: z.string().optional(),
        regex: z.string().optional(),
        invert: z.boolean(),
      }),
    ),
    methods: z.array(z.string()),
  }),
});

const headerModifiers = z
  .strictObject({
    add: z.record(z.string(), z.string()),
    set: z.record(z.string(), z.string()),
    remove: z.array(z.string()),
  })
  .optional();

/** `service-splitter` as parsed (src/catalog/service-splitter.ts). */
const serviceSplitter = z.strictObject({
  kind: z.literal('service-splitter'),
  name: z.string(),
  namespace: z.string(),
  partition: z.string(),
  splits: z.array(
    z.strictObject({
      weight: z.number(),
      service: z.string(),
      serviceSubset: z.string(),
      peer: z.string(),
      requestHeaders: headerModifiers,
      responseHeaders: headerModifiers,
    }),
  ),
});

/** `service-router` as parsed (src/catalog/service-router.ts). */
const serviceRouter = z.strictObject({
  kind: z.literal('service-router'),
  name: z.string(),
  namespace: z.string(),
  partition: z.string(),
  routes: z.array(
    z.strictObject({
      match: z.strictObject({
        pathExact: z.string(),
        pathPrefix: z.string(),
        pathRegex: z.string(),
        caseInsensitive: z.boolean().optional(),
        header: z.array(
          z.strictObject({
            name: z.string(),
            present: z.boolean(),
            exact: z.string(),
            prefix: z.string(),
            suffix: z.string(),
            regex: z.string(),
            invert: z.boolean(),
          }),
        ),
        queryParam: z.array(
          z.strictObject({
            name: z.string(),
            present: z.boolean(),
            exact: z.string(),
            regex: z.string(),
          }),
        ),
        methods: z.array(z.string()),
      }),
      destination: z.strictObject({
        service: z.string(),
        serviceSubset: z.string(),
        prefixRewrite: z.string(),
        requestTimeoutMs: z.number(),
        idleTimeoutMs: z.number(),
        numRetries: z.number(),
        retryOnConnectFailure: z.boolean(),
        retryOn: z.array(z.string()),
        retryOnStatusCodes: z.array(z.number()),
        requestHeaders: headerModifiers,
        responseHeaders: headerModifiers,
      }),
    }),
  ),
});

const configEntry: z.ZodType<ConfigEntry> = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('proxy-defaults'),
    name: z.literal('global'),
    config: z.strictObject({ protocol: protocol.optional() }),
    meshGateway,
  }),
  z.strictObject({
    kind: z.literal('service-defaults'),
    name: z.string(),
    namespace: z.string(),
    partition: z.string(),
    protocol,
    meshGateway,
  }),
  z.strictObject({
    kind: z.literal('mesh'),
    name: z.literal('mesh'),
    defaultIntentionAction: z.enum(['allow', 'deny']),
    peering: z.strictObject({ peerThroughMeshGateways: z.boolean() }),
  }),
  z.strictObject({
    kind: z.literal('service-intentions'),
    name: z.string(),
    namespace: z.string(),
    partition: z.string(),
    sources: z.array(
      z.strictObject({
        name: z.string(),
        namespace: z.string(),
        partition: z.string(),
        peer: z.string(),
        action: z.enum(['allow', 'deny']).optional(),
        permissions: z.array(intentionPermission).optional(),
      }),
    ),
  }),
  z.strictObject({
    kind: z.literal('exported-services'),
    name: z.string(),
    services: z.array(
      z.strictObject({
        name: z.string(),
        namespace: z.string(),
        consumers: z.array(
          z.union([
            z.strictObject({ peer: z.string() }),
            z.strictObject({ samenessGroup: z.string() }),
          ]),
        ),
      }),
    ),
  }),
  serviceResolver,
  serviceSplitter,
  serviceRouter,
  z.strictObject({
    kind: z.literal('sameness-group'),
    name: z.string(),
    defaultForFailover: z.boolean(),
    includeLocal: z.boolean(),
    members: z.array(
      z.union([z.strictObject({ partition: z.string() }), z.strictObject({ peer: z.string() })]),
    ),
  }),
]);

const configRecord: z.ZodType<ConfigRecord> = z.strictObject({
  entry: configEntry,
  createIndex: z.number(),
  modifyIndex: z.number(),
});

export const instanceKind: RecordKind<StoredInstance> = {
  what: 'catalog instance',
  version: 1,
  schema: storedInstance,
};

export const configKind: RecordKind<ConfigRecord> = {
  what: 'config entry',
  version: 1,
  schema: configRecord,
};

/** `catalog/instances/<instance id>` */
export const storedInstances = new RecordCollection(instanceKind, 'catalog/instances/');
/** `catalog/config/<kind>/<name>` */
/**
 * A config entry replicated from the primary datacenter (WAN federation, docs/architecture.md
 * §6c), in the stored form: validated here before it is written, as any stored record is read.
 */
export function parseReplicatedConfigEntry(raw: unknown): Result<ConfigEntry, string> {
  const parsed = configEntry.safeParse(raw);
  if (parsed.success) return ok(parsed.data);
  return err(
    parsed.error.issues.map((i) => `${i.path.join('.') || '(entry)'}: ${i.message}`).join('; '),
  );
}

export const storedConfigEntries = new RecordCollection(configKind, 'catalog/config/');
