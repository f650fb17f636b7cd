const function = 'function';

@function
int handler(Map<String, dynamic> body) {
  return 1
}
