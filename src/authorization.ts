// Who may connect and which views they may ask for, from the identities a client certificate
// proves (its CN and URI SANs). Typha checks one exact CN or URI SAN and then serves any syncer
// type to anyone who passed; here both the identity check and a per-view
// rule list accept patterns, and a rule can bind a node identity to its own node's data.
//
// Patterns: `*` matches any run of characters other than `/` (so a SPIFFE path segment), `**`
// any run at all, and `{node}` a node name that must equal the node named in the hello.
// Rules (TYPHA_CLIENTAUTHORIZATION): `pattern=view|view|…` or `pattern=*`, first match wins.
//
// The mirror view (every node's data, for a server of a tier below) is a peer's role, not an
// agent's: `*` does not grant it, only a rule naming `mirror` does; without rules it is refused
// unless the operator opens it (TYPHA_ALLOWUNAUTHENTICATEDMIRROR, for a tree on a trusted network).
import { isViewName, MIRROR, SYNCER_TYPES, VIEW_NAMES, type ViewName } from './model/views.js';

export class AuthorizationError extends Error {}

export interface AuthRule {
  readonly source: string;
  readonly pattern: RegExp;
  readonly views: ReadonlySet<ViewName>;
  /** The pattern has {node}: the client may ask only for its own node. */
  readonly nodeBound: boolean;
}

/** A pattern as a RegExp anchored at both ends. */
export function identityPattern(p: string): RegExp {
  const parts = p.split(/(\*\*|\*|\{node\})/).map((part) => {
    if (part === '**') return '.*';
    if (part === '*') return '[^/]*';
    if (part === '{node}') return '(?<node>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)';
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('')}$`);
}

export function parseAuthorization(entries: readonly string[]): AuthRule[] {
  return entries.map((entry) => {
    const eq = entry.lastIndexOf('=');
    if (eq <= 0) throw new AuthorizationError(`${JSON.stringify(entry)} is not identity-pattern=views`);
    const names = entry.slice(eq + 1).split('|').map((v) => v.trim()).filter(Boolean);
    // `*` is every agent's view; the mirror view only where named.
    const views = names.flatMap((n) => (n === '*' ? [...SYNCER_TYPES] : [n]));
    const unknown = views.filter((v) => !isViewName(v));
    if (views.length === 0 || unknown.length) {
      throw new AuthorizationError(`${JSON.stringify(entry)}: views must be * or some of ${VIEW_NAMES.join('|')}${unknown.length ? `, not ${unknown.join(', ')}` : ''}`);
    }
    const source = entry.slice(0, eq).trim();
    if (views.includes(MIRROR) && source.includes('{node}')) throw new AuthorizationError(`${JSON.stringify(entry)}: the mirror view carries every node's data: a {node} identity may not have it`);
    return { source, pattern: identityPattern(source), views: new Set(views as ViewName[]), nodeBound: source.includes('{node}') };
  });
}

/**
 * Why a client may not have (syncer, node), or undefined when it may. `openMirror`: without rules,
 * the mirror view is served to any client too.
 */
export function denial(rules: readonly AuthRule[], identities: readonly string[], syncer: ViewName, node: string, openMirror = false): string | undefined {
  if (rules.length === 0) {
    if (syncer !== MIRROR || openMirror) return undefined;
    return 'the mirror view is for servers of a tier below: it needs an authorization rule naming mirror (TYPHA_CLIENTAUTHORIZATION, with mutual TLS) or TYPHA_ALLOWUNAUTHENTICATEDMIRROR';
  }
  for (const rule of rules) {
    for (const id of identities) {
      const m = rule.pattern.exec(id);
      if (!m) continue;
      if (!rule.views.has(syncer)) {
        return syncer === MIRROR
          ? `identity ${id} (rule ${rule.source}) may not request the mirror view: it is for servers of a tier below, granted only by a rule naming mirror`
          : `identity ${id} (rule ${rule.source}) may not request the ${syncer} view`;
      }
      if (rule.nodeBound && m.groups?.node !== node) return `identity ${id} may request only its own node ${m.groups?.node}, not ${JSON.stringify(node)}`;
      return undefined;
    }
  }
  return `no authorization rule matches ${identities.length ? identities.join(', ') : 'a client without a certificate'}`;
}
