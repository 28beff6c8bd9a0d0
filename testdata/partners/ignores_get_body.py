"""A partner on Python's http.server that, like many frameworks, never reads
the body of a GET or DELETE: whatever a client put there is read as the next
request on the connection. It answers every request with its path.

    python3 ignores_get_body.py [CERT KEY]

prints the port it listens on (127.0.0.1), then serves; with CERT and KEY
it serves HTTPS. A request for a path ending in /hold is answered only once
something more arrived on its connection (or it closed, or 10 s passed), so
a request smuggled in a body answers whatever request comes next.
"""
import http.server
import select
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as partners do

    def do_GET(self):
        if self.path.endswith("/hold"):
            select.select([self.connection], [], [], 10)
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_DELETE = do_GET

    def log_message(self, fmt, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if len(sys.argv) == 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
