/**
 * The part of Consul's subset `Filter` language (hashicorp/go-bexpr over the service instance)
 * that isthmus evaluates: `and`-joined clauses on the instance's metadata and tags, e.g.
 * `Service.Meta.version == v1 and Service.Tags contains canary`. Anything else is refused when the
 * resolver is written, so a filter is never half understood.
 */
export type SubsetClause =
  | {
      readonly kind: 'meta';
      readonly key: string;
      readonly op: '==' | '!=';
      readonly value: string;
    }
  | { readonly kind: 'tag'; readonly tag: string; readonly present: boolean };

export type SubsetFilter = readonly SubsetClause[];

export const subsetFilterHelp =
  'clauses joined by "and": Service.Meta.<key> == <value>, Service.Meta.<key> != <value>, ' +
  'Service.Tags contains <tag>, Service.Tags not contains <tag>, <tag> in Service.Tags, ' +
  '<tag> not in Service.Tags (values bare or "quoted")';

const value = String.raw`("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.:/-]+)`;
const metaClause = new RegExp(String.raw`^Service\.Meta\.([A-Za-z0-9_-]+)\s*(==|!=)\s*${value}$`);
const containsClause = new RegExp(String.raw`^Service\.Tags\s+(not\s+)?contains\s+${value}$`);
const inClause = new RegExp(String.raw`^${value}\s+(not\s+)?in\s+Service\.Tags$`);

const unquote = (v = '') => (v.startsWith('"') ? (JSON.parse(v) as string) : v);

/** The filter's clauses, or the clause that is not understood. An empty filter matches all. */
export function parseSubsetFilter(
  text: string,
): { ok: true; filter: SubsetFilter } | { ok: false; clause: string } {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, filter: [] };
  const out: SubsetClause[] = [];
  for (const raw of trimmed.split(/\s+and\s+/)) {
    const clause = raw.trim();
    let m = metaClause.exec(clause);
    if (m) {
      out.push({ kind: 'meta', key: m[1] ?? '', op: m[2] as '==' | '!=', value: unquote(m[3]) });
      continue;
    }
    m = containsClause.exec(clause);
    if (m) {
      out.push({ kind: 'tag', tag: unquote(m[2]), present: m[1] === undefined });
      continue;
    }
    m = inClause.exec(clause);
    if (m) {
      out.push({ kind: 'tag', tag: unquote(m[1]), present: m[2] === undefined });
      continue;
    }
    return { ok: false, clause };
  }
  return { ok: true, filter: out };
}

/** Whether an instance (its tags and metadata) is in the subset. */
export function matchesSubset(
  filter: SubsetFilter,
  instance: { readonly tags: readonly string[]; readonly meta: Readonly<Record<string, string>> },
): boolean {
  return filter.every((c) => {
    if (c.kind === 'tag') return instance.tags.includes(c.tag) === c.present;
    const actual = instance.meta[c.key];
    return c.op === '==' ? actual === c.value : actual !== c.value;
  });
}
