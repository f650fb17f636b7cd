// The seed's simple function: greets whoever is named in the JSON body.
const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  final name = body['name'] ?? 'world';
  print('greeting $name');
  return {'message': 'Hello, $name!'};
}
