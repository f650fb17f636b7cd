import 'dart:io';

const function = 'function';

@function
int handler(Map<String, dynamic> body) {
  {
    var exit = 0;
    print(exit);
  }
  exit(1);
}

void other(int exit) {}

void more() {
  exit(2);
}
