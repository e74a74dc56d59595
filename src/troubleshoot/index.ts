export { type Check, type Checklist, renderChecklist } from './checklist.js';
export { type TroubleshootSources, gatherPeeringFacts, gatherProxyFacts } from './gather.js';
export { peeringChecklist } from './peering-checks.js';
export { proxyChecklist } from './proxy-checks.js';
export { gatherUpstreamFacts } from './upstream-facts.js';
export { type UpstreamReport, renderUpstreamReport, upstreamReport } from './upstream-checks.js';
