// Starts Jazzer.js's own CLI (`node jazzer-launcher.cjs <jazzer home> <jazzer arguments>`) and
// ends the process once fuzzing ends without a finding. The CLI leaves that exit to the event
// loop, which a target that started a server (test/fuzz/targets/http-bodies.ts) keeps alive; a
// finding still exits through the CLI, with its code.
'use strict';
const path = require('node:path');

const [home] = process.argv.splice(2, 1);
const dist = path.join(home, 'node_modules', '@jazzer.js', 'core', 'dist');
const core = require(path.join(dist, 'core.js'));
const startFuzzing = core.startFuzzing;
core.startFuzzing = (options) =>
  startFuzzing(options).then((result) => {
    if (result.returnCode === 0) setImmediate(() => process.exit(0));
    return result;
  });
require(path.join(dist, 'cli.js'));
