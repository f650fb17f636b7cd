// Shape `fission`: Node functions written for Fission's Node environment.
//
// Contract. `module.exports = async (context) => …` or `(context, callback) => …`:
// - `context.request`: the request, Express-like (`method`, `url`, `headers`, `query`, `body`
//   parsed by content type, `get(name)`); `context.response` is not written to: the answer is
//   what the function gives.
// - The answer is `{ status, body, headers }` (returned, or `callback(status, body, headers)`);
//   an object or list `body` is sent as JSON, anything else as text.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, parseBody, answerBody, envelope } = require('./request.cjs');

function answer(status, body, headers) {
  const pairs = Object.entries(headers || {});
  return envelope(Number(status) || 200, pairs, answerBody(body, pairs, 'text/html; charset=utf-8'));
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
    body: parseBody(headers['content-type'], bodyBuffer(request), { empty: {} }),
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
