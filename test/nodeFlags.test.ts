// The front's node flags are read from the CLI's shebang: what it accepts, and a clear
// error for a file without one.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { shebangNodeFlags } from '../src/nodeFlags.js';
import { tmpDir } from './helpers.js';

let dir: string | null = null;
afterEach(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); dir = null; });

function file(text: string): string {
  dir ??= tmpDir();
  const f = path.join(dir, 'cli.js');
  fs.writeFileSync(f, text);
  return f;
}

describe('shebangNodeFlags', () => {
  it('reads the flags after "env -S node", none when there are none', () => {
    expect(shebangNodeFlags(file('#!/usr/bin/env -S node --max-semi-space-size=8 --no-warnings\n// code\n'))).toEqual(['--max-semi-space-size=8', '--no-warnings']);
    expect(shebangNodeFlags(file('#!/usr/bin/env -S node\nx\n'))).toEqual([]);
  });

  it('names the file and what it found when the first line is not such a shebang', () => {
    expect(() => shebangNodeFlags(file('#!/usr/bin/env node\n'))).toThrow(/cli\.js: its first line is not "#!\/usr\/bin\/env -S node \[FLAGS\]" \(got "#!\/usr\/bin\/env node"\)/);
    expect(() => shebangNodeFlags(file('console.log(1)\n'))).toThrow(/rebuild with "npm run build"/);
  });
});
