// The admin listener's access rules as pure functions: request targets never
// throw, Host names (DNS rebinding), Origin, Content-Type, the bearer token.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerMatches, hostAllowed, isJsonContentType, isLoopbackName, originAllowed, queryHas, splitTarget } from '../src/admin/adminAccess.js';

describe('splitTarget', () => {
  it('splits origin-form targets, refuses every other form, never throws', () => {
    expect(splitTarget('/stats')).toEqual({ path: '/stats', query: '' });
    expect(splitTarget('/status?json')).toEqual({ path: '/status', query: 'json' });
    expect(splitTarget('//:99999')).toEqual({ path: '//:99999', query: '' });
    expect(splitTarget('/a#b?c')).toEqual({ path: '/a', query: '' });
    expect(splitTarget('/a?b#c')).toEqual({ path: '/a', query: 'b' });
    for (const t of ['*', 'http://', 'http://x/stats', 'example.com:443', '?', '', undefined]) expect(splitTarget(t)).toBeNull();
    fc.assert(fc.property(fc.string(), (t) => { splitTarget(t); }));
  });

  it('queryHas finds a parameter without decoding', () => {
    expect(queryHas('json', 'json')).toBe(true);
    expect(queryHas('a=1&json=%zz', 'json')).toBe(true);
    expect(queryHas('jsonx', 'json')).toBe(false);
    expect(queryHas('', 'json')).toBe(false);
  });
});

describe('Host and Origin', () => {
  it('a loopback listener takes loopback names only, with or without a port', () => {
    for (const h of ['127.0.0.1', '127.0.0.1:8081', '127.1.2.3:1', 'localhost', 'LOCALHOST:8081', '[::1]', '[::1]:8081', '[::ffff:127.0.0.1]:8081']) {
      expect(hostAllowed(h, true), h).toBe(true);
    }
    for (const h of [undefined, '', 'evil.com', 'evil.com:8081', 'localhost.evil.com', '127.0.0.1.nip.io:8081', '10.0.0.5:8081', '[::2]:8081',
      '127.0.0.1:8081@evil.com', 'user@127.0.0.1', '[::1', '::1', '127.0.0.1:', ' 127.0.0.1', '127.0.0.1/x']) {
      expect(hostAllowed(h, true), String(h)).toBe(false);
    }
  });

  it('a listener bound elsewhere also takes IP literals, never a name', () => {
    expect(hostAllowed('10.0.0.5:8081', false)).toBe(true);
    expect(hostAllowed('[2001:db8::1]:8081', false)).toBe(true);
    expect(hostAllowed('admin.example.com:8081', false)).toBe(false);
  });

  it('bind addresses: loopback or not', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackName(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.1.2.3', 'example.com', '::ffff:10.0.0.1']) expect(isLoopbackName(h), h).toBe(false);
  });

  it('Origin: absent or the admin\'s own passes; any other, "null" included, does not', () => {
    expect(originAllowed(undefined, '127.0.0.1:8081')).toBe(true);
    expect(originAllowed('http://127.0.0.1:8081', '127.0.0.1:8081')).toBe(true);
    for (const o of ['http://evil.com', 'null', '', 'http://127.0.0.1:8082', 'https://127.0.0.1:8081', 'http://localhost:8081']) {
      expect(originAllowed(o, '127.0.0.1:8081'), o).toBe(false);
    }
  });
});

describe('Content-Type and token', () => {
  it('only application/json (with parameters) is JSON', () => {
    expect(isJsonContentType('application/json')).toBe(true);
    expect(isJsonContentType('Application/JSON; charset=utf-8')).toBe(true);
    for (const t of [undefined, '', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/jsonx']) expect(isJsonContentType(t), String(t)).toBe(false);
  });

  it('Bearer TOKEN matches the token exactly', () => {
    const token = 'a'.repeat(64);
    expect(bearerMatches(`Bearer ${token}`, token)).toBe(true);
    expect(bearerMatches(`bearer ${token}`, token)).toBe(true);
    for (const h of [undefined, '', token, `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Basic ${token}`, `Bearer ${token} extra`, 'Bearer ']) {
      expect(bearerMatches(h, token), String(h)).toBe(false);
    }
  });
});
