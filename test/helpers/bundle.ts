/**
 * Our TypeScript sources bundled with esbuild into one JavaScript file (node_modules stay
 * external): for the fuzz targets (test/fuzz/jazzer.ts) and for the `isthmus` command the
 * integration tests start hundreds of times (test/cli-bundle.setup.ts).
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Plugin } from 'esbuild';

/**
 * A bundle's `import.meta` is the bundle's; our sources use it to find files next to them
 * (package.json for the version, ui/dist/), so each source file gets its own location written in.
 */
export const importMetaOfSource: Plugin = {
  name: 'import-meta-of-source',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => ({
      loader: 'ts',
      contents: readFileSync(args.path, 'utf8')
        .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll('import.meta.dirname', JSON.stringify(dirname(args.path)))
        .replaceAll('import.meta.filename', JSON.stringify(args.path)),
    }));
  },
};
