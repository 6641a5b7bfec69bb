// Sends exactly N keep-alive GETs over C connections and exits: a fixed amount of work, so an instruction count
// divides by a known number of requests (wrk runs for a time instead). Raw sockets keep the client trivial: it
// knows only Content-Length framing, which is what the yardstick's upstreams send, and any socket error ends it.
//   node --import tsx bench/profile/load.ts N C PATH PORT
import net from "node:net";

const [n, c, path, port] = [
  Number(process.argv[2]),
  Number(process.argv[3]),
  process.argv[4] ?? "/",
  Number(process.argv[5]),
];
const request = Buffer.from(
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: load\r\nAccept: */*\r\n\r\n`,
);
let sent = 0;
let done = 0;
const started = Date.now();

function connection() {
  const socket = net.connect(port, "127.0.0.1");
  let buffered = "";
  const next = () => {
    if (sent < n) {
      sent++;
      socket.write(request);
    } else socket.end();
  };
  socket.setEncoding("latin1");
  socket.on("error", (err) => {
    console.error(`load: ${err.message}`);
    process.exit(1);
  });
  socket.on("connect", next);
  socket.on("data", (data: string) => {
    buffered += data;
    for (;;) {
      const head = buffered.indexOf("\r\n\r\n");
      if (head < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(buffered.slice(0, head))?.[1] ?? 0);
      if (buffered.length < head + 4 + length) return;
      buffered = buffered.slice(head + 4 + length);
      if (++done === n) {
        console.log(`reqs=${n} ms=${Date.now() - started}`);
        process.exit(0);
      }
      next();
    }
  });
}
for (let i = 0; i < c; i++) connection();
