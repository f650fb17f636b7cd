import 'dart:convert';
import 'dart:io';

const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  final config = jsonDecode(await File('data/config.json').readAsString());
  final client = HttpClient();
  final request = await client.getUrl(Uri.parse(config['url'] as String));
  final response = await request.close();
  return {'status': response.statusCode, 'local': Directory('data/cache').path};
}
