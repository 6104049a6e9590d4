import { createHmac } from 'node:crypto';

const base64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/**
 * An HS256 JWT of `claims` signed with `secret` (the worker's `Bridge:Auth:HmacSecret`, docs/protocol.md §1.1), issued
 * now (`iat`, unix seconds) and valid for an hour unless the claims say otherwise.
 */
export function hs256Token(secret, claims) {
  const now = Math.floor(Date.now() / 1000);
  const head = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ iat: now, exp: now + 3600, ...claims })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}
