// postern plugin in JavaScript: a generic JSON webhook with a bearer token.
//
// Request:
//
//   POST {url}
//   Content-Type: application/json
//   Authorization: Bearer {token}          (only when the secret is set)
//
//   {"to": send-to, "code", "text", "username", "ttlSeconds", "locale"}
//
// 2xx -> delivered (provider-id = the answer's JSON "id", if any);
// 401/403 -> misconfigured; 408/429/5xx -> unavailable; other -> rejected.
// Config: `url` (required), secret `token`. Send-to: 1 to 256 printable
// characters (the webhook's own notion of a recipient).
import { get } from 'postern:plugin/config@0.1.0';
import { log } from 'postern:plugin/log@0.1.0';
import { HttpError, send } from './http.js';

const RECIPIENT = /^[\x21-\x7e][\x20-\x7e]{0,255}$/;

function key(name, required, secret, description) {
  return { name, required, secret, description };
}

export function describe() {
  return {
    name: 'webhook-js',
    version: '0.1.0',
    description: 'POSTs the code as JSON to a webhook, with a bearer token (JavaScript)',
    configKeys: [
      key('url', true, false, 'Webhook URL (https://…)'),
      key('token', false, true, 'Bearer token sent in Authorization'),
    ],
  };
}

export function validateRecipient(sendTo) {
  if (!RECIPIENT.test(sendTo)) {
    throw 'expected 1 to 256 printable ASCII characters';
  }
}

function classify(status, body) {
  const detail = `HTTP ${status}: ${body.slice(0, 200)}`;
  if (status === 401 || status === 403) return { tag: 'misconfigured', val: `the webhook refused the token (${detail})` };
  if (status === 408 || status === 429 || status >= 500) return { tag: 'unavailable', val: detail };
  return { tag: 'rejected', val: detail };
}

function providerId(body) {
  try {
    const id = JSON.parse(body).id;
    return id === undefined || id === null ? undefined : String(id);
  } catch {
    return undefined;
  }
}

export function deliver(message) {
  if (!RECIPIENT.test(message.sendTo)) {
    throw { tag: 'invalid-recipient', val: 'expected 1 to 256 printable ASCII characters' };
  }
  const url = get('url');
  if (!url) throw { tag: 'misconfigured', val: 'config key `url` is required' };
  const headers = [['content-type', 'application/json']];
  const token = get('token');
  if (token) headers.push(['authorization', `Bearer ${token}`]);
  const payload = JSON.stringify({
    to: message.sendTo,
    code: message.code,
    text: message.text,
    username: message.username,
    ttlSeconds: message.ttlSeconds,
    locale: message.locale ?? null,
  });
  let answer;
  try {
    answer = send('POST', url, headers, payload);
  } catch (e) {
    if (e instanceof HttpError) throw { tag: 'unavailable', val: e.message };
    throw e;
  }
  log('info', `webhook answered HTTP ${answer.status}`);
  if (answer.status < 200 || answer.status > 299) throw classify(answer.status, answer.body);
  return { providerId: providerId(answer.body) };
}
