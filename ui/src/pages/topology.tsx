import { useState } from 'preact/hooks';
import type {
  UiChecklistJson,
  UiEdgeJson,
  UiNodeJson,
  UiTopologyJson,
} from '../../../src/api/ui-json.js';
import type { PageProps } from '../page-props.js';
import { useApi } from '../use-api.js';
import { Badge, Loaded } from '../view.js';

const label = (n: UiNodeJson) =>
  n.ID === '*' ? 'any service' : n.Peer ? `${n.Name} (peer ${n.Peer})` : n.Name;

/** Who may call whom across peers, one service's neighbours, and "why can't X call Y". */
export function Topology({ onNeedsToken }: PageProps) {
  const state = useApi<UiTopologyJson>('/v1/ui/topology', ['catalog', 'peerings'], onNeedsToken);
  return (
    <>
      <h1>Intentions and topology</h1>
      <Loaded state={state}>
        {(t) => (
          <>
            <p>
              Mesh default: <Badge value={t.DefaultIntentionAction} /> (calls no intention matches)
            </p>
            <Graph topology={t} />
            <EdgeTable edges={t.Edges} nodes={t.Nodes} />
            <Neighbours topology={t} />
            <Why nodes={t.Nodes} onNeedsToken={onNeedsToken} />
          </>
        )}
      </Loaded>
    </>
  );
}

const box = { w: 190, h: 34, gapX: 110, gapY: 22, pad: 24 };

/** Columns: this cluster's services first, then one column per peer. */
function layout(nodes: readonly UiNodeJson[]) {
  const peers = [...new Set(nodes.map((n) => n.Peer))].sort();
  const rows = new Map<string, number>();
  const at = new Map<string, { x: number; y: number; col: number }>();
  for (const n of nodes) {
    const col = peers.indexOf(n.Peer);
    const row = rows.get(n.Peer) ?? 0;
    rows.set(n.Peer, row + 1);
    at.set(n.ID, {
      x: box.pad + col * (box.w + box.gapX),
      y: box.pad + 24 + row * (box.h + box.gapY),
      col,
    });
  }
  const height = box.pad * 2 + 24 + Math.max(1, ...rows.values()) * (box.h + box.gapY);
  return { peers, at, width: box.pad * 2 + peers.length * (box.w + box.gapX), height };
}

function edgePath(
  a: { x: number; y: number; col: number },
  b: { x: number; y: number; col: number },
) {
  const [y1, y2] = [a.y + box.h / 2, b.y + box.h / 2];
  if (a.col === b.col) {
    // Within a column: leave and enter on the right, bulging out by the distance.
    const x = a.x + box.w;
    const bulge = 40 + Math.abs(y2 - y1) / 4;
    return `M${x} ${y1} C${x + bulge} ${y1} ${x + bulge} ${y2} ${x} ${y2}`;
  }
  const [x1, x2] = a.col < b.col ? [a.x + box.w, b.x] : [a.x, b.x + box.w];
  const mid = (x1 + x2) / 2;
  return `M${x1} ${y1} C${mid} ${y1} ${mid} ${y2} ${x2} ${y2}`;
}

