// Which calling convention a Node handler was written for, when the deploy did not say.
//
// Not a shape: the rules that pick one, from what loading found and how the code reads its
// arguments. Each rule needs evidence only that convention leaves; without any, the handler
// keeps this platform's own shape (`body`). Returns `{shape, reason}`, the reason in words the
// deploy's answer shows.
'use strict';

const { isExpressLike } = require('./node_http.cjs');

// The declared parameter names of a function, from its source.
function parameterNames(fn) {
  const text = Function.prototype.toString.call(fn).replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
  const arrow = text.match(/^(?:async\s*)?([A-Za-z_$][\w$]*)\s*=>/);
  if (arrow) return [arrow[1]];
  const list = text.match(/^[^(]*\(([^)]*)\)/);
  if (!list) return [];
  return list[1].split(',').map((part) => part.trim().replace(/^\.\.\./, '').split(/[\s=:]/)[0]).filter(Boolean);
}

const escape = (text) => text.replace(/[$]/g, '\\$');

// `NAME.field` or `NAME['field']` / `NAME?.field` in the source, for one of `fields`.
function readsField(source, name, fields) {
  if (!name || !/^[A-Za-z_$][\w$]*$/.test(name)) return null;
  const pattern = new RegExp(`\\b${escape(name)}\\s*(?:\\?\\.|\\.|\\[\\s*['"\`])\\s*(${fields.join('|')})\\b`);
  const found = source.match(pattern);
  return found ? found[0].replace(/\s+/g, '') : null;
}

const LAMBDA_V1_FIELDS = ['httpMethod', 'multiValueHeaders', 'multiValueQueryStringParameters', 'resource'];
const LAMBDA_FIELDS = ['queryStringParameters', 'requestContext', 'rawPath', 'rawQueryString', 'pathParameters',
  'isBase64Encoded', 'cookies', 'stageVariables', 'routeKey'];
const EVENT_FIELDS = ['body', 'headers'];

function detect(found, source, entryFile) {
  const { target, how } = found;
  if (how === 'fetch-object') return { shape: 'fetch', reason: '`export default { fetch }`: a Workers-style handler of a Web Request' };
  if (how === 'method-exports') return { shape: 'fetch', reason: `it exports ${found.methods.join(', ')}: route handlers of a Web Request` };
  if (how === 'registered') return { shape: 'node-http', reason: 'registered with functions.http(): Google Cloud Functions\' (req, res)' };
  if (how === 'app-object') return { shape: 'node-http', reason: 'a Koa app: served as (req, res) through app.callback()' };
  if (typeof target !== 'function') return { shape: 'body', reason: 'no other platform\'s convention recognized' };
  if (isExpressLike(target)) {
    return { shape: 'node-http', reason: 'an Express or Connect app: served as (req, res), its routes see the path below the function\'s URL' };
  }
  const params = parameterNames(target);
  const [first, second, third] = params;
  const text = Function.prototype.toString.call(target);
  if (/^(?:async\s*)?(?:function\b[^(]*)?\(\s*\{[^}]*\breq\b[^}]*\bres\b[^}]*\}/.test(text) ||
      (first === 'context' && /\bcontext\s*\.\s*res\s*\.\s*(json|text|send|empty|binary|redirect)\s*\(/.test(source))) {
    return { shape: 'appwrite', reason: 'it takes ({ req, res, … }) and answers with res.…(): an Appwrite function' };
  }
  if (first === 'context' && second === 'body') {
    return { shape: 'knative', reason: 'it takes (context, body): a Knative function (func)' };
  }
  if (first === 'context' && params.length <= 2 && (/\bcontext\s*\.\s*request\b/.test(source) || /\bstatus\s*:\s*\d{3}\b/.test(source) || (second === 'callback' && /\bcallback\s*\(\s*\d{3}/.test(source)))) {
    return { shape: 'fission', reason: 'it takes (context) and answers { status, body }: a Fission function' };
  }
  if ((target.name === 'main' || found.topLevel === 'main') && params.length === 1 && /^(params|args|parameters|input)$/.test(first || '')) {
    return { shape: 'openwhisk', reason: `\`main(${first})\`: an OpenWhisk action (query and body as parameters)` };
  }
  if (/^(req|request)$/i.test(first || '') && /^(res|response|reply)$/i.test(second || '')) {
    return { shape: 'node-http', reason: `it takes (${first}, ${second}): Node's request and response` };
  }
  if (third && /^(callback|cb|done)$/i.test(third)) {
    const version = readsField(source, first, LAMBDA_V1_FIELDS) ? 'lambda-v1' : 'lambda';
    return { shape: version, reason: `it takes (${params.join(', ')}): a Lambda handler with a callback` };
  }
  if (/require\(\s*['"]serverless-http['"]\s*\)|from\s+['"]serverless-http['"]/.test(source)) {
    return { shape: 'lambda', reason: 'it wraps an app with serverless-http, for Lambda\'s HTTP events' };
  }
  if (second && new RegExp(`\\b${escape(second)}\\s*\\.\\s*status\\s*\\(`).test(source) &&
      /\.\s*(succeed|fail)\s*\(/.test(source)) {
    return { shape: 'openfaas', reason: `it answers through ${second}.status(…).succeed(…): OpenFaaS's Node templates` };
  }
  const v1 = readsField(source, first, LAMBDA_V1_FIELDS);
  if (v1) return { shape: 'lambda-v1', reason: `it reads ${v1}: an API Gateway REST (payload 1.0) event` };
  const v2 = readsField(source, first, LAMBDA_FIELDS);
  if (v2) return { shape: 'lambda', reason: `it reads ${v2}: a Lambda HTTP event (payload 2.0)` };
  const netlify = /(^|\/)netlify\/functions\//.test(entryFile);
  if (found.isDefault && /\bnew\s+Response\s*\(|\bResponse\s*\.\s*(json|redirect)\s*\(/.test(source)) {
    return { shape: 'fetch', reason: 'its default export answers with a Web Response (Netlify\'s functions)' };
  }
  if (netlify && !found.isDefault) {
    return { shape: 'lambda-v1', reason: 'a handler under netlify/functions: Netlify\'s classic functions take a Lambda 1.0 event' };
  }
  const event = readsField(source, first, EVENT_FIELDS);
  if (event && /^(event|evt|e|ev|req|request)$/i.test(first)) {
    return { shape: 'lambda', reason: `it reads ${event}: a Lambda HTTP event (payload 2.0)` };
  }
  if (/^(event|evt)$/i.test(first || '') && /^(context|ctx)$/i.test(second || '') && /lambda/i.test(entryFile)) {
    return { shape: 'lambda', reason: `it takes (${first}, ${second}) in ${entryFile}: a Lambda handler` };
  }
  return { shape: 'body', reason: 'no other platform\'s convention recognized: it gets the parsed body' };
}

module.exports = { detect, parameterNames };
