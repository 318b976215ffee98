// Kubernetes resource quantities ("10M", "4Gi", "1.5k", "2e3"), as the API machinery parses them
// and reads them back as an integer (Quantity.Value): the pod QoS annotations are quantities.

const DECIMAL_SUFFIX: Record<string, number> = { '': 0, n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_SUFFIX: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const INT64_MAX = (1n << 63n) - 1n;

/**
 * The integer value of a quantity, rounded up (away from zero) as Quantity.Value() does, or
 * undefined when the string is not a quantity. The grammar: an optional sign, digits with an
 * optional fraction (`1.` is accepted), then one suffix: a decimal SI one (n u m k M G T P E), a
 * binary one (Ki … Ei) or a decimal exponent (`e3`, `E-2`). Missing digits read as 0 (`k`, `+`, `.`
 * are 0 there too). Values beyond int64 are clamped: far outside every range the annotations accept.
 */
export function quantityValue(s: string): bigint | undefined {
  if (s === '') return undefined;
  const m = /^([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*)([+-]?[0-9]*)$/.exec(s);
  if (!m) return undefined;
  const [, sign, intPart, frac = '', letters, exponentDigits] = m as unknown as [string, string, string, string | undefined, string, string];
  const suffix = letters + exponentDigits;
  let num = BigInt((intPart || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  if (suffix in DECIMAL_SUFFIX) {
    const e = DECIMAL_SUFFIX[suffix]!;
    if (e >= 0) num *= 10n ** BigInt(e);
    else den *= 10n ** BigInt(-e);
  } else if (suffix in BINARY_SUFFIX) {
    num *= 1n << BigInt(BINARY_SUFFIX[suffix]!);
  } else if (/^[eE][+-]?[0-9]+$/.test(suffix)) {
    const e = Number(suffix.slice(1));
    if (!Number.isSafeInteger(e) || Math.abs(e) > 1000) return undefined;
    if (e >= 0) num *= 10n ** BigInt(e);
    else den *= 10n ** BigInt(-e);
  } else {
    return undefined;
  }
  let v = (num + den - 1n) / den;
  if (v > INT64_MAX) v = INT64_MAX;
  return sign === '-' ? -v : v;
}
