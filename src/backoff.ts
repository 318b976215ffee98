// Exponential backoff with jitter over the upper half of the range, shared by the client library
// and the datastore adapters: a fleet retrying together spreads out instead of retrying in lockstep.

/** The delay before retry number `attempt` (0 for the first): between half and all of min(max, initial × 2^attempt). */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  return base / 2 + (Math.random() * base) / 2;
}