function Graph({ topology }: { topology: UiTopologyJson }) {
  const { peers, at, width, height } = layout(topology.Nodes);
  const byId = new Map(topology.Nodes.map((n) => [n.ID, n]));
  return (
    <figure>
      <svg
        class="graph"
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
        role="img"
        aria-labelledby="graph-title"
      >
        <title id="graph-title">Who may call whom: arrows from caller to callee</title>
        <defs>
          {['allow', 'deny', 'l7', 'remote'].map((a) => (
            <marker
              key={a}
              id={`arrow-${a}`}
              viewBox="0 0 10 10"
              refX="10"
              refY="5"
              markerWidth="7"
              markerHeight="7"
              orient="auto"
            >
              <path d="M0 0 L10 5 L0 10 z" class={`edge-${a}`} />
            </marker>
          ))}
        </defs>
        {peers.map((p, col) => (
          <text key={p} x={box.pad + col * (box.w + box.gapX)} y={box.pad} class="column">
            {p ? `peer ${p}` : 'this cluster'}
          </text>
        ))}
        {topology.Edges.map((e) => {
          const [a, b] = [at.get(e.From), at.get(e.To)];
          if (!a || !b) return null;
          return (
            <path
              key={`${e.From}>${e.To}`}
              d={edgePath(a, b)}
              class={`edge edge-${e.Action}${e.Upstream ? '' : ' intention-only'}`}
              marker-end={`url(#arrow-${e.Action})`}
              data-edge={`${e.From}>${e.To}`}
            >
              <title>{`${label(byId.get(e.From)!)} → ${label(byId.get(e.To)!)}: ${e.Action}`}</title>
            </path>
          );
        })}
        {topology.Nodes.map((n) => {
          const p = at.get(n.ID)!;
          return (
            <g key={n.ID} data-node={n.ID}>
              <rect x={p.x} y={p.y} width={box.w} height={box.h} rx="6" class="node" />
              <text x={p.x + 10} y={p.y + box.h / 2 + 5}>
                {n.ID === '*' ? 'any service' : n.Name}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption>
        Green: allowed, red dashed: denied, amber: decided per request (L7), grey: decided by the
        peer. Solid arrows are upstreams a sidecar declares.
      </figcaption>
    </figure>
  );
}

function verdict(e: UiEdgeJson): string {
  if (e.Action === 'remote') return 'the peer decides';
  return e.Intention ? `intention ${e.Intention}` : 'mesh default';
}

function EdgeTable({
  edges,
  nodes,
}: {
  edges: readonly UiEdgeJson[];
  nodes: readonly UiNodeJson[];
}) {
  const byId = new Map(nodes.map((n) => [n.ID, n]));
  const name = (id: string) => {
    const n = byId.get(id);
    return n ? label(n) : id;
  };
  return (
    <section>
      <h2>Calls</h2>
      {edges.length === 0 ? (
        <p>No intentions and no upstreams yet.</p>
      ) : (
        <table class="edges">
          <thead>
            <tr>
              <th scope="col">Caller</th>
              <th scope="col">Callee</th>
              <th scope="col">Verdict</th>
              <th scope="col">Decided by</th>
              <th scope="col">Upstream</th>
            </tr>
          </thead>
          <tbody>
            {edges.map((e) => (
              <tr key={`${e.From}>${e.To}`} data-edge={`${e.From}>${e.To}`}>
                <td>{name(e.From)}</td>
                <td>{name(e.To)}</td>
                <td>
                  <Badge value={e.Action} />
                </td>
                <td>{verdict(e)}</td>
                <td>{e.Upstream ? 'yes' : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Neighbours({ topology }: { topology: UiTopologyJson }) {
  const services = topology.Nodes.filter((n) => n.ID !== '*');
  const [chosen, setChosen] = useState('');
  const id = chosen || services[0]?.ID || '';
  const byId = new Map(topology.Nodes.map((n) => [n.ID, n]));
  const list = (edges: UiEdgeJson[], side: 'From' | 'To') =>
    edges.length === 0 ? (
      <p>None.</p>
    ) : (
      <ul>
        {edges.map((e) => (
          <li key={e[side]}>
            {label(byId.get(e[side])!)} <Badge value={e.Action} />
          </li>
        ))}
      </ul>
    );
  return (
    <section>
      <h2>One service</h2>
      <label for="neighbours-of">Service</label>{' '}
      <select id="neighbours-of" value={id} onChange={(e) => setChosen(e.currentTarget.value)}>
        {services.map((n) => (
          <option key={n.ID} value={n.ID}>
            {label(n)}
          </option>
        ))}
      </select>
      <div class="columns">
        <div>
          <h3>Upstreams (it calls)</h3>
          {list(
            topology.Edges.filter((e) => e.From === id),
            'To',
          )}
        </div>
        <div>
          <h3>Downstreams (call it)</h3>
          {list(
            topology.Edges.filter((e) => e.To === id),
            'From',
          )}
        </div>
      </div>
    </section>
  );
}

function Why({ nodes, onNeedsToken }: PageProps & { nodes: readonly UiNodeJson[] }) {
  const services = nodes.filter((n) => n.ID !== '*');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [path, setPath] = useState<string | undefined>();
  const answer = useApi<UiChecklistJson>(path, ['catalog', 'peerings', 'proxies'], onNeedsToken);
  const ask = (e: Event) => {
    e.preventDefault();
    const [a, b] = [services.find((n) => n.ID === from), services.find((n) => n.ID === to)];
    if (!a || !b) return;
    const q = new URLSearchParams({ source: a.Name, destination: b.Name });
    if (a.Peer) q.set('source_peer', a.Peer);
    if (b.Peer) q.set('destination_peer', b.Peer);
    setPath(`/v1/ui/why?${q}`);
  };
  const options = services.map((n) => (
    <option key={n.ID} value={n.ID}>
      {label(n)}
    </option>
  ));
  return (
    <section>
      <h2>Why can't a service call another?</h2>
      <form onSubmit={ask} class="why">
        <label for="why-from">Caller</label>{' '}
        <select
          id="why-from"
          value={from}
          onChange={(e) => setFrom(e.currentTarget.value)}
          required
        >
          <option value="">choose…</option>
          {options}
        </select>{' '}
        <label for="why-to">Callee</label>{' '}
        <select id="why-to" value={to} onChange={(e) => setTo(e.currentTarget.value)} required>
          <option value="">choose…</option>
          {options}
        </select>{' '}
        <button type="submit">Check</button>
      </form>
      {path && (
        <Loaded state={answer}>
          {(c) => (
            <div class="checklist" aria-live="polite">
              <p>
                <strong>{c.Subject}</strong>:{' '}
                {c.OK
                  ? 'nothing found in the way'
                  : `blocked by ${c.Checks.filter((k) => !k.OK)
                      .map((k) => k.Name)
                      .join(', ')}`}
              </p>
              <ul>
                {c.Checks.map((k) => (
                  <li key={k.Name} class={k.Skipped ? 'skipped' : k.OK ? 'ok' : 'failed'}>
                    <Badge value={k.Skipped ? 'skipped' : k.OK ? 'yes' : 'no'} /> {k.Name}:{' '}
                    {k.Detail}
                    {k.Fix && <div class="fix">Fix: {k.Fix}</div>}
                  </li>
                ))}
              </ul>
            </div>
          )}
        </Loaded>
      )}
    </section>
  );
}
