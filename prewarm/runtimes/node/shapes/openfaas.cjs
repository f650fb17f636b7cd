// Shape `openfaas`: handlers written for OpenFaaS's Node templates (node18, node20, node22).
//
// Contract. `handle(event, context)`, async or not:
// - `event`: `body` (parsed JSON for a JSON content type, text for `text/*`, a Buffer for
//   `application/octet-stream`, the text otherwise, `{}` when empty), `headers` (lower-case, as
//   Node folds them), `method`, `query` (a repeated key gives a list), `path` (below the
//   function's URL).
// - `context`: `status(code)` and `headers(object)` set the answer's status and headers and return
//   the context (called without an argument they read them back); `succeed(value)` answers with
//   the value, `fail(error)` with a 500 carrying its text.
// - A handler that returns without calling `succeed` answers with what it returned. An object or
//   a list is sent as JSON; anything else as text (`text/html`, as the template's Express does),
//   unless the handler set a content type.
'use strict';

const { bodyBuffer, nodeHeaders, queryObject, envelope } = require('./request.cjs');

function eventBody(contentType, raw) {
  const type = String(contentType || '').split(';')[0].trim().toLowerCase();
  if (raw.length === 0) return {};
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch (_) {
      return raw.toString('utf8');
    }
  }
  if (type === 'application/octet-stream') return raw;
  return raw.toString('utf8');
}

class FunctionContext {
  constructor(finish) {
    this.statusCode = 200;
    this.headerValues = {};
    this.finish = finish;
    this.cbCalled = 0;
  }
  status(code) {
    if (code === undefined) return this.statusCode;
    this.statusCode = code;
    return this;
  }
  headers(values) {
    if (values === undefined) return this.headerValues;
    this.headerValues = values;
    return this;
  }
  succeed(value) {
    this.cbCalled += 1;
    this.finish(null, value);
  }
  fail(error) {
    this.cbCalled += 1;
    this.finish(error === undefined ? new Error('failed') : error);
  }
}

function answer(context, value) {
  const pairs = Object.entries(context.headers() || {});
  const hasType = pairs.some(([name]) => name.toLowerCase() === 'content-type');
  let body;
  if (Buffer.isBuffer(value)) {
    body = value;
  } else if (value !== null && typeof value === 'object') {
    body = Buffer.from(JSON.stringify(value));
    if (!hasType) pairs.push(['content-type', 'application/json; charset=utf-8']);
  } else {
    body = Buffer.from(value === undefined || value === null ? '' : String(value));
    if (!hasType && body.length) pairs.push(['content-type', 'text/html; charset=utf-8']);
  }
  return envelope(context.status(), pairs, body);
}

function invoke(handler, frame) {
  const request = frame.event || {};
  const headers = nodeHeaders(request);
  const event = {
    body: eventBody(headers['content-type'], bodyBuffer(request)),
    headers,
    method: request.method,
    query: queryObject(request),
    path: request.path || '/',
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const context = new FunctionContext((error, value) => {
      if (settled) return;
      settled = true;
      if (error !== null && error !== undefined) {
        const text = error instanceof Error ? error.toString() : String(error);
        resolve(envelope(500, [['content-type', 'text/plain; charset=utf-8']], Buffer.from(text)));
      } else {
        resolve(answer(context, value));
      }
    });
    Promise.resolve()
      .then(() => handler(event, context))
      .then((value) => {
        if (!context.cbCalled) context.succeed(value);
      }, (error) => {
        if (!settled) {
          settled = true;
          reject(error);
        }
      });
  });
}

module.exports = { invoke };
