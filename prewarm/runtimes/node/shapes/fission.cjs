// Shape `fission`: Node functions written for Fission's Node environment.
//
// Contract. `module.exports = async (context) => …` or `(context, callback) => …`:
// - `context.request`: the request, Express-like (`method`, `url`, `headers`, `query`, `body`
//   parsed by content type, `get(name)`); `context.response` is not written to: the answer is
//   what the function gives.
// - The answer is `{ status, body, headers }` (returned, or `callback(status, body, headers)`);
//   an object or list `body` is sent as JSON, anything else as text.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, envelope } = require('./request.cjs');

function parsed(contentType, raw) {
  const type = String(contentType || '').split(';')[0].trim().toLowerCase();
  if (raw.length === 0) return {};
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

function answer(status, body, headers) {
  const pairs = Object.entries(headers || {});
  const hasType = pairs.some(([name]) => name.toLowerCase() === 'content-type');
  let bytes;
  if (Buffer.isBuffer(body)) {
    bytes = body;
  } else if (body !== null && typeof body === 'object') {
    bytes = Buffer.from(JSON.stringify(body));
    if (!hasType) pairs.push(['content-type', 'application/json; charset=utf-8']);
  } else {
    bytes = Buffer.from(body === undefined || body === null ? '' : String(body));
    if (!hasType) pairs.push(['content-type', 'text/html; charset=utf-8']);
  }
  return envelope(Number(status) || 200, pairs, bytes);
}

function invoke(handler, frame) {
  const request = frame.event || {};
  const headers = nodeHeaders(request);
  const url = `${request.path || '/'}${request.raw_query ? `?${request.raw_query}` : ''}`;
  const req = {
    method: request.method,
    url,
    originalUrl: url,
    path: request.path || '/',
    headers,
    query: queryObject(request),
    body: parsed(headers['content-type'], bodyBuffer(request)),
    get: (name) => headers[String(name).toLowerCase()],
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (status, body, headers) => {
      if (settled) return;
      settled = true;
      resolve(answer(status, body, headers));
    };
    Promise.resolve()
      .then(() => handler({ request: req, response: {} }, callback))
      .then((result) => {
        if (settled || (result === undefined && handler.length >= 2)) return;
        settled = true;
        const { status, body, headers } = result && typeof result === 'object' ? result : { status: 200, body: result };
        resolve(answer(status, body, headers));
      }, (error) => {
        if (!settled) {
          settled = true;
          reject(error);
        }
      });
  });
}

module.exports = { invoke };
