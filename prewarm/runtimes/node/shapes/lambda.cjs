// Shape `lambda` and `lambda-v1`: handlers written for AWS Lambda.
//
// Contract. The handler is called as `handler(event, context)` or, when it declares a third
// parameter, `handler(event, context, callback)`, async or not, from CommonJS or ESM:
// - `event` is what Lambda would pass for this HTTP request: behind a function URL or an HTTP API
//   (payload format 2.0, shape `lambda`): `rawPath` (the path below the function's URL: `/fn/NAME/a/b`
//   gives `/a/b`), `rawQueryString`, `queryStringParameters` (repeats joined by commas), `cookies`,
//   `headers` (lower-case, repeats joined by commas), `requestContext.http`, `body`,
//   `isBase64Encoded`; behind an API Gateway REST API (payload 1.0, shape `lambda-v1`, also what
//   Netlify's classic functions get): `httpMethod`, `path`, `headers` in the case they were sent,
//   `multiValueHeaders`, `queryStringParameters`, `multiValueQueryStringParameters`,
//   `pathParameters.proxy`, `requestContext`, `body`, `isBase64Encoded`.
// - `context` is a Lambda context: `awsRequestId` (the invocation id), `functionName`,
//   `functionVersion`, `memoryLimitInMB`, `invokedFunctionArn`, `getRemainingTimeInMillis()`,
//   `callbackWaitsForEmptyEventLoop`, and the legacy `done`/`succeed`/`fail`.
// - The call ends with the first of: the returned promise settling, `callback(error, result)`,
//   `context.done/succeed/fail`, or, for a handler that takes no callback, its return.
// - The result is the answer: `{statusCode, headers, multiValueHeaders, cookies, body,
//   isBase64Encoded}` as Lambda reads it; a string is the body of a 200 JSON answer and any other
//   value is sent as JSON with 200, as a function URL does. A thrown error or `callback(error)` is
//   the call's error (500, logged with its stack).
'use strict';

const { requestHeaderPairs, queryPairs } = require('./request.cjs');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// `05/Dec/2026:00:20:16 +0000`, API Gateway's request time.
function requestTime(date) {
  const two = (n) => String(n).padStart(2, '0');
  return `${two(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`;
}

function bodyFields(request) {
  const present = request.body !== null && request.body !== undefined;
  return { body: present ? request.body : undefined, isBase64Encoded: Boolean(request.body_is_base64) };
}

// Payload format 2.0: a function URL's or an HTTP API's event.
function eventV2(request, frame, now) {
  const headers = {};
  const cookies = [];
  for (const [name, value] of requestHeaderPairs(request)) {
    const lower = name.toLowerCase();
    if (lower === 'cookie') {
      cookies.push(...value.split(/;\s*/).filter(Boolean));
      continue;
    }
    headers[lower] = lower in headers ? `${headers[lower]},${value}` : value;
  }
  const query = {};
  for (const [key, value] of queryPairs(request)) query[key] = key in query ? `${query[key]},${value}` : value;
  const host = headers.host || 'localhost';
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: request.path || '/',
    rawQueryString: request.raw_query || '',
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: process.env.FUNCTION_NAME || '',
      domainName: host,
      domainPrefix: host.split('.')[0],
      http: {
        method: request.method,
        path: request.path || '/',
        protocol: 'HTTP/1.1',
        sourceIp: request.source_ip || '',
        userAgent: headers['user-agent'] || '',
      },
      requestId: frame.id,
      routeKey: '$default',
      stage: '$default',
      time: requestTime(now),
      timeEpoch: now.getTime(),
    },
  };
  if (cookies.length) event.cookies = cookies;
  if (Object.keys(query).length) event.queryStringParameters = query;
  const { body, isBase64Encoded } = bodyFields(request);
  if (body !== undefined) event.body = body;
  event.isBase64Encoded = isBase64Encoded;
  return event;
}

// Payload format 1.0: an API Gateway REST API's proxy event.
function eventV1(request, frame, now) {
  const headers = {};
  const multiValueHeaders = {};
  for (const [name, value] of requestHeaderPairs(request)) {
    headers[name] = value;
    (multiValueHeaders[name] = multiValueHeaders[name] || []).push(value);
  }
  const query = {};
  const multiQuery = {};
  for (const [key, value] of queryPairs(request)) {
    query[key] = value;
    (multiQuery[key] = multiQuery[key] || []).push(value);
  }
  const path = request.path || '/';
  const hasQuery = Object.keys(query).length > 0;
  const lower = (wanted) => Object.keys(headers).find((name) => name.toLowerCase() === wanted);
  const userAgent = lower('user-agent');
  const host = lower('host');
  const { body, isBase64Encoded } = bodyFields(request);
  return {
    version: '1.0',
    resource: '/{proxy+}',
    path,
    httpMethod: request.method,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multiQuery : null,
    requestContext: {
      accountId: 'anonymous',
      apiId: process.env.FUNCTION_NAME || '',
      domainName: host ? headers[host] : 'localhost',
      httpMethod: request.method,
      path,
      protocol: 'HTTP/1.1',
      requestId: frame.id,
      requestTime: requestTime(now),
      requestTimeEpoch: now.getTime(),
      resourcePath: '/{proxy+}',
      stage: '$default',
      identity: { sourceIp: request.source_ip || '', userAgent: userAgent ? headers[userAgent] : '' },
    },
    pathParameters: path === '/' ? null : { proxy: path.slice(1) },
    stageVariables: null,
    body: body === undefined ? null : body,
    isBase64Encoded,
  };
}

function lambdaContext(frame, receivedAt, finish) {
  const name = process.env.FUNCTION_NAME || 'function';
  const deadline = receivedAt + Number(frame.deadline_ms || 0);
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: process.env.FUNCTION_VERSION || '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${name}`,
    memoryLimitInMB: String(process.env.FUNCTION_MAX_MEMORY_MB || ''),
    awsRequestId: frame.id,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: `containerpub/${process.pid}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: (error, result) => finish(error, result),
    succeed: (result) => finish(null, result),
    fail: (error) => finish(error || new Error('failed')),
  };
}

// What Lambda does with a result that is not a `{statusCode}` envelope.
function asAnswer(result) {
  if (result === undefined) return null;
  if (typeof result === 'string') return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: result };
  return result;
}

// A callback's error, as Lambda reports it: an Error as is, anything else as its text.
function asError(error) {
  if (error instanceof Error) return error;
  const wrapped = new Error(typeof error === 'string' ? error : JSON.stringify(error));
  wrapped.name = 'Error';
  return wrapped;
}

function invoke(handler, frame, version) {
  const receivedAt = Date.now();
  const request = frame.event || {};
  const now = new Date(receivedAt);
  const event = version === 'lambda-v1' ? eventV1(request, frame, now) : eventV2(request, frame, now);
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error, result) => {
      if (settled) return;
      settled = true;
      if (error !== null && error !== undefined) reject(asError(error));
      else resolve(asAnswer(result));
    };
    const context = lambdaContext(frame, receivedAt, finish);
    let returned;
    try {
      returned = handler(event, context, finish);
    } catch (error) {
      finish(error);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => finish(null, result), (error) => finish(error === undefined ? new Error('rejected') : error));
    } else if (handler.length < 3) {
      // No callback to wait for: what it returned is the answer (`context.succeed` may have come first).
      finish(null, returned);
    }
  });
}

module.exports = { invoke, eventV1, eventV2 };
