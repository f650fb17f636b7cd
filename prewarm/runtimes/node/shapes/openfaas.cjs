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

const { bodyBuffer, nodeHeaders, queryObject, parseBody, answerBody, envelope } = require('./request.cjs');

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
  return envelope(context.status(), pairs, answerBody(value, pairs, 'text/html; charset=utf-8'));
}

function invoke(handler, frame) {
  const request = frame.event || {};
  const headers = nodeHeaders(request);
  const event = {
    body: parseBody(headers['content-type'], bodyBuffer(request), { empty: {}, forms: false, binary: 'octet-stream' }),
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
