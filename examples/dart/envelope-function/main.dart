// An envelope function: answers with its own status, headers and body (the Lambda envelope).
// `request` carries method, path, query, headers and the raw body.
import 'dart:convert';

const function = 'function';

@function
Future<Map<String, dynamic>> handler(
    Map<String, dynamic> body, Map<String, dynamic> request) async {
  if (request['method'] == 'GET') {
    final query = request['query'] as Map<String, dynamic>;
    final who = query['name'] ?? 'world';
    return {
      'statusCode': 200,
      'headers': {'content-type': 'text/plain; charset=utf-8'},
      'body': 'Hello, $who! You asked for ${request['path']}\n',
    };
  }
  return {
    'statusCode': 201,
    'headers': {'x-handled-by': 'dart'},
    'body': jsonEncode({'received': body}),
  };
}
