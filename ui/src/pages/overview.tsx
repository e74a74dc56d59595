import type { UiOverviewJson } from '../../../src/api/ui-json.js';
import type { PageProps } from '../page-props.js';
import { useApi } from '../use-api.js';
import { age, Badge, days, Loaded, Ticking } from '../view.js';

/** This cluster, its CA and servers, and its peerings, unhealthy first. */
export function Overview({ onNeedsToken }: PageProps) {
  const state = useApi<UiOverviewJson>(
    '/v1/ui/overview',
    ['peerings', 'ca', 'catalog', 'proxies'],
    onNeedsToken,
  );
  return (
    <>
      <h1>Overview</h1>
      <Loaded state={state}>
        {(o) => (
          <>
            <dl class="facts">
              <dt>Datacenter</dt>
              <dd>{o.Datacenter}</dd>
              <dt>Trust domain</dt>
              <dd>{o.TrustDomain}</dd>
              <dt>Default intention</dt>
              <dd>
                <Badge value={o.DefaultIntentionAction} />
              </dd>
            </dl>
            <h2>Peerings</h2>
            {o.Peerings.length === 0 ? (
              <p>No peerings.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Peer</th>
                    <th scope="col">State</th>
                    <th scope="col">Healthy</th>
                    <th scope="col">Heartbeat</th>
                    <th scope="col">Imported</th>
                    <th scope="col">Exported</th>
                    <th scope="col">Last error</th>
                  </tr>
                </thead>
                <tbody>
                  {o.Peerings.map((p) => (
                    <tr key={p.Name} data-peering={p.Name}>
                      <th scope="row">
                        {p.Name}
                        {p.Remote.Datacenter && <span class="muted"> ({p.Remote.Datacenter})</span>}
                      </th>
                      <td>
                        <Badge value={p.State} />
                      </td>
                      <td>
                        <Badge value={p.Healthy ? 'yes' : 'no'} />
                      </td>
                      <td>
                        <Ticking ms={p.HeartbeatAgeMs} receivedAt={state.receivedAt} format={age} />
                      </td>
                      <td>{p.ImportedCount}</td>
                      <td>{p.ExportedCount}</td>
                      <td class="message">{p.StreamStatus.LastError || '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <h2>CA roots</h2>
            <table>
              <thead>
                <tr>
                  <th scope="col">Root</th>
                  <th scope="col">Active</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                {o.Roots.map((r) => (
                  <tr key={r.ID} data-root={r.ID}>
                    <th scope="row">{r.Name}</th>
                    <td>{r.Active ? 'active' : 'previous'}</td>
                    <td>
                      {r.NotAfter.slice(0, 10)} (
                      <Ticking
                        ms={r.ExpiresInMs}
                        receivedAt={state.receivedAt}
                        format={days}
                        sign={-1}
                      />
                      )
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <h2>Servers</h2>
            <table>
              <thead>
                <tr>
                  <th scope="col">Server</th>
                  <th scope="col">Version</th>
                  <th scope="col">HTTP</th>
                  <th scope="col">xDS</th>
                  <th scope="col">Peering</th>
                  <th scope="col">Leader</th>
                  <th scope="col">Proxies</th>
                </tr>
              </thead>
              <tbody>
                {o.Servers.map((s) => (
                  <tr key={s.Name}>
                    <th scope="row">{s.Name}</th>
                    <td>{s.Version}</td>
                    <td>{s.HTTP}</td>
                    <td>{s.XDS}</td>
                    <td>{s.Peering}</td>
                    <td>{s.Leader ? 'leader' : '—'}</td>
                    <td>{s.ConnectedProxies ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Loaded>
    </>
  );
}
