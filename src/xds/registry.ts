/**
 * Importing the generated modules registers their messages in ts-proto's type registry, which
 * `packAny` / `unpackAny` and the cache's reference walker rely on. Every Envoy extension isthmus
 * puts inside an `Any` must be imported here.
 */
import '../gen/envoy/config/cluster/v3/cluster.js';
import '../gen/envoy/config/endpoint/v3/endpoint.js';
import '../gen/envoy/config/listener/v3/listener.js';
import '../gen/envoy/config/route/v3/route.js';
import '../gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import '../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import '../gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.js';
import '../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import '../gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import '../gen/envoy/extensions/filters/network/rbac/v3/rbac.js';
import '../gen/envoy/extensions/filters/network/sni_cluster/v3/sni_cluster.js';
import '../gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import '../gen/envoy/extensions/filters/http/router/v3/router.js';
import '../gen/envoy/extensions/filters/http/rbac/v3/rbac.js';
import '../gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import '../gen/envoy/extensions/clusters/aggregate/v3/cluster.js';
