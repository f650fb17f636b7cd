import 'dart:convert';
import 'dart:io';

const function = 'function';

@function
void main() {
  final input = jsonDecode(Platform.environment['FUNCTION_INPUT'] ?? '{}');
  print(jsonEncode({'hello': input['body']['name']}));
}
