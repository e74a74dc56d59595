import type { UiServiceJson, UiServicesJson } from '../../../src/api/ui-json.js';
import type { PageProps } from '../page-props.js';
import { useApi } from '../use-api.js';
import { Badge, Loaded } from '../view.js';

/** Local services with their instances, sidecars and exports; then each peer's imports. */
export function Services({ onNeedsToken }: PageProps) {
  const state = useApi<UiServicesJson>('/v1/ui/services', ['catalog', 'peerings'], onNeedsToken);
  return (
    <>
      <h1>Services</h1>
      <Loaded state={state}>
        {(s) => (
          <>
            <ServiceTable caption="Local services" services={s.Local} showExports />
            {s.Imported.map((p) => (
              <ServiceTable
                key={p.Peer}
                caption={`Imported from ${p.Peer}`}
                services={p.Services}
                showExports={false}
              />
            ))}
          </>
        )}
      </Loaded>
    </>
  );
}

function ServiceTable(props: {
  caption: string;
  services: readonly UiServiceJson[];
  showExports: boolean;
}) {
  return (
    <section>
      <h2>{props.caption}</h2>
      {props.services.length === 0 ? (
        <p>None.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Service</th>
              <th scope="col">Instances</th>
              <th scope="col">Sidecars and upstreams</th>
              {props.showExports && <th scope="col">Exported to</th>}
            </tr>
          </thead>
          <tbody>
            {props.services.map((svc) => (
              <tr key={svc.Name} data-service={svc.Name}>
                <th scope="row">
                  {svc.Name}
                  {svc.Kind === 'mesh-gateway' && <span class="muted"> (mesh gateway)</span>}
                </th>
                <td>
                  <ul class="plain">
                    {svc.Instances.map((i) => (
                      <li key={i.ID}>
                        {i.ID} <span class="muted">{`${i.Address}:${i.Port}`}</span>{' '}
                        <Badge value={i.Health} />
                      </li>
                    ))}
                  </ul>
                </td>
                <td>
                  <ul class="plain">
                    {svc.Sidecars.map((i) => (
                      <li key={i.ID}>
                        {i.ID} <Badge value={i.Health} />
                        {i.Upstreams && i.Upstreams.length > 0 && (
                          <span class="muted"> → {i.Upstreams.join(', ')}</span>
                        )}
                      </li>
                    ))}
                  </ul>
                </td>
                {props.showExports && <td>{svc.ExportedTo.join(', ') || '—'}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
