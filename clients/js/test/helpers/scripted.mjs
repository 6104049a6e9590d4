import { WebSocketServer } from 'ws';

const open = new Set();

/**
 * A small real WebSocket server on loopback that speaks just enough of the protocol to drive the client's decisions
 * for answers the worker cannot be made to give on demand: each connection gets `welcome` (its payload `welcome`), and
 * `onConnection(ws, index)` decides the rest. `connections`: each one's URL, time and subprotocol, in order.
 */
export async function scriptedServer(onConnection, { welcome = { serverId: 'scripted', heartbeatMs: 30000, protocol: 1, user: 'u' } } = {}) {
  const connections = [];
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => [...protocols][0] });
  open.add(server);
  server.on('connection', (ws, req) => {
    const index = connections.length;
    connections.push({ url: new URL(req.url, 'http://x'), at: Date.now(), protocol: ws.protocol });
    ws.send(JSON.stringify({ type: 'welcome', payload: { connectionId: `c${index}`, ...welcome } }));
    onConnection(ws, index);
  });
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${server.address().port}`, connections };
}

/** Ends every connection of the scripted servers started so far and closes them. */
export async function stopScriptedServers() {
  for (const server of open) {
    for (const ws of server.clients) ws.terminate();
    await new Promise((r) => server.close(r));
  }
  open.clear();
}
