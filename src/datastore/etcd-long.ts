// etcd3 has the 64-bit integers of its responses (every key's revisions, version and lease)
// turned into strings by long.js, whose toString divides by 10^6 in emulated 64-bit arithmetic,
// allocating as it goes: 8% of the CPU of a cold start. Below 2^53 a double holds the value
// exactly and String() of it is the same text, so the Long class etcd3's decoder uses gets that
// path first. Found through etcd3's own dependencies (etcd3 → @grpc/proto-loader → protobufjs →
// long), so that it is the instance that decodes; where that fails nothing changes.
import { createRequire } from 'node:module';

interface LongLike { high: number; low: number; unsigned: boolean; toString(radix?: number): string }
type LongClass = { prototype: LongLike; fromBits(low: number, high: number, unsigned?: boolean): LongLike };

/** The Long class etcd3's responses are decoded with, or undefined when it cannot be found. */
export function etcd3Long(): LongClass | undefined {
  try {
    const fromEtcd3 = createRequire(createRequire(import.meta.url).resolve('etcd3'));
    const fromLoader = createRequire(fromEtcd3.resolve('@grpc/proto-loader'));
    return (fromLoader('protobufjs/minimal') as { util: { Long?: LongClass } }).util.Long ?? undefined;
  } catch {
    return undefined;
  }
}

const FAST = Symbol('fast Long toString');

/** Gives etcd3's Long class the fast path; once however often called. True when it has it. */
export function speedUpLongToString(Long = etcd3Long()): boolean {
  if (!Long) return false;
  const slow = Long.prototype.toString as LongLike['toString'] & { [FAST]?: true };
  if (slow[FAST]) return true;
  const fast = function (this: LongLike, radix?: number): string {
    // high ≥ 0: not negative (signed) or below 2^63 (unsigned); below 2^21: the value is below 2^53.
    if ((radix === undefined || radix === 10) && this.high >= 0 && this.high < 0x200000) return String(this.high * 0x100000000 + (this.low >>> 0));
    return slow.call(this, radix);
  };
  Long.prototype.toString = Object.assign(fast, { [FAST]: true as const });
  return true;
}
