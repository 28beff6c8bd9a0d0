// usage: node fetch.mjs URL PROXY_URL CA_FILE
// Fetches URL through the proxy with undici's ProxyAgent, trusting CA_FILE
// for the destination and, with an https:// proxy URL, for the proxy too,
// and prints "STATUS BODY".
import { readFileSync } from "node:fs";
import { fetch, ProxyAgent } from "undici";

const [url, proxy, caFile] = process.argv.slice(2);
const ca = readFileSync(caFile, "utf8");
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca }, proxyTls: { ca } });
const res = await fetch(url, { dispatcher, signal: AbortSignal.timeout(20000) });
process.stdout.write(`${res.status} ${await res.text()}`);
