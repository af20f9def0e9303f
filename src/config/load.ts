// Reads a YAML or JSON config file; flags given on the command line override it.
import fs from 'node:fs';
import YAML from 'yaml';
import { ConfigError } from './schema.js';

export function loadConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`config file ${file}: expected a mapping of option: value at the top`);
  const out = { ...(data as Record<string, unknown>) };
  // A command may be written as one string in the file.
  if (typeof out.command === 'string') out.command = (out.command as string).split(/\s+/).filter(Boolean);
  return out;
}
