// Blocking HTTP/1.1 over wasi:http/outgoing-handler for a plugin export.
// The plugin world's exports are synchronous, so this blocks on each
// pollable instead of awaiting fetch(). Children are disposed before
// their parents (stream, then body), as the component model requires.
import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingBody, OutgoingRequest } from 'wasi:http/types@0.2.12';

const CHUNK = 4096;
const MAX_BODY = 1 << 20;
const dispose = Symbol.dispose || Symbol.for('dispose');

export class HttpError extends Error {}

// A thrown component error is either the error value or wraps it.
function payload(e) {
  return e && typeof e === 'object' && 'payload' in e ? e.payload : e;
}

function errorName(e) {
  const p = payload(e);
  return p && typeof p === 'object' && 'tag' in p ? p.tag : String(p);
}

function request(method, url, headers) {
  const u = new URL(url);
  const enc = new TextEncoder();
  const fields = Fields.fromList(headers.map(([k, v]) => [k.toLowerCase(), enc.encode(v)]));
  const req = new OutgoingRequest(fields);
  req.setMethod({ tag: method.toLowerCase() });
  req.setScheme({ tag: u.protocol === 'https:' ? 'HTTPS' : 'HTTP' });
  req.setAuthority(u.host);
  req.setPathWithQuery(u.pathname + u.search);
  return req;
}

function writeBody(body, data) {
  const out = body.write();
  for (let i = 0; i < data.length; i += CHUNK) {
    out.blockingWriteAndFlush(data.subarray(i, i + CHUNK));
  }
  out[dispose]();
  OutgoingBody.finish(body, undefined);
}

function readBody(resp) {
  const incoming = resp.consume();
  const stream = incoming.stream();
  const parts = [];
  let size = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(16384n);
    } catch (e) {
      if (errorName(e) === 'closed') break;
      throw new HttpError('reading the response failed');
    }
    parts.push(chunk);
    size += chunk.length;
    if (size >= MAX_BODY) break;
  }
  stream[dispose]();
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder().decode(all);
}

// Sends one request; returns { status, body } (body as text) or throws HttpError.
export function send(method, url, headers, text) {
  const data = new TextEncoder().encode(text || '');
  const all = data.length ? [...headers, ['content-length', String(data.length)]] : headers;
  const req = request(method, url, all);
  const body = req.body();
  let future;
  try {
    future = handle(req, undefined);
  } catch (e) {
    throw new HttpError(`HTTP request failed: ${errorName(e)}`);
  }
  writeBody(body, data);
  let answer;
  while ((answer = future.get()) === undefined) {
    const ready = future.subscribe();
    ready.block();
    ready[dispose]();
  }
  if (answer.tag === 'err') throw new HttpError('HTTP request failed');
  if (answer.val.tag === 'err') {
    throw new HttpError(`HTTP request failed: ${errorName(answer.val.val)}`);
  }
  const resp = answer.val.val;
  const status = resp.status();
  return { status, body: readBody(resp) };
}
