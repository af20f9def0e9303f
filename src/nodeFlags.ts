// The node flags the front runs with live in one place, the shebang of the CLI
// (`#!/usr/bin/env -S node FLAGS`): `upfront …`, `./dist/cli.js …` and the deploy files
// get them from the kernel; whoever starts the CLI with an explicit node (the bench)
// reads them here, so that it measures the front as users run it.
import fs from 'node:fs';

const SHEBANG = /^#!\/usr\/bin\/env -S node((?: \S+)*)\s*$/;

/** The node flags in `cliFile`'s shebang; throws naming the file when it has no `env -S node` line. */
export function shebangNodeFlags(cliFile: string): string[] {
  const first = fs.readFileSync(cliFile, 'utf8').split('\n', 1)[0];
  const m = SHEBANG.exec(first);
  if (!m) throw new Error(`${cliFile}: its first line is not "#!/usr/bin/env -S node [FLAGS]" (got ${JSON.stringify(first.slice(0, 80))}); rebuild with "npm run build"`);
  return m[1].split(' ').filter((f) => f !== '');
}
