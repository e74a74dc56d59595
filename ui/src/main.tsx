import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { followEvents, savedToken, saveToken } from './api.js';
import { Overview } from './pages/overview.js';
import { Proxies, ProxyDetail } from './pages/proxies.js';
import { Services } from './pages/services.js';
import { Topology } from './pages/topology.js';

const pages = [
  { path: 'overview', title: 'Overview' },
  { path: 'services', title: 'Services' },
  { path: 'proxies', title: 'Proxies' },
  { path: 'topology', title: 'Intentions and topology' },
] as const;

/** `#/proxies/<id>` → ['proxies', '<id>']; the app routes by hash, so the server has one page. */
function route(): string[] {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return parts[0] ? parts : ['overview'];
}

function App() {
  const [path, setPath] = useState(route);
  const [live, setLive] = useState(false);
  /** Why the token prompt is open: the API refused the request, or the user asked for it. */
  const [askToken, setAskToken] = useState<'refused' | 'asked' | undefined>();
  const [epoch, setEpoch] = useState(0);
  const onNeedsToken = useCallback(() => setAskToken((why) => why ?? 'refused'), []);
  useEffect(() => {
    const onHash = () => setPath(route());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  // A new token restarts the stream (and the pages, through `epoch`).
  useEffect(() => followEvents(setLive), [epoch]);
  const [page, id] = path;
  useEffect(() => {
    const title = pages.find((p) => p.path === page)?.title ?? 'Not found';
    document.title = `${title} · isthmus`;
  }, [page]);
  return (
    <>
      <header>
        <span class="brand">isthmus</span>
        <nav aria-label="Main">
          <ul>
            {pages.map((p) => (
              <li key={p.path}>
                <a href={`#/${p.path}`} aria-current={p.path === page ? 'page' : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class={`live ${live ? 'on' : 'off'}`} role="status">
          {live ? 'Live' : 'Reconnecting…'}
        </span>
        <button type="button" class="link" onClick={() => setAskToken('asked')}>
          Token
        </button>
      </header>
      <main key={epoch}>
        {askToken && (
          <TokenPrompt
            refused={askToken === 'refused' && savedToken() !== ''}
            onDone={(token) => {
              if (token !== undefined) saveToken(token);
              setAskToken(undefined);
              setEpoch((e) => e + 1);
            }}
          />
        )}
        <Page page={page} id={id} onNeedsToken={onNeedsToken} />
      </main>
    </>
  );
}

function Page(props: {
  page: string | undefined;
  id: string | undefined;
  onNeedsToken: () => void;
}) {
  const { page, id, onNeedsToken } = props;
  switch (page) {
    case 'overview':
      return <Overview onNeedsToken={onNeedsToken} />;
    case 'services':
      return <Services onNeedsToken={onNeedsToken} />;
    case 'proxies':
      return id ? (
        <ProxyDetail id={id} onNeedsToken={onNeedsToken} />
      ) : (
        <Proxies onNeedsToken={onNeedsToken} />
      );
    case 'topology':
      return <Topology onNeedsToken={onNeedsToken} />;
    default:
      return <h1>Not found</h1>;
  }
}

/** Asks for the HTTP API token (`--http-token`, or an API token with the `read` scope). */
function TokenPrompt(props: {
  /** The token kept in this tab was sent and refused. */
  refused: boolean;
  onDone: (token: string | undefined) => void;
}) {
  const { refused, onDone } = props;
  const [token, setToken] = useState(savedToken);
  return (
    <form
      class="token"
      aria-labelledby="token-title"
      onSubmit={(e) => {
        e.preventDefault();
        onDone(token.trim());
      }}
    >
      <h2 id="token-title">This server needs an HTTP API token</h2>
      {refused && (
        <p role="alert" class="error">
          The server refused the token this tab was using: it is not the server's token or an API
          token it knows.
        </p>
      )}
      <p>
        The server's <code>--http-token</code>, or an API token with the <code>read</code> scope. It
        is kept in this tab only.
      </p>
      <label>
        Token{' '}
        <input
          type="password"
          autoComplete="off"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
      </label>{' '}
      <button type="submit">Use token</button>{' '}
      <button type="button" onClick={() => onDone(undefined)}>
        Cancel
      </button>
    </form>
  );
}

render(<App />, document.getElementById('app')!);
