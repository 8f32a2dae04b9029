// An upstream that answers with bytes no well-behaved server library would write, for
// what libcurl does with them on a handle that carried a transfer before (spec/
// upstream_bytes_spec.lua). Node built-ins only; every connection is kept alive.
//
//   node spec/support/raw-upstream.mjs
//
// Prints its port once it listens; stops when standard input closes. Each request's
// answer is chosen by its path's last segment:
//   /.../ok     a plain 200 with a few headers
//   /.../fold   a 200 whose first header line is folded (begins with a tab): obsolete
//               line folding with nothing before it to continue
//   /.../foldsp the same with a space
//   /.../s101   101 Switching Protocols, unasked
//   /.../secname, secupper, splitcolon, splitcomma, numbody, infnum, crvalue, latin1, deep,
//               spacename, odd: answers that test what is shown or passed on
import net from "node:net";

const ANSWERS = {
  ok: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-One: 1\r\nX-Two: 2\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  fold: "HTTP/1.1 200 OK\r\n\tX-Folded: tab\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  foldsp: "HTTP/1.1 200 OK\r\n X-Folded: space\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  // a 101 to a request that asked for no upgrade (RFC 9110 15.2.2: never sent then)
  s101: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: nothing\r\nConnection: upgrade\r\n\r\nraw bytes",
  // the connection's key (spec/upstream_bytes_spec.lua's) as a header's name
  secname: "HTTP/1.1 200 OK\r\nX-rawup-k3y-0123456789: 1\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  // the key spelled with a JSON escape in a text body (\u0072 is "r")
  escbody: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n\r\nk=\\u0072awup-k3y-0123456789 end.",
  // the second connection's key ("k3y: s3cr3t, 0123456789abc") split by the upstream
  // across a header's name and value, and across two lines of one name
  splitcolon: "HTTP/1.1 200 OK\r\nk3y: s3cr3t, 0123456789abc\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  splitcomma: "HTTP/1.1 200 OK\r\nX-S: k3y: s3cr3t\r\nX-S: 0123456789abc\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  // the key in capitals as a header's name (lowercased by --json into the key itself)
  secupper: "HTTP/1.1 200 OK\r\nX-RAWUP-K3Y-0123456789: 1\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  // the third connection's key (73519864) spelled as JSON numbers that decode to it
  numbody: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 34\r\n\r\n{\"a\":7351986.4e1,\"b\":7.3519864E+7}",
  // a number JSON cannot spell once decoded (infinity), and a bare CR in a header value
  infnum: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"a\":1e999,\"b\":1}",
  crvalue: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  // the fourth connection's key ("pässwörd1") echoed in Latin-1 bytes, which escaping
  // broken UTF-8 as \u00e4 would spell back; and a JSON body at the decoder's depth
  latin1: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Echo: p\u00e4ssw\u00f6rd1\r\n"
    + "Content-Length: 17\r\n\r\n{\"a\":\"p\u00e4ssw\u00f6rd1\"}",
  deep: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n"
    + "[".repeat(1000) + "]".repeat(1000),
  // "pässwörd1" as a server that mixes up Latin-1 and UTF-8 writes it: its UTF-8 bytes
  // read as Latin-1 and written again (JSON-escaped in the body, raw in a header), and in
  // Latin-1 percent-encoded
  dblenc: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Echo: p\u00c3\u00a4ssw\u00c3\u00b6rd1\r\n"
    + "Content-Length: 39\r\n\r\n{\"a\":\"p\\u00c3\\u00a4ssw\\u00c3\\u00b6rd1\"}",
  pctlatin: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nk=p%E4ssw%F6rd1 end",
  // the third connection's key as a number under a key given twice (cjson keeps the last)
  numdup: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n{\"a\":7351986.4e1,\"a\":0}",
  // the third key as a number past 2^63 (a reader of doubles gets 73519864000000000000),
  // the first key in JSON inside a JSON string under a key given twice (cjson keeps the
  // last), and the fifth ("Großgeheim1") as a server that reads UTF-8 as Windows-1252
  // writes it again in UTF-8
  bignum: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n[73519863999999999999.9]",
  dupjson: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 52\r\n\r\n"
    + "{\"a\":\"{\\\"k\\\":\\\"\\\\u0072awup-k3y-0123456789\\\"}\",\"a\":1}",
  cp1252: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
    + "k=Gro\u00c3\u0083\u00c5\u00b8geheim1 end",
  // an exponent past what an integer holds, the third key as a double under a key given
  // twice, and the sixth ("€uro1234") in Windows-1252 bytes (0x80 is the euro sign)
  bigexp: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"a\":1e9223372036854775807}",
  dupnum: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 34\r\n\r\n"
    + "{\"a\":73519863.9999999999999,\"a\":1}",
  euro: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nk=\u0080uro1234 end",
  // the third key in a body that is otherwise shown as it came: as a number, inside a
  // string, beside a number past a double's digits and a key given twice
  keepall: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 81\r\n\r\n"
    + "{\"z\":1,\"k\":\"x\",\"big\":12345678901234567890,\"n\":7351986.4e1,\"k\":2,\"s\":\"a73519864b\"}",
  // a redirect to a URL that is not allowed, whose path holds the fourth key with its
  // first non-ASCII letter in Latin-1 and the second in UTF-8: quoted in the refusal
  redirlatin: "HTTP/1.1 302 Found\r\nLocation: http://evil.example/a/p\u00e4ssw\u00c3\u00b6rd1\r\n"
    + "Content-Length: 0\r\n\r\n",
  // a refused redirect whose URL holds a Latin-1 byte and no key: quoted alike on both paths
  redirbyte: "HTTP/1.1 302 Found\r\nLocation: http://evil.example/a/\u00e4b\r\nContent-Length: 0\r\n\r\n",
  // a refused redirect quoting the eighth key JSON-decoded ("pa/ssw0rd-X1" for "pa\/ssw0rd-X1")
  redirslash: "HTTP/1.1 302 Found\r\nLocation: http://evil.example/a/pa/ssw0rd-X1\r\nContent-Length: 0\r\n\r\n",
  // the third key as a number inside a string, alone, in JSON there and as readers
  // take a number (a "+", "_" between digits, hex with leading zeros, binary, octal, in a
  // sentence, followed by letters); the seventh
  // ("1234,5678") spelled across two values
  numstr: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 324\r\n\r\n"
    + "{\"as_string\":\"7351986.4e1\",\"nested\":\"{\\\"pin\\\":7351986.4e1}\",\"plain\":\"x 1\",\"plus\":\"+7351986.4e1\",\"under\":\"7_351_986.4e1\",\"deep\":\"[\\\"0x461D2F8\\\"]\",\"said\":\"pin 7351986.4e+1 ok\",\"zhex\":\"0x0000000000000000461d2f8\",\"stop\":\"The PIN is 7351986.4e1.\",\"bin\":\"0b100011000011101001011111000\",\"oct\":\"0o430351370\",\"tail\":\"7351986.4e1abc\"}",
  commanum: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{\"pin\":[1234,5678]}",
  // what cjson reads but JSON is not
  nanbody: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"a\":NaN,\"b\":0x10}",
  // numbers beyond what cjson writes again (14 digits)
  precise: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 53\r\n\r\n"
    + "{\"id\": 12345678901234567890,\n \"f\": 3.141592653589793}",
  // a name with a space before its colon: a lenient client would take the body as chunked
  spacename: "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
  // lines a client takes though they break the rules: a name with a space, control
  // characters (an escape sequence) in a value
  odd: "HTTP/1.1 200 OK\r\nX Y: z\r\nX-A: a\u0001b\u001b[31mred\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
};

const server = net.createServer((sock) => {
  let buf = "";
  sock.on("data", (chunk) => {
    buf += chunk.toString("latin1");
    let end;
    while ((end = buf.indexOf("\r\n\r\n")) >= 0) {
      const head = buf.slice(0, end);
      buf = buf.slice(end + 4);
      const len = Number((head.match(/\r\ncontent-length:\s*(\d+)/i) || [])[1] || 0);
      buf = buf.slice(len); // a body, if any, is not looked at (whole in these specs)
      const path = (head.split(" ")[1] || "/").split("?")[0];
      const name = path.split("/").pop();
      // a character of the answers is one byte (latin1): \u00e4 is the byte 0xe4
      sock.write(Buffer.from(ANSWERS[name] || ANSWERS.ok, "latin1"));
    }
  });
  sock.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
