// Shape `knative`: Node functions written for Knative's `func` (faas-js-runtime).
//
// Contract. `handle(context, body)`, async or not:
// - `context`: `method`, `query` (a repeated key gives a list), `headers` (lower-case), `body`,
//   `httpVersion`, `log` (`info`, `warn`, `error`, `debug`: to the function's log).
// - `body`: the request body, parsed as JSON for a JSON content type, a form as an object,
//   text otherwise.
// - The result: an object with `body` (and optional `statusCode`, `headers`) is the answer;
//   another object or a list is sent as JSON; a string as text; nothing answers 204.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, parseBody, answerBody, envelope } = require('./request.cjs');

async function invoke(handler, frame) {
  const request = frame.event || {};
  const headers = nodeHeaders(request);
  const body = parseBody(headers['content-type'], bodyBuffer(request), { empty: undefined });
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
    return envelope(result.statusCode || 200, pairs, answerBody(result.body, pairs, 'text/plain; charset=utf-8'));
  }
  const pairs = [];
  return envelope(200, pairs, answerBody(result, pairs, 'text/plain; charset=utf-8'));
}

module.exports = { invoke };
