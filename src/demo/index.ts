/**
 * `isthmus demo`: the run (what to stop), the tours (stand-ins or real Envoy) and what it prints at
 * the end.
 */
export { DemoRun } from './demo-run.js';
export { runTour, type TourResult } from './tour.js';
export { runEnvoyTour, type EnvoyTourResult } from './envoy-tour.js';
export { StepFailure } from './step.js';
export { getEnvoyHint, parseEnvoyChoice, type EnvoyChoice } from './envoy-binary.js';
export { whereToLookNext } from './next-steps.js';
