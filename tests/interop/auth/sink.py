#!/usr/bin/python3
"""A minimal SMTP server that writes each message it receives to DIR/N.eml.

    sink.py PORT DIR [PEM]

With PEM (key and certificate in one file) it offers STARTTLS.
"""
import os
import socketserver
import ssl
import sys
import threading

PORT = int(sys.argv[1])
DIR = sys.argv[2]
PEM = sys.argv[3] if len(sys.argv) > 3 else None
count = 0
lock = threading.Lock()


class Smtp(socketserver.StreamRequestHandler):
    def say(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        global count
        self.say("220 sink.test ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip().upper()
            if cmd.startswith("EHLO"):
                self.say("250-sink.test")
                if PEM:
                    self.say("250-STARTTLS")
                self.say("250 8BITMIME")
            elif cmd == "STARTTLS" and PEM:
                self.say("220 go ahead")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(PEM)
                self.request = ctx.wrap_socket(self.request, server_side=True)
                self.rfile = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
            elif cmd == "DATA":
                self.say("354 go ahead")
                data = b""
                while True:
                    l = self.rfile.readline()
                    if not l or l == b".\r\n":
                        break
                    if l.startswith(b".."):
                        l = l[1:]
                    data += l
                with lock:
                    count += 1
                    n = count
                # Written aside, then renamed: the test sees whole files only.
                with open(f"{DIR}/.{n}.tmp", "wb") as f:
                    f.write(data)
                os.rename(f"{DIR}/.{n}.tmp", f"{DIR}/{n}.eml")
                self.say("250 ok")
            elif cmd == "QUIT":
                self.say("221 bye")
                return
            else:
                self.say("250 ok")


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", PORT), Smtp).serve_forever()
