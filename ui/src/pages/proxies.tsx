import { useState } from 'preact/hooks';
import type { UiProxyConfigJson, UiProxyJson } from '../../../src/api/ui-json.js';
import type { PageProps } from '../page-props.js';
import { useApi } from '../use-api.js';
import { Badge, Loaded } from '../view.js';

const types = ['CDS', 'LDS', 'EDS', 'RDS', 'SDS'] as const;
const configTypes = ['clusters', 'listeners', 'endpoints', 'routes', 'secrets'] as const;

/** CSDS's ERROR is a NACK: operators know it by Envoy's word. */
const statusWord = (s: string) => (s === 'ERROR' ? 'NACKED' : s);

const trouble: Readonly<Record<string, number>> = { ERROR: 3, STALE: 2, NOT_SENT: 1 };

/** How far from SYNCED a proxy's worst type is (NACKED worst). */
const troubleOf = (p: UiProxyJson) =>
  Math.max(0, ...Object.values(p.Types).map((t) => trouble[t?.status ?? ''] ?? 0));

/** Proxies in trouble first (the list is by ID within each level). */
const troubleFirst = (a: UiProxyJson, b: UiProxyJson) => troubleOf(b) - troubleOf(a);

/** Every connected proxy, those in trouble first, with its per-type sync state and last NACK. */
export function Proxies({ onNeedsToken }: PageProps) {
  const state = useApi<UiProxyJson[]>('/v1/xds/proxies', ['proxies'], onNeedsToken);
  return (
    <>
      <h1>Proxies</h1>
      <Loaded state={state}>
        {(proxies) =>
          proxies.length === 0 ? (
            <p>No proxy is connected to this cluster's servers.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Proxy</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Server</th>
                  {types.map((t) => (
                    <th scope="col" key={t}>
                      {t}
                    </th>
                  ))}
                  <th scope="col">Version</th>
                  <th scope="col">Last NACK</th>
                </tr>
              </thead>
              <tbody>
                {[...proxies].sort(troubleFirst).map((p) => (
                  <tr key={`${p.ID}@${p.Server ?? ''}`} data-proxy={p.ID}>
                    <th scope="row">
                      <a href={`#/proxies/${encodeURIComponent(p.ID)}`}>{p.ID}</a>
                    </th>
                    <td>{p.Kind}</td>
                    <td>{p.Server ?? '—'}</td>
                    {types.map((t) => (
                      <td key={t}>
                        <Badge value={statusWord(p.Types[t]?.status ?? 'NONE')} />
                      </td>
                    ))}
                    <td class="mono">{p.Version.slice(0, 12)}</td>
                    <td class="message">
                      {p.LastNack ? `${p.LastNack.Type}: ${p.LastNack.Message}` : '—'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
    </>
  );
}

/** One proxy: its state, and what the server wants it to hold, one xDS type at a time. */
export function ProxyDetail({ id, onNeedsToken }: PageProps & { id: string }) {
  const [type, setType] = useState<(typeof configTypes)[number]>('clusters');
  const path = `/v1/xds/proxies/${encodeURIComponent(id)}`;
  const proxy = useApi<UiProxyJson>(path, ['proxies'], onNeedsToken);
  const config = useApi<UiProxyConfigJson>(`${path}/config/${type}`, ['proxies'], onNeedsToken);
  // The WAI-ARIA tabs pattern: one tab in the Tab order, arrows and Home/End move between them.
  const onTabKey = (e: KeyboardEvent) => {
    const at = configTypes.indexOf(type);
    const next =
      e.key === 'ArrowRight'
        ? (at + 1) % configTypes.length
        : e.key === 'ArrowLeft'
          ? (at + configTypes.length - 1) % configTypes.length
          : e.key === 'Home'
            ? 0
            : e.key === 'End'
              ? configTypes.length - 1
              : -1;
    const t = configTypes[next];
    if (!t) return;
    e.preventDefault();
    setType(t);
    document.getElementById(`tab-${t}`)?.focus();
  };
  return (
    <>
      <h1>Proxy {id}</h1>
      <p>
        <a href="#/proxies">All proxies</a>
      </p>
      <Loaded state={proxy}>
        {(p) => (
          <dl class="facts">
            <dt>Kind</dt>
            <dd>{p.Kind}</dd>
            <dt>Server</dt>
            <dd>{p.Server ?? '—'}</dd>
            <dt>Cluster</dt>
            <dd>{p.Cluster}</dd>
            <dt>Connected</dt>
            <dd>
              {p.ConnectedAt} over {p.API}
            </dd>
            <dt>Version</dt>
            <dd class="mono">{p.Version}</dd>
            {p.LastNack && (
              <>
                <dt>Last NACK</dt>
                <dd class="message">{`${p.LastNack.Type}: ${p.LastNack.Message}`}</dd>
              </>
            )}
          </dl>
        )}
      </Loaded>
      <div role="tablist" aria-label="xDS type" class="tabs" onKeyDown={onTabKey}>
        {configTypes.map((t) => (
          <button
            type="button"
            role="tab"
            key={t}
            id={`tab-${t}`}
            aria-selected={t === type}
            aria-controls="config-panel"
            tabIndex={t === type ? 0 : -1}
            onClick={() => setType(t)}
          >
            {t}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="config-panel" aria-labelledby={`tab-${type}`}>
        <Loaded state={config}>
          {(c) =>
            c.Resources.length === 0 ? (
              <p>No {type}.</p>
            ) : (
              c.Resources.map((r) => (
                <details key={r.Name}>
                  <summary>
                    {r.Name} <Badge value={statusWord(r.Status)} />
                  </summary>
                  {/* Focusable: a scrolled region must be reachable from the keyboard. */}
                  {/* biome-ignore lint/a11y/noNoninteractiveTabindex: see above */}
                  <pre tabIndex={0}>{JSON.stringify(r.Resource, null, 2)}</pre>
                </details>
              ))
            )
          }
        </Loaded>
      </div>
    </>
  );
}
