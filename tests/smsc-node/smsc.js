// An SMSC built on the `smpp` npm package (an implementation independent of
// rusmpp) for postern's SMPP tests: binds one system id and password,
// accepts submit_sm, reassembles concatenated parts, sends a delivery
// receipt per message, and prints one JSON line per event on stdout.
'use strict';
const smpp = require('smpp');

const systemId = process.env.SMSC_SYSTEM_ID;
const password = process.env.SMSC_PASSWORD;
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');

let nextId = 1;
const pending = new Map();

function received(session, pdu, id) {
  const sm = pdu.short_message || {};
  const text = typeof sm === 'string' ? sm : String(sm.message);
  const concat = (sm.udh || []).find((u) => u[0] === 0x00 && u[1] === 0x03);
  if (!concat) {
    return { text, parts: 1, first: id };
  }
  const [ref, total, seq] = [concat[2], concat[3], concat[4]];
  const key = `${pdu.destination_addr}/${ref}`;
  const got = pending.get(key) || [];
  got.push({ seq, text, id });
  if (got.length < total) {
    pending.set(key, got);
    return null;
  }
  pending.delete(key);
  got.sort((a, b) => a.seq - b.seq);
  return { text: got.map((p) => p.text).join(''), parts: total, first: got[0].id };
}

const server = smpp.createServer({}, (session) => {
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== systemId || pdu.password !== password) {
      say({ event: 'bind_refused' });
      session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
      session.close();
      return;
    }
    say({ event: 'bound', interface_version: pdu.interface_version });
    session.send(pdu.response({ system_id: 'node-smsc' }));
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    say({ event: 'unbind' });
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    const id = `n${nextId++}`;
    session.send(pdu.response({ message_id: id }));
    const msg = received(session, pdu, id);
    if (!msg) {
      return;
    }
    say({
      event: 'message',
      to: pdu.destination_addr,
      data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery,
      text: msg.text,
      parts: msg.parts,
      message_id: msg.first,
    });
    session.deliver_sm({
      source_addr: pdu.destination_addr,
      destination_addr: pdu.source_addr,
      esm_class: 0x04,
      short_message: `id:${msg.first} sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:DELIVRD err:000 text:`,
    }, (resp) => say({ event: 'receipt_answered', status: resp.command_status }));
  });
  session.on('error', (e) => say({ event: 'error', message: String(e) }));
});

server.listen(0, '127.0.0.1', () => say({ event: 'listening', port: server.address().port }));
