// Shape `knative`: Node functions written for Knative's `func` (faas-js-runtime).
//
// Contract. `handle(context, body)`, async or not:
// - `context`: `method`, `query` (a repeated key gives a list), `headers` (lower-case), `body`,
//   `httpVersion`, `log` (`info`, `warn`, `error`, `debug`: to the function's log).
// - `body`: the request body, parsed as JSON for a JSON content type, text otherwise.
// - The result: an object with `body` (and optional `statusCode`, `headers`) is the answer;
//   another object or a list is sent as JSON; a string as text; nothing answers 204.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, envelope } = require('./request.cjs');

function parsed(contentType, raw) {
  const type = String(contentType || '').split(';')[0].trim().toLowerCase();
  if (raw.length === 0) return undefined;
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch (_) {
      return raw.toString('utf8');
    }
  }
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  return raw.toString('utf8');
}

function bodyOf(value, pairs) {
  const hasType = pairs.some(([name]) => name.toLowerCase() === 'content-type');
  if (Buffer.isBuffer(value)) return value;
  if (value !== null && typeof value === 'object') {
    if (!hasType) pairs.push(['content-type', 'application/json; charset=utf-8']);
    return Buffer.from(JSON.stringify(value));
  }
  if (!hasType) pairs.push(['content-type', 'text/plain; charset=utf-8']);
  return Buffer.from(value === undefined || value === null ? '' : String(value));
}

async function invoke(handler, frame) {
  const request = frame.event || {};
  const headers = nodeHeaders(request);
  const body = parsed(headers['content-type'], bodyBuffer(request));
  const log = {
    info: (...args) => console.log(...args),
    debug: (...args) => console.log(...args),
    warn: (...args) => console.error(...args),
    error: (...args) => console.error(...args),
  };
  const context = { method: request.method, query: queryObject(request), headers, body, httpVersion: '1.1', log };
  const result = await handler(context, body);
  if (result === undefined || result === null) return envelope(204, [], Buffer.alloc(0));
  if (typeof result === 'object' && !Array.isArray(result) && ('body' in result || 'statusCode' in result)) {
    const pairs = Object.entries(result.headers || {});
    return envelope(result.statusCode || 200, pairs, bodyOf(result.body, pairs));
  }
  const pairs = [];
  return envelope(200, pairs, bodyOf(result, pairs));
}

module.exports = { invoke };
