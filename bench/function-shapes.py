#!/usr/bin/env python3
"""A Node `module.exports = async (event) => …` function — the shape that answered 502 before
entries were settled by loading — against a script of the seed's oneshot contract, through a real
release `containerpub serve` (SQLite, the sandbox on as root): deploy time (the warm one includes
loading it to settle its mode), then call latency and spawns, in one run.

    cargo build --release -p gateway -p prewarm --bins && bench/function-shapes.py

Target: the warm shape is served by one worker process (1 spawn for every call) and answers at
least 10x faster at p50 than the script, which starts a process per call.
"""
import io, json, os, socket, statistics, subprocess, sys, tarfile, tempfile, time, urllib.error, urllib.request

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
SHAPES = {
    "warm": "module.exports = async (event) => ({ ok: true, event });\n",
    "script": "const input = JSON.parse(process.env.FUNCTION_INPUT || '{}');\n"
              "console.log(JSON.stringify({ ok: true, event: input.body }));\n",
}


def archive(source):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = source.encode()
        info = tarfile.TarInfo("index.js")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def main():
    work = tempfile.mkdtemp(prefix="function-shapes-")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, JWT_SECRET="b" * 40,
               CONTAINERPUB_WORKER_EXEC=os.path.join(TARGET, "release", "containerpub-worker-exec"))
    server = subprocess.Popen([os.path.join(TARGET, "release", "containerpub"), "serve", "--listen",
                               f"127.0.0.1:{port}", "--data-dir", os.path.join(work, "data")],
                              env=env, stdout=open(os.path.join(work, "server.log"), "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz")
                break
            except OSError:
                time.sleep(0.05)

        def post(path, body, token=None, content_type="application/json"):
            headers = {"content-type": content_type}
            if token:
                headers["authorization"] = "Bearer " + token
            request = urllib.request.Request(base + path, data=body, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()

        credentials = json.dumps({"email": "bench@example.com", "password": "correct horse battery"}).encode()
        post("/api/auth/register", credentials)
        token = json.loads(post("/api/auth/login", credentials)[1])["token"]
        failed = False
        latency = {}
        for name, source in SHAPES.items():
            boundary = "----shape"
            body = (f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
                    f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="f.tar.gz"\r\n'
                    "Content-Type: application/gzip\r\n\r\n").encode() + archive(source) + f"\r\n--{boundary}--\r\n".encode()
            started = time.perf_counter()
            status, answer = post("/api/functions/deploy", body, token, f"multipart/form-data; boundary={boundary}")
            took = (time.perf_counter() - started) * 1000
            answer = json.loads(answer)
            print(f"{name}: deploy {status} in {took:.0f} ms, mode {answer['entry']['mode']}: {answer['entry']['reason']}")
            times = []
            for _ in range(300 if name == "warm" else 60):
                started = time.perf_counter()
                status, _ = post(f"/fn/{name}", b'{"n":1}', token)
                times.append((time.perf_counter() - started) * 1000)
                failed |= status != 200
            times.sort()
            latency[name] = statistics.median(times)
            info_request = urllib.request.Request(base + f"/api/functions/{name}", headers={"authorization": "Bearer " + token})
            pool = json.loads(urllib.request.urlopen(info_request).read())["pool"]
            print(f"{name}: p50 {latency[name]:.2f} ms, p99 {times[int(len(times) * 0.99) - 1]:.2f} ms over "
                  f"{len(times)} calls; spawns {pool['spawns']}")
            if name == "warm" and pool["spawns"] != 1:
                failed = True
        ratio = latency["script"] / latency["warm"]
        print(f"warm is {ratio:.0f}x faster at p50 (target: 10x or more)")
        return 1 if failed or ratio < 10 else 0
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
