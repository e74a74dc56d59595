/** `isthmus demo`: the run (what to stop), the tour and what it prints at the end. */
export { DemoRun } from './demo-run.js';
export { runTour, StepFailure, type TourResult } from './tour.js';
export { whereToLookNext } from './next-steps.js';
