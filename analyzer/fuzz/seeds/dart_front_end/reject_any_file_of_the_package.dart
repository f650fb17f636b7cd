const function = 'function';

@function
int handler(Map<String, dynamic> body) => 1;
