// Test fixture (JavaScript): config `mode` picks the behaviour.
//   ok     -> logs one line, provider-id "ok"
//   loop   -> spins forever (the CPU budget must stop it)
//   memory -> keeps allocating 1 MiB arrays (the memory limit must stop it)
import { get } from 'postern:plugin/config@0.1.0';
import { log } from 'postern:plugin/log@0.1.0';

export function describe() {
  return { name: 'misbehave-js', version: '0.1.0', description: 'test fixture', configKeys: [] };
}

export function validateRecipient(sendTo) {
  if (sendTo === 'bad') throw 'bad recipient';
}

export function deliver(message) {
  const mode = get('mode') ?? '';
  if (mode === 'ok') {
    log('info', `ok for ${message.username}`);
    return { providerId: 'ok' };
  }
  if (mode === 'loop') {
    let n = 0;
    for (;;) n = (n + 1) % 1000003;
  }
  if (mode === 'memory') {
    const keep = [];
    for (;;) keep.push(new Uint8Array(1 << 20).fill(1));
  }
  throw { tag: 'misconfigured', val: `unknown mode ${mode}` };
}
