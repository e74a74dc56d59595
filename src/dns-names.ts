/**
 * The DNS name shapes isthmus accepts, in one place: they end up in SNIs, SPIFFE IDs and Envoy
 * socket addresses, so every place that checks one must agree.
 */

/**
 * One lowercase DNS label (1-63 letters, digits, "-", not at either end): datacenters, services,
 * peers.
 */
export const dnsLabel = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A hostname: dot-separated labels of either case, at most 253 characters. */
export const dnsHostname =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
