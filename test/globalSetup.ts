// The whole run gets a temp dir of its own (TMPDIR, inherited by the workers and by
// every upfront and backend the tests spawn); at the end it must be empty: a test
// that leaves a socket dir, a temp file or a spool behind fails the run, by name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-tests-'));
  // Searchable by others, as /tmp is: the --user nobody test runs a child from a dir in here.
  fs.chmodSync(dir, 0o755);
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return () => {
    const left = fs.readdirSync(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (left.length > 0) {
      // Thrown here, vitest reports it but still exits 0: fail the run ourselves.
      process.stderr.write(`\nFAIL the tests left ${left.length} entr${left.length === 1 ? 'y' : 'ies'} in their temp dir: ${left.join(', ')}\n`);
      process.exitCode = 1;
    }
  };
}
