Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  return {'ok': true};
}
