/**
 * A raw TLS client at a gateway port, the way anyone who reaches that port can dial it: does a TLS
 * server answer this SNI, and who does it say it is? No client certificate: the question is what
 * the gateway routes, not what the service behind it admits.
 */
import * as tls from 'node:tls';

export type ProbeResult =
  | { readonly answered: true; readonly serverUris: readonly string[] }
  | { readonly answered: false; readonly reason: string };

/**
 * Connects to 127.0.0.1:`port` with `sni` (none when undefined) and reports whether the TLS
 * handshake reached a server (and its certificate's URI SANs) or the connection was closed or
 * refused first. `timeout` means nothing happened within `timeoutMs`.
 */
export function probeSni(
  port: number,
  sni: string | undefined,
  timeoutMs = 10_000,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      rejectUnauthorized: false,
      ...(sni === undefined ? {} : { servername: sni }),
    });
    const done = (result: ProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ answered: false, reason: 'timeout' }), timeoutMs);
    socket.once('secureConnect', () => {
      const san = socket.getPeerCertificate().subjectaltname ?? '';
      const serverUris = san
        .split(', ')
        .filter((s) => s.startsWith('URI:'))
        .map((s) => s.slice(4));
      done({ answered: true, serverUris });
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done({ answered: false, reason: err.code ?? err.message }),
    );
    socket.once('close', () => done({ answered: false, reason: 'closed' }));
  });
}
