// Shape `appwrite`: Node functions written for Appwrite.
//
// Contract. `export default async ({ req, res, log, error }) => …` (also `module.exports`), one
// argument, the context:
// - `req`: `method`, `path` (below the function's URL), `query` (an object), `queryString`,
//   `headers` (lower-case), `host`, `scheme`, `port`, `url`, `bodyText`, `bodyJson` (parsed; it
//   throws on text that is not JSON), `bodyBinary` (a Buffer), `body` (by content type).
// - `res`: `text(body, status, headers)`, `json(value, status, headers)`, `binary(bytes, status,
//   headers)`, `empty()`, `redirect(url, status = 301, headers)`, `send(body, status, headers)`;
//   each makes the answer the function returns.
// - `log(…)` and `error(…)`: lines of the function's log (stdout and stderr).
// A function that returns something other than one of `res`'s answers gets a 500 that says so,
// as Appwrite answers.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, envelope } = require('./request.cjs');

const ANSWER = Symbol('appwrite answer');

function answer(body, status, headers, type) {
  const pairs = Object.entries(headers || {});
  if (type && !pairs.some(([name]) => name.toLowerCase() === 'content-type')) pairs.push(['content-type', type]);
  return { [ANSWER]: true, status: status || 200, pairs, body };
}

function context(frame) {
  const request = frame.event || {};
  const headers = nodeHeaders(request);
  const raw = bodyBuffer(request);
  const host = headers.host || 'localhost';
  const scheme = (headers['x-forwarded-proto'] || 'http').split(',')[0].trim();
  const queryString = request.raw_query || '';
  const req = {
    method: request.method,
    path: request.path || '/',
    query: queryObject(request),
    queryString,
    headers,
    host: host.split(':')[0],
    scheme,
    port: Number(host.split(':')[1] || (scheme === 'https' ? 443 : 80)),
    url: `${scheme}://${host}${request.path || '/'}${queryString ? `?${queryString}` : ''}`,
    bodyText: raw.toString('utf8'),
    bodyBinary: raw,
    get bodyJson() {
      return JSON.parse(raw.length ? raw.toString('utf8') : '{}');
    },
    get bodyRaw() {
      return raw.toString('utf8');
    },
    get body() {
      const type = String(headers['content-type'] || '');
      if (type.startsWith('application/json')) {
        try {
          return JSON.parse(raw.toString('utf8') || '{}');
        } catch (_) {
          return raw.toString('utf8');
        }
      }
      return raw.toString('utf8');
    },
  };
  const res = {
    text: (body, status, headers) => answer(Buffer.from(String(body)), status, headers, 'text/plain; charset=utf-8'),
    send: (body, status, headers) => answer(Buffer.from(String(body)), status, headers, 'text/plain; charset=utf-8'),
    json: (value, status, headers) => answer(Buffer.from(JSON.stringify(value)), status, headers, 'application/json'),
    binary: (bytes, status, headers) => answer(Buffer.from(bytes), status, headers, 'application/octet-stream'),
    empty: () => answer(Buffer.alloc(0), 204, {}),
    redirect: (url, status, headers) => answer(Buffer.alloc(0), status || 301, { ...(headers || {}), location: url }),
  };
  return { req, res, log: (...args) => console.log(...args), error: (...args) => console.error(...args) };
}

async function invoke(handler, frame) {
  const result = await handler(context(frame));
  if (!result || !result[ANSWER]) {
    throw new TypeError('the function returned no answer: return res.text(…), res.json(…), res.binary(…), res.empty() or res.redirect(…), as Appwrite expects');
  }
  return envelope(result.status, result.pairs, result.body);
}

module.exports = { invoke };
