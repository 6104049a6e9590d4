/**
 * Exponential backoff with full jitter: attempt n (0-based) waits a uniformly random time in
 * [0, min(maxMs, minMs * 2^n)). The randomness spreads a crowd of clients that lost the same worker at the same
 * moment, so they do not all come back at once.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** The spread delay a worker puts in a 1012 close reason (`reconnect_after_ms=<n>`), or undefined. */
export function reconnectAfterMs(reason: string | undefined): number | undefined {
  if (!reason) return undefined;
  const match = /reconnect_after_ms=(\d+)/.exec(reason);
  if (!match) return undefined;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : undefined;
}

/** 16 random bytes as base64url (22 chars): a publish id that is unique without coordination. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  // getRandomValues works in insecure browser contexts too, unlike crypto.randomUUID.
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** `exp` of a JWT in ms since the epoch, or undefined when the token is not a JWT with a numeric exp. */
export function jwtExpiryMs(token: string | undefined): number | undefined {
  if (!token) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const json = atob(parts[1]!.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(parts[1]!.length / 4) * 4, '='));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
