import 'dart:convert';

const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  final name = body['name'] ?? 'world';
  return {'message': 'Hello, $name!', 'echo': jsonEncode(body)};
}
