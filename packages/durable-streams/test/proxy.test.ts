import type { IncomingMessage } from 'node:http';
import { BlockList } from 'node:net';
import { clientOrigin, loadConfig, type ServerConfig } from '@towerline/durable-streams';
import { describe, expect, it } from 'vitest';

function request(
  peer: string,
  headers: Record<string, string>,
  encrypted = false,
): IncomingMessage {
  return { socket: { remoteAddress: peer, encrypted }, headers } as unknown as IncomingMessage;
}

function setup(patch: (c: ServerConfig) => void) {
  const c = loadConfig({ env: {} });
  patch(c);
  const trusted = new BlockList();
  trusted.addSubnet('10.0.0.0', 8, 'ipv4');
  return { c, trusted };
}

describe('proxy trust gating', () => {
  it('ignores forwarding headers when the proxy is off or the peer is not trusted', () => {
    const off = setup(() => {});
    expect(
      clientOrigin(request('10.1.2.3', { 'x-forwarded-for': '1.2.3.4' }), off.c, off.trusted)
        .address,
    ).toBe('10.1.2.3');
    const on = setup((c) => {
      c.proxy.enabled = true;
      c.proxy.forwarded_headers = 'x-forwarded';
      c.proxy.trusted_proxies = ['10.0.0.0/8'];
    });
    expect(
      clientOrigin(request('192.168.1.1', { 'x-forwarded-for': '1.2.3.4' }), on.c, on.trusted)
        .address,
    ).toBe('192.168.1.1');
  });

  it('honours X-Forwarded-* from a trusted proxy', () => {
    const { c, trusted } = setup((c) => {
      c.proxy.enabled = true;
      c.proxy.forwarded_headers = 'x-forwarded';
      c.proxy.trusted_proxies = ['10.0.0.0/8'];
    });
    const origin = clientOrigin(
      request('::ffff:10.0.0.5', {
        'x-forwarded-for': '203.0.113.9, 10.0.0.5',
        'x-forwarded-proto': 'https',
      }),
      c,
      trusted,
    );
    expect(origin).toMatchObject({ address: '203.0.113.9', proto: 'https' });
  });

  it('honours RFC 7239 Forwarded from a trusted proxy, and only the configured kind', () => {
    const { c, trusted } = setup((c) => {
      c.proxy.enabled = true;
      c.proxy.forwarded_headers = 'forwarded';
      c.proxy.trusted_proxies = ['10.0.0.0/8'];
    });
    const origin = clientOrigin(
      request('10.0.0.5', {
        forwarded: 'for="[2001:db8::1]:4711";proto=https, for=10.0.0.5',
        'x-forwarded-for': '6.6.6.6',
      }),
      c,
      trusted,
    );
    expect(origin).toMatchObject({ address: '2001:db8::1', proto: 'https' });
  });

  it('believes an identity header only from a trusted proxy over mTLS', () => {
    const mtls = setup((c) => {
      c.transport.mode = 'mtls';
      c.proxy.enabled = true;
      c.proxy.forwarded_headers = 'forwarded';
      c.proxy.trusted_proxies = ['10.0.0.0/8'];
      c.proxy.identity = { mode: 'header', header_name: 'x-client-identity', require_tls: true };
    });
    const headers = { 'x-client-identity': 'svc-orders' };
    expect(clientOrigin(request('10.0.0.5', headers, true), mtls.c, mtls.trusted).identity).toBe(
      'svc-orders',
    );
    expect(
      clientOrigin(request('10.0.0.5', headers, false), mtls.c, mtls.trusted).identity,
    ).toBeUndefined();
    expect(
      clientOrigin(request('192.168.0.1', headers, true), mtls.c, mtls.trusted).identity,
    ).toBeUndefined();
    const tls = setup((c) => {
      Object.assign(c.proxy, mtls.c.proxy);
      c.transport.mode = 'tls';
    });
    expect(
      clientOrigin(request('10.0.0.5', headers, true), tls.c, tls.trusted).identity,
    ).toBeUndefined();
  });
});
