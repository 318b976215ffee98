/** mulberry32: a small seeded PRNG, so a failing random test can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed a randomised test uses unless TEST_SEED says otherwise: every run is the same run. */
export const DEFAULT_SEED = 20261202;

/**
 * The seed for this run: TEST_SEED if set (to replay a failure or explore), otherwise the fixed
 * DEFAULT_SEED. Printed, so that the output of any run says how to replay it.
 */
export function testSeed(what = 'random test'): number {
  const env = process.env.TEST_SEED;
  const seed = env ? Number(env) : DEFAULT_SEED;
  if (!Number.isSafeInteger(seed)) throw new Error(`TEST_SEED=${env}: not an integer`);
  console.log(`${what}: TEST_SEED=${seed}${env ? '' : ' (the default)'}`);
  return seed;
}

/** A fresh random seed, for opt-in exploration (long runs); print it where it is used. */
export const randomSeed = (): number => Math.floor(Math.random() * 2 ** 31);

/** Opt-in long tier (soak, stress runs): TEST_LONG=1. */
export const TEST_LONG = process.env.TEST_LONG === '1';
