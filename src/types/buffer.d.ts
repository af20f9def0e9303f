// Buffer's latin1 codecs without the encoding lookup of toString()/write(): on
// Buffer.prototype in every Node release (node:buffer uses them itself), not in @types/node.
declare global {
  interface Buffer {
    latin1Slice(start?: number, end?: number): string;
    latin1Write(string: string, offset?: number, length?: number): number;
  }
}
export {};
