/** `isthmus demo`: the run (what to stop), the tour and what it prints at the end. */
export { DemoRun } from './demo-run.js';
export { runTour, type TourResult } from './tour.js';
export { StepFailure } from './step.js';
export { whereToLookNext } from './next-steps.js';
