// The backend command, found as execvp would find it, so that a typo fails at start
// (or at reload) with a clear line instead of a restart loop.
import fs from 'node:fs';
import path from 'node:path';

/** The full path of COMMAND run from `cwd`; throws a line naming it when it is not there or not executable. */
export function resolveCommand(command: string, cwd: string, pathEnv = process.env.PATH ?? ''): string {
  const check = (p: string) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const full = path.resolve(cwd, command);
    if (!fs.existsSync(full)) throw new Error(`backend command ${command} not found (ENOENT)`);
    if (!check(full)) throw new Error(`backend command ${command} is not an executable file (EACCES); chmod +x it or run it through its interpreter`);
    return full;
  }
  for (const dir of pathEnv.split(':')) {
    if (dir && check(path.join(dir, command))) return path.join(dir, command);
  }
  throw new Error(`backend command ${command} not found in PATH (ENOENT); install it or give its full path`);
}
