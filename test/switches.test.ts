// A backend's switches from its FCGI_GET_VALUES answer (pure logic): what a lying or broken
// app says cannot give it unbounded or fractional slots, nor more requests on one
// multiplexed connection than a 16-bit request id tells apart.
import { describe, expect, it } from 'vitest';
import { decideSwitches, type SwitchSettings } from '../src/pool/switches.js';

const auto: SwitchSettings = { multithreaded: 'auto', multiplexed: 'auto', maxRequestsPerBackend: undefined };
const said = (pairs: Record<string, string>) => new Map(Object.entries(pairs));

describe('decideSwitches', () => {
  it('an honest answer: FCGI_MAX_REQS gives the slots', () => {
    expect(decideSwitches(auto, said({ FCGI_MAX_CONNS: '4', FCGI_MAX_REQS: '4', FCGI_MPXS_CONNS: '0' })))
      .toMatchObject({ multithreaded: true, multiplexed: false, slots: 4, source: 'GET_VALUES' });
  });

  for (const junk of ['Infinity', '1.5', '0x4', '1e9', '-5', ' 4', '4 ', '', '12345678901']) {
    it(`FCGI_MAX_REQS and FCGI_MAX_CONNS ${JSON.stringify(junk)} count as not said: one slot, as a single-threaded app`, () => {
      const s = decideSwitches(auto, said({ FCGI_MAX_CONNS: junk, FCGI_MAX_REQS: junk, FCGI_MPXS_CONNS: '0' }));
      expect(s).toMatchObject({ multithreaded: false, slots: 1 });
      expect(Number.isInteger(s.slots)).toBe(true);
    });
  }

  it('FCGI_MAX_CONNS alone over 1: multithreaded with the fallback of 8 slots, FCGI_MAX_REQS junk ignored', () => {
    expect(decideSwitches(auto, said({ FCGI_MAX_CONNS: '16', FCGI_MAX_REQS: 'Infinity' }))).toMatchObject({ multithreaded: true, slots: 8 });
  });

  it('a multiplexed app claiming more than 65535 requests gets 65535: the ids of one connection', () => {
    expect(decideSwitches(auto, said({ FCGI_MAX_CONNS: '1', FCGI_MAX_REQS: '100000000', FCGI_MPXS_CONNS: '1' })))
      .toMatchObject({ multithreaded: true, multiplexed: true, slots: 65535 });
    expect(decideSwitches({ multithreaded: true, multiplexed: true, maxRequestsPerBackend: 100_000 }, null))
      .toMatchObject({ multiplexed: true, slots: 65535 });
  });

  it('not multiplexed, many slots stay many: each request has a connection of its own', () => {
    expect(decideSwitches({ multithreaded: true, multiplexed: false, maxRequestsPerBackend: 100_000 }, null)).toMatchObject({ slots: 100_000 });
  });
});
