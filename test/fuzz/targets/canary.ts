/**
 * The harness's own check: a target with a bug only coverage feedback finds quickly (each
 * character of `FUZZ` is its own branch). fuzz.test.ts expects Jazzer.js to report it, with the
 * input, so a runner that stopped instrumenting or stopped reporting findings fails.
 */
export function fuzz(data: Buffer): void {
  if (data[0] === 0x46 && data[1] === 0x55 && data[2] === 0x5a && data[3] === 0x5a)
    throw new Error('canary: the input starts with FUZZ');
}
