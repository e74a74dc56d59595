/**
 * `x-forwarded-client-cert` as Envoy writes it: one element per proxy that terminated mTLS on the
 * way, oldest first, each `key=value` pairs separated by `;`, elements by `,`; values with `,`, `;`
 * or `=` are double-quoted (Envoy's XFCC docs, "x-forwarded-client-cert"). In an element, `By` is
 * the URI SAN of the certificate that proxy presented (the server side of that hop) and `URI` the
 * one its client presented. `parseXfcc` never throws; what it cannot read it leaves out.
 */

export interface XfccElement {
  readonly by?: string;
  readonly uri?: string;
}

export function parseXfcc(header: string): XfccElement[] {
  const elements: XfccElement[] = [];
  let pairs: Record<string, string> = {};
  let token = '';
  let quoted = false;
  const endPair = () => {
    const eq = token.indexOf('=');
    if (eq > 0)
      pairs[token.slice(0, eq).trim().toLowerCase()] = unquote(token.slice(eq + 1).trim());
    token = '';
  };
  const endElement = () => {
    endPair();
    if (pairs.by !== undefined || pairs.uri !== undefined)
      elements.push({
        ...(pairs.by ? { by: pairs.by } : {}),
        ...(pairs.uri ? { uri: pairs.uri } : {}),
      });
    pairs = {};
  };
  for (let i = 0; i < header.length; i++) {
    const c = header[i]!;
    if (c === '\\' && quoted && i + 1 < header.length) {
      token += c + header[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (!quoted && c === ';') endPair();
    else if (!quoted && c === ',') endElement();
    else token += c;
  }
  endElement();
  return elements;
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"')
    ? v.slice(1, -1).replace(/\\(.)/g, '$1')
    : v;
}
